"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through torchvision, downloaded where the network allows."""

import shutil
from pathlib import Path

import torch
from torchvision import datasets

from project.data.image_set import ImageSet
from project.errors import UserError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# torchvision reads these from the archive's meta file; kept here so the class count and names are
# known before anything is downloaded (configs select classes by name).
CIFAR100_CLASSES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man
maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain
plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
turtle wardrobe whale willow_tree wolf woman worm""".split()

TORCHVISION_DATASETS = {
    "mnist": (datasets.MNIST, [str(digit) for digit in range(10)]),
    "fashion_mnist": (datasets.FashionMNIST, list(datasets.FashionMNIST.classes)),
    "cifar10": (datasets.CIFAR10, CIFAR10_CLASSES),
    "cifar100": (datasets.CIFAR100, CIFAR100_CLASSES),
}


def download_torchvision_dataset(name: str, root: str) -> None:
    """Download both splits unless they are under `root` already; a clear error where there is no network."""
    dataset_class, _ = TORCHVISION_DATASETS[name]
    folder = Path(root)
    before = set(folder.iterdir()) if folder.is_dir() else None
    for train in (True, False):
        try:
            dataset_class(root, train=train, download=True)
        except Exception as error:  # URLError, HTTPError, OSError, checksum RuntimeError: all mean "not here"
            # What the failed download made (the root, a half-written archive) goes; what was there stays.
            made = [folder] if before is None else [path for path in folder.iterdir() if path not in before]
            for path in made:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            raise UserError(
                f"{name} is not under {root!r} and could not be downloaded ({type(error).__name__}: "
                f"{' '.join(str(error).split())}). "  # torchvision's message spans lines: keep ours on one
                f"Copy the dataset files there (torchvision's layout), point --data.root at them, "
                f"or run with --data.dataset=digits, which needs no download"
            ) from error


def load_torchvision_split(name: str, root: str, train: bool) -> ImageSet:
    """One split as uint8 (N, C, H, W) images: exactly the pixels torchvision's dataset returns."""
    dataset_class, _ = TORCHVISION_DATASETS[name]
    try:
        dataset = dataset_class(root, train=train, download=False)
    except RuntimeError as error:
        raise UserError(
            f"{name} ({'train' if train else 'test'} split) not found under {root!r}: set --data.download=true "
            f"where the network allows, copy the files there, or use --data.dataset=digits (embedded, offline)"
        ) from error
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # MNIST: N,H,W; CIFAR: N,H,W,C
    return ImageSet(images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64))
