"""Crafted bad inputs in the real formats: damaged images and checkpoints, as a hostile user would make them."""

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from code_payload import save_code_carrying_checkpoint
from conftest import write_image_folder
from PIL import Image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(path: Path, side: int = 13500) -> None:
    """A 100-byte PNG whose header claims side×side pixels (182 M at 13500): PIL refuses it as a bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def png_bytes(size: int = 16, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def image_folders(root: Path) -> dict[str, Path]:
    """Folders of two classes (c0, c1; 6 images each) with one bad file each, by the name of what is wrong."""
    folders = {}
    for name in ("corrupt", "truncated", "dangling", "bomb", "mixed_sizes"):
        folders[name] = write_image_folder(root / name, per_class=6, classes=("c0", "c1"))
    (folders["corrupt"] / "c1" / "zzz.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (folders["truncated"] / "c1" / "zzz.png").write_bytes(png_bytes()[:200])
    (folders["dangling"] / "c1" / "zzz.png").symlink_to(root / "gone.png")
    decompression_bomb_png(folders["bomb"] / "c1" / "zzz.png")
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(folders["mixed_sizes"] / "c1" / "zzz.png")
    folders["one_each"] = write_image_folder(root / "one_each", per_class=1, classes=("c0", "c1"))
    return folders


def bad_checkpoints(root: Path, good: Path) -> dict[str, Path]:
    """Checkpoints that are not what their name says, next to `good` (a real one)."""
    root.mkdir(parents=True)
    files = {name: root / f"{name}.ckpt" for name in ("text", "truncated", "evil", "no_state", "reshaped")}
    files["text"].write_text("just some notes")
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    save_code_carrying_checkpoint(files["evil"], root / "code-ran")
    torch.save({"weights": torch.zeros(3)}, files["no_state"])
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["state_dict"]["head.weight"] = torch.zeros(7, 3)
    torch.save(checkpoint, files["reshaped"])
    with zipfile.ZipFile(root / "not_torch.ckpt", "w") as archive:
        archive.writestr("hello.txt", "a zip, not a checkpoint")
    files["not_torch"] = root / "not_torch.ckpt"
    return files
