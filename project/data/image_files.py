"""Image files: the one walker that finds them and the one decoder that reads them, for training and inference alike.

Every image becomes a uint8 (C, H, W) tensor, C = 1 for grayscale files and 3 for everything else, so a
model sees the same pixels from an image folder, a prediction input or an export check.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from project.errors import UserError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L"}  # 16-bit PNG/TIFF: scaled to 8 bits, not clamped at 255
# What PIL raises for a file it cannot decode: not an image (UnidentifiedImageError is an OSError), truncated,
# an unsupported mode, or more pixels than its decompression-bomb guard allows (a 22 kB PNG can claim 180 M).
UNREADABLE = (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def image_files(folder: Path) -> list[Path]:
    """Every image file under `folder`, recursively, sorted by path; a folder it cannot read, or a link to a file
    that is gone, is an error naming it (rather than silently fewer images)."""
    return list(walk_images(folder))


def holds_images(folder: Path) -> bool:
    """Whether any image file is under `folder`: the walk stops at the first."""
    return next(walk_images(folder), None) is not None


def walk_images(folder: Path) -> Iterator[Path]:
    """The image files under `folder` in sorted path order, as `sorted(folder.rglob("*"))` filtered would give them
    (each folder's entries sorted by name, a sub-folder's files right after its own name), without descending into
    linked folders (as rglob does not); macOS's zip debris (`__MACOSX/`, `._*`) is skipped.

    One `os.scandir` per folder: its entries know their own type, so a 50,000-file folder is walked without a stat
    per file (the pathlib walk, a stat or three per file, took most of a cached run's 6 s data phase)."""
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UserError(f"cannot read the folder {str(folder)!r} (permission denied): check its permissions")
    if "__MACOSX" in folder.parts:
        return
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        path = folder / entry.name
        if is_folder(entry):  # a linked folder counts here, and must be readable, but is not walked
            if entry.is_symlink():
                if not os.access(path, os.R_OK | os.X_OK):
                    raise UserError(
                        f"cannot read the folder {str(path)!r} (permission denied): check its permissions")
            else:
                yield from walk_images(path)
            continue
        if not is_image(path) or entry.name.startswith("._"):
            continue
        if entry.is_symlink() and not os.path.exists(entry.path):
            raise UserError(f"image {str(path)!r} is a link to a file that does not exist: remove or replace it")
        if entry.is_file():
            yield path


def is_folder(entry: os.DirEntry) -> bool:
    """As Path.is_dir: a link that loops or leads nowhere is no folder (DirEntry.is_dir raises on a loop), so it is
    then named as a link to a file that does not exist, not a traceback."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def decode_image(path: Path) -> Tensor:
    """The image as uint8 (C, H, W): gray modes (16-bit ones scaled to 8 bits) give C = 1, all others RGB."""
    try:
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT_MODES:
                array = np.asarray(image, dtype=np.float64) * (255 / 65535)
                return torch.from_numpy(array.round().clip(0, 255).astype(np.uint8)).unsqueeze(0)
            array = np.array(image.convert("L" if image.mode in GRAY_MODES else "RGB"))
    except UNREADABLE as error:
        raise UserError(f"cannot read image {str(path)!r} ({error}): remove or replace the file") from error
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def image_header(path: Path) -> tuple[int, int, int]:
    """(C, H, W) of an image without decoding its pixels: the file is there, readable, an image, and whole as far as
    its format can tell without decoding (PIL's verify: a PNG's checksums, for one)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = 1 if image.mode in GRAY_MODES else 3
            image.verify()
            return channels, height, width
    except UNREADABLE as error:
        raise UserError(f"cannot read image {str(path)!r} ({error}): remove or replace the file") from error
