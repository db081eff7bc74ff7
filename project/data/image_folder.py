"""The user's own images: `root/<class>/*.png|jpg`, or `root/train|val|test/<class>/...` with given splits.

Read when the DataModule is built, so its classes and image shape are those of the files themselves, and a
missing, unreadable or corrupt file stops the run before anything is written: in memory every image is decoded
(or read back from the decode cache); from disk every file's header is read and checked.
"""

import os
from pathlib import Path

import torch

from project.data.batch_transforms import resize
from project.data.decode_cache import cached_decode
from project.data.image_files import IMAGE_EXTENSIONS, decode_image, holds_images, image_files, image_header
from project.data.image_set import FileImageSet, ImageSet
from project.errors import UserError
from project.progress import Progress

SPLIT_FOLDERS = ("train", "val", "test")
LabelledFiles = list[tuple[Path, int]]


class ImageFolderSource:
    """An image folder's classes (listed when built), its image shape and splits (read on first use)."""

    def __init__(
        self, root: str, image_size: int | None, cache_dir: str | None, in_memory: bool | None, memory_limit_gb: float
    ) -> None:
        self.class_names = folder_class_names(root, cache_dir)
        self.folders = split_folders(root)
        self.files = {split: labelled_files(path, self.class_names) for split, path in self.folders.items()}
        self.image_size, self.cache_dir = image_size, cache_dir
        count = sum(len(files) for files in self.files.values())
        if in_memory is None:  # the decoded size, at the size of the first image (or image_size)
            channels, height, width = image_header(self.files["train"][0][0])
            decoded = count * channels * (image_size or height) * (image_size or width)
            in_memory = decoded <= memory_limit_gb * 2**30
        self.from_disk = not in_memory
        self._shape: tuple[int, int, int] | None = None
        self._loaded: dict[str, ImageSet] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images: on first use every image is decoded (or read from the decode cache), or, from
        disk, every file's header is read and checked, so a bad file stops the run before anything is written."""
        if self._shape is None:
            if self.from_disk:
                shapes = {split: header_shape(files, self.image_size) for split, files in self.files.items()}
            else:
                self._loaded = {
                    split: decoded_split(self.folders[split], files, self.image_size, self.cache_dir)
                    for split, files in self.files.items()
                }
                shapes = {split: tuple(image_set.images.shape[1:]) for split, image_set in self._loaded.items()}
            first = shapes["train"]
            for split, shape in shapes.items():
                if shape[1:] != first[1:]:
                    raise UserError(
                        f"the {split} images are {shape[2]}×{shape[1]} but the training images {first[2]}×{first[1]}"
                        f": set --data.image_size to resize every split"
                    )
            # Colour wins: a split with any colour image makes the data 3-channel (gray images are replicated).
            self._shape = (max(shape[0] for shape in shapes.values()), first[1], first[2])
        return self._shape

    def prepare(self) -> None:
        """Nothing to download."""

    def load(self) -> tuple[ImageSet | FileImageSet, ImageSet | FileImageSet | None, ImageSet | FileImageSet | None]:
        """(train, val, test): decoded tensors, or file lists from disk; None for a split folder that is absent."""
        self.shape  # noqa: B018 - reads and checks every file first
        if self.from_disk:
            sets = {
                split: FileImageSet([path for path, _ in files], torch.tensor([label for _, label in files]))
                for split, files in self.files.items()
            }
        else:
            sets = self._loaded
        return sets["train"], sets.get("val"), sets.get("test")


UNLABELLED = -1  # the label of an image that has none (self-supervised pretraining only)


