"""Decoded image folders cached on disk as one tensor file, rebuilt when any source file changes.

Decoding 50,000 small JPEGs with PIL takes longer than an epoch of the article's CNN on a GPU;
loading the cached tensor takes well under a second.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from project.data.image_set import ImageSet

CACHE_FORMAT = 2  # bump when decoding changes (2: 16-bit images scaled; one tensor resize path), so old files go


def folder_fingerprint(files: list[tuple[Path, int]], image_size: int | None) -> str:
    """A hash of every file's path, size, modification time and label, and of the decoding settings."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{image_size}".encode())
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}:{label}\n".encode())
    return digest.hexdigest()


def cached_decode(
    folder: Path, files: list[tuple[Path, int]], image_size: int | None, cache_dir: str,
    decode: Callable[[list[tuple[Path, int]], int | None], ImageSet],
) -> ImageSet:
    """`decode(files, image_size)` from the cache when the files are unchanged; decoded and cached otherwise."""
    folder_key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{folder.name}-{folder_key}-{folder_fingerprint(files, image_size)[:16]}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            return ImageSet(cached["images"], cached["labels"])
        except Exception:  # a damaged cache file (e.g. a killed write on another filesystem) is simply rebuilt
            pass
    image_set = decode(files, image_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{folder.name}-{folder_key}-*.pt"):  # this folder's caches of older contents
            stale.unlink(missing_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"images": image_set.images, "labels": image_set.labels}, temporary)
        os.replace(temporary, path)  # atomic: a reader never sees half a file
    except OSError as error:  # a read-only or full disk: the run goes on, decoding again next time
        print(f"note: the decode cache could not be written to {str(path.parent)!r} ({error.strerror})")
    return image_set
