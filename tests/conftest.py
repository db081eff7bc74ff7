"""Shared fixtures: tiny datasets written in the real on-disk formats, so no test downloads anything."""

import socket
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tiny_runs
from PIL import Image

IMAGE_FOLDER_CLASSES = ("cat", "dog", "ship")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 `array` as an IDX file: big-endian magic 0x0000_08_<ndim>, one big-endian uint32 per dim, data."""
    header = struct.pack(">I", 0x00000800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, train_size: int = 60, test_size: int = 30, seed: int = 0) -> Path:
    """A tiny MNIST in torchvision's raw layout under `root/MNIST/raw`, labels cycling 0-9; returns `root`."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, size in (("train", train_size), ("t10k", test_size)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (size, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", (np.arange(size) % 10).astype(np.uint8))
    return root


def write_image_folder(
    root: Path, per_class: int, classes: tuple[str, ...] = IMAGE_FOLDER_CLASSES, size: int = 16, seed: int = 0
) -> Path:
    """`root/<class>/NNN.png`: `per_class` RGB size×size PNGs of seeded random pixels per class; returns `root`."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels, mode="RGB").save(root / name / f"{index:03d}.png")
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A folder with a tiny MNIST (60 train, 30 t10k random 28×28 images, labels cycling 0-9), torchvision layout."""
    return write_mnist(tmp_path / "mnist_data")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder `root/{cat,dog,ship}/*.png` of 12 seeded random RGB 16×16 PNGs per class, with no split folders."""
    return write_image_folder(tmp_path / "images", per_class=12)


@pytest.fixture
def split_image_folder(tmp_path: Path) -> Path:
    """A folder with `train/` (8 per class), `val/` (2) and `test/` (3) sub-folders, each `<class>/*.png`."""
    root = tmp_path / "split_images"
    for seed, (split, per_class) in enumerate((("train", 8), ("val", 2), ("test", 3))):
        write_image_folder(root / split, per_class=per_class, seed=seed)
    return root


@pytest.fixture
def make_image_folder() -> Callable[..., Path]:
    """`write_image_folder(root, per_class, classes=, size=, seed=)`, for tests that need their own folder layout."""
    return write_image_folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail, so a test proves it works offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny pretraining run of the default config (digits 0-4) for the whole session: its run folder.

    Tests read it and never change it (they copy it first); the bad-input tests check that by its checksums.
    """
    folder = tmp_path_factory.mktemp("session_runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # relative defaults (data/cache) stay out of the repository
        return tiny_runs.pretrained_run(folder)


@pytest.fixture(scope="session")
def finetuned_run(pretrained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fine-tuning run (digits 5-9) from a copy of `pretrained_run` that is deleted afterwards."""
    folder = tmp_path_factory.mktemp("session_finetuned")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        return tiny_runs.finetuned_run(folder, pretrained_run)


@pytest.fixture(autouse=True)
def run_in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder, so relative defaults (lightning_logs/, data/cache/) stay out of the repo."""
    monkeypatch.chdir(tmp_path)
