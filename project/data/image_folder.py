"""The user's own images: `root/<class>/*.png|jpg`, or `root/train|val|test/<class>/...` with given splits."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from project.data.image_set import ImageSet
from project.errors import UserError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = ("train", "val", "test")


def split_folders(root: str) -> dict[str, Path]:
    """Map split name to folder: `root/train` (with `val/`, `test/` when present), or `root` itself as train."""
    path = Path(root)
    if not path.is_dir():
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise UserError(f"image folder {root!r} {problem}: set --data.root to a folder of <class>/ image folders")
    if (path / "train").is_dir():
        return {split: path / split for split in SPLIT_FOLDERS if (path / split).is_dir()}
    return {"train": path}


def folder_class_names(root: str, cache_dir: str | None = None) -> list[str]:
    """Class names are the train folder's sub-folders, sorted (torchvision's ImageFolder order).

    The decode cache is not a class, even where it sits inside the image folder (`root: data` with the default
    `cache_dir: data/cache`); a sub-folder without images is an error, as in torchvision's ImageFolder, since
    an empty class would shift every label after it.
    """
    train = split_folders(root)["train"]
    cache = Path(cache_dir).resolve() if cache_dir is not None else None
    folders = sorted(
        entry for entry in train.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.resolve() != cache
    )
    if not folders:
        raise UserError(
            f"image folder {str(train)!r} has no class folders: put each class's images in {train}/<class_name>/"
        )
    empty = [folder.name for folder in folders if not any(is_image(path) for path in folder.rglob("*"))]
    if empty:
        raise UserError(
            f"class folders {empty} in {str(train)!r} hold no images ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
            f"add images or move the folders out"
        )
    return [folder.name for folder in folders]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """(path, label) of every image file under `folder/<class>/`, in a stable order."""
    files = []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        if class_dir.is_dir():
            paths = sorted(p for p in class_dir.rglob("*") if is_image(p))
            files += [(path, label) for path in paths]
    if not files:
        raise UserError(f"image folder {str(folder)!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def decode_image(path: Path, image_size: int | None) -> np.ndarray:
    """One image as a uint8 H×W×3 array (or H×W for grayscale), resized to a square `image_size` if set."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if image.mode in ("1", "L", "I", "I;16") else "RGB")
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UserError(f"cannot read image {str(path)!r} ({error}): remove or replace the file") from error


def load_image_folder(folder: Path, class_names: list[str], image_size: int | None) -> ImageSet:
    """Decode every image of one split folder into memory; all must share a size unless `image_size` is set."""
    return decode_files(list_images(folder, class_names), image_size)


def decode_files(files: list[tuple[Path, int]], image_size: int | None) -> ImageSet:
    """Decode (path, label) pairs into one uint8 (N, C, H, W) tensor."""
    arrays = [decode_image(path, image_size) for path, _ in files]
    first_shape = arrays[0].shape[:2]
    for (path, _), array in zip(files, arrays, strict=True):
        if array.shape[:2] != first_shape:
            raise UserError(
                f"image {str(path)!r} is {array.shape[1]}×{array.shape[0]} but {str(files[0][0])!r} is "
                f"{first_shape[1]}×{first_shape[0]}: set --data.image_size to resize them all to one size"
            )
    if any(array.ndim == 3 for array in arrays):  # mixed grayscale and colour: make all colour
        arrays = [array if array.ndim == 3 else np.repeat(array[:, :, None], 3, axis=2) for array in arrays]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    else:
        images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageSet(images.contiguous(), labels)


def first_image_shape(root: str, class_names: list[str], image_size: int | None) -> tuple[int, int, int]:
    """(C, H, W) of the folder's images, read from its first image, so the model can be built before loading."""
    first_class = split_folders(root)["train"] / class_names[0]  # every class folder holds images
    array = decode_image(min(p for p in first_class.rglob("*") if is_image(p)), image_size)
    return (3 if array.ndim == 3 else 1, array.shape[0], array.shape[1])
