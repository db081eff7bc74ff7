"""The benchmark's data: the real MNIST/CIFAR-10 samples when present, generated data of the same shape otherwise."""

import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def mnist_root(scratch: Path, generated_size: int) -> tuple[str, str]:
    """(torchvision MNIST root, description): the shared sample, or generated IDX files of MNIST's shape."""
    sample = SHARED_DATA / "mnist-sample"
    if generated_size == 0 and (sample / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        return str(sample), "MNIST sample (8,000 real digits)"
    raw = scratch / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    size = generated_size or 8000
    rng = np.random.default_rng(0)
    for prefix, count in (("train", size), ("t10k", max(size // 4, 10))):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, count) + labels.tobytes())
    return str(scratch / "mnist"), f"generated MNIST-shaped data ({size} images)"


def cifar_folder(scratch: Path, generated_size: int, folder: str | None) -> tuple[str, str]:
    """(image folder, description): a given folder, the shared CIFAR-10 JPEG sample extracted, or generated PNGs."""
    if folder:
        return folder, f"image folder {folder}"
    archive = SHARED_DATA / "cifar10-train-jpg.tar.gz"
    if generated_size == 0 and archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        return str(scratch / "cifar10-train"), "CIFAR-10 sample (50,000 real JPEGs)"
    size = generated_size or 5000
    rng = np.random.default_rng(0)
    for index in range(size):
        class_dir = scratch / "cifar" / f"class{index % 10}"
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(class_dir / f"{index}.png")
    return str(scratch / "cifar"), f"generated CIFAR-shaped PNGs ({size} images)"
