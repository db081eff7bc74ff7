"""Where a dataset's images come from, by name: its classes and image shape (known when the DataModule is built),
a download step, and its splits as the dataset provides them."""

from typing import Literal, Protocol

from project.data.digits import DIGITS_CLASSES, load_digits_images
from project.data.image_folder import ImageFolderSource
from project.data.image_set import FileImageSet, ImageSet
from project.data.torchvision_sets import TORCHVISION_DATASETS, download_torchvision_dataset, load_torchvision_split
from project.errors import UserError

DatasetName = Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder"]
Splits = tuple[ImageSet | FileImageSet, ImageSet | FileImageSet | None, ImageSet | FileImageSet | None]


class DataSource(Protocol):
    class_names: list[str]
    shape: tuple[int, int, int]  # (C, H, W) as stored
    from_disk: bool

    def prepare(self) -> None: ...

    def load(self) -> Splits:
        """(train, val, test); None where a split must be held out of train."""


class DigitsSource:
    """scikit-learn's 1,797 embedded 8×8 digits at MNIST's 28×28: offline, nothing downloaded."""

    class_names, shape, from_disk = DIGITS_CLASSES, (1, 28, 28), False

    def prepare(self) -> None:
        pass

    def load(self) -> Splits:
        return load_digits_images(), None, None


class TorchvisionSource:
    """MNIST, Fashion-MNIST, CIFAR-10/100 in torchvision's layout under `root`, downloaded where allowed."""

    from_disk = False

    def __init__(self, name: str, root: str, download: bool) -> None:
        self.name, self.root, self.download = name, root, download
        self.class_names = TORCHVISION_DATASETS[name][1]
        self.shape = (1, 28, 28) if "mnist" in name else (3, 32, 32)

    def prepare(self) -> None:
        if self.download:
            download_torchvision_dataset(self.name, self.root)

    def load(self) -> Splits:
        train = load_torchvision_split(self.name, self.root, train=True)
        return train, None, load_torchvision_split(self.name, self.root, train=False)


def open_source(
    dataset: str, root: str, download: bool, image_size: int | None, cache_dir: str | None, in_memory: bool | None,
    memory_limit_gb: float,
) -> DataSource:
    if dataset == "digits":
        return DigitsSource()
    if dataset in TORCHVISION_DATASETS:
        return TorchvisionSource(dataset, root, download)
    if dataset == "imagefolder":
        return ImageFolderSource(root, image_size, cache_dir, in_memory, memory_limit_gb)
    known = sorted([*TORCHVISION_DATASETS, "digits", "imagefolder"])
    raise UserError(f"unknown dataset {dataset!r}: choose one of {known}")
