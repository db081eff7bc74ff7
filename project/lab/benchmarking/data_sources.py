"""The benchmark's data: real MNIST/CIFAR-10 files where given (e.g. this repository's shared samples), generated
data of the same shapes and formats otherwise."""

import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from project.errors import UserError


def mnist_root(scratch: Path, given: str | None, generated_size: int) -> tuple[str, str]:
    """(torchvision MNIST root, description): `given`, or generated IDX files of MNIST's shape."""
    if given is not None:
        if not (Path(given) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            raise UserError(f"--mnist_root {given!r} holds no MNIST/raw/train-images-idx3-ubyte (torchvision's layout)")
        return given, f"MNIST files under {given}"
    raw = scratch / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", generated_size), ("t10k", max(generated_size // 4, 10))):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, count) + labels.tobytes())
    return str(scratch / "mnist"), f"generated MNIST-shaped data ({generated_size} images)"


def cifar_folder(scratch: Path, folder: str | None, archive: str | None, generated_size: int) -> tuple[str, str]:
    """(image folder, description): a given folder, a given .tar.gz of one extracted, or generated PNGs."""
    if folder is not None:
        return folder, f"image folder {folder}"
    if archive is not None:
        if not Path(archive).is_file():
            raise UserError(f"--cifar_archive {archive!r} does not exist")
        with tarfile.open(archive) as tar:
            tar.extractall(scratch / "extracted", filter="data")
        (extracted,) = [path for path in (scratch / "extracted").iterdir() if path.is_dir()]
        return str(extracted), f"image folder extracted from {archive}"
    rng = np.random.default_rng(0)
    for index in range(generated_size):
        class_dir = scratch / "cifar" / f"class{index % 10}"
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(class_dir / f"{index}.png")
    return str(scratch / "cifar"), f"generated CIFAR-shaped PNGs ({generated_size} images)"