def unlabelled_images(
    root: str, image_size: int | None, cache_dir: str | None, from_disk: bool
) -> ImageSet | FileImageSet:
    """Every image under `root`, in sub-folders or not, whatever their names: label UNLABELLED."""
    folder = existing_folder(root, "--data.unlabelled_root", "give a folder of images")
    files = [(path, UNLABELLED) for path in image_files(folder)]
    if not files:
        raise UserError(f"--data.unlabelled_root {root!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    if from_disk:
        header_shape(files, image_size)  # every file read and checked now, as the labelled ones were
        return FileImageSet([path for path, _ in files], torch.full((len(files),), UNLABELLED))
    return decoded_split(folder, files, image_size, cache_dir)


def existing_folder(root: str, what: str, fix: str) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise UserError(f"{what} {root!r} {'is a file, not a folder' if path.exists() else 'does not exist'}: {fix}")
    return path


def split_folders(root: str) -> dict[str, Path]:
    """Map split name to folder: `root/train` (with `val/`, `test/` when present), or `root` itself as train."""
    path = existing_folder(root, "image folder", "set --data.root to a folder of <class>/ image folders")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"cannot read the image folder {root!r} (permission denied): check its permissions")
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
        # Hidden folders and macOS's zip debris (__MACOSX) are not classes.
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != "__MACOSX" and entry.resolve() != cache
    )
    if not folders:
        raise UserError(
            f"image folder {str(train)!r} has no class folders: put each class's images in {train}/<class_name>/"
        )
    empty = [folder.name for folder in folders if not holds_images(folder)]
    if empty:
        raise UserError(
            f"class folders {empty} in {str(train)!r} hold no images ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
            f"add images or move the folders out"
        )
    return [folder.name for folder in folders]


def labelled_files(folder: Path, class_names: list[str]) -> LabelledFiles:
    """(path, label) of every image file under `folder/<class>/`, in a stable order."""
    files, real_paths = [], []
    for label, name in enumerate(class_names):
        if (folder / name).is_dir():
            class_folder = folder / name
            real_folder = class_folder.resolve()
            for path in image_files(class_folder):
                files.append((path, label))
                # The walk enters no linked folder, so only a linked file has a real path other than its class
                # folder's own plus its place in it: one resolve per folder, not one per file.
                real_paths.append(path.resolve() if path.is_symlink() else real_folder / path.relative_to(class_folder))
    labels_of: dict[Path, tuple[Path, int]] = {}
    for (path, label), real_path in zip(files, real_paths, strict=True):  # one image under two classes: two labels
        first = labels_of.setdefault(real_path, (path, label))
        if first[1] != label:
            raise UserError(
                f"the image {str(first[0])!r} (class {class_names[first[1]]!r}) is also {str(path)!r} (class "
                f"{class_names[label]!r}): one file under two classes, through a link, would be one image with two "
                f"labels; remove the link or the copy"
            )
    if not files:
        raise UserError(f"image folder {str(folder)!r} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def header_shape(files: LabelledFiles, image_size: int | None) -> tuple[int, int, int]:
    """The (C, H, W) a split's files decode to, from their headers: every file is opened, none decoded."""
    shapes = [image_header(path) for path, _ in files]
    channels = max(shape[0] for shape in shapes)
    if image_size is not None:
        return channels, image_size, image_size
    for (path, _), shape in zip(files, shapes, strict=True):
        if shape[1:] != shapes[0][1:]:
            raise UserError(size_mismatch(path, shape, files[0][0], shapes[0]))
    return channels, shapes[0][1], shapes[0][2]


def decoded_split(folder: Path, files: LabelledFiles, image_size: int | None, cache_dir: str | None) -> ImageSet:
    if cache_dir is None:
        return decode_files(files, image_size)
    return cached_decode(folder, files, image_size, cache_dir, decode_files)


def decode_files(files: LabelledFiles, image_size: int | None) -> ImageSet:
    """Decode (path, label) pairs into one uint8 (N, C, H, W) tensor; all must share a size unless `image_size`."""
    images = [decode_image(path) for path, _ in Progress(files, "decoding images", unit="img")]
    if image_size is not None:
        images = [resize(image.unsqueeze(0), image_size)[0] for image in images]
    for (path, _), image in zip(files, images, strict=True):
        if image.shape[1:] != images[0].shape[1:]:
            raise UserError(size_mismatch(path, tuple(image.shape), files[0][0], tuple(images[0].shape)))
    channels = max(image.shape[0] for image in images)  # mixed grayscale and colour: make all colour
    stacked = torch.stack([image.expand(channels, -1, -1) for image in images])
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageSet(stacked.contiguous(), labels)


def size_mismatch(path: Path, shape: tuple, first: Path, first_shape: tuple) -> str:
    return (
        f"image {str(path)!r} is {shape[2]}×{shape[1]} but {str(first)!r} is {first_shape[2]}×{first_shape[1]}: "
        f"set --data.image_size to resize them all to one size"
    )

