"""A split's images, in one of two forms served the same way: held in memory as one uint8 tensor (`ImageSet`,
a whole batch per index lookup), or, for image folders too large for memory, as files decoded one by one in
DataLoader workers (`FileImageSet`). Both yield uint8 (C, H, W) images, so augmentation and normalization run on
whole batches on the model's device either way."""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from project.data.batch_transforms import adapt_channels, resize
from project.data.image_files import decode_image
from project.errors import UserError


@dataclass
class ImageSet:
    """A split of a dataset: `images` is uint8 (N, C, H, W), `labels` int64 (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Tensor) -> "ImageSet":
        return ImageSet(self.images[indices], self.labels[indices])

    def joined(self, other: "ImageSet") -> "ImageSet":
        return ImageSet(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]))


class InMemoryImages(Dataset):
    """A map-style dataset whose `__getitems__` gathers a whole batch with one tensor index.

    The DataLoader calls `__getitems__` with a batch of indices, so a batch costs one gather
    instead of batch_size Python calls and a collate; samplers (shuffle, DistributedSampler) work as usual.
    """

    def __init__(self, image_set: ImageSet) -> None:
        self.image_set = image_set

    def __len__(self) -> int:
        return len(self.image_set)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.image_set.images[index], self.image_set.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.image_set.images[index], self.image_set.labels[index]


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate function for `InMemoryImages`: the batch is stacked already."""
    return batch


@dataclass
class FileImageSet:
    """A split as file paths and labels; the counterpart of ImageSet for data that stays on disk."""

    paths: list[Path]
    labels: Tensor

    def subset(self, indices: Tensor) -> "FileImageSet":
        return FileImageSet([self.paths[i] for i in indices.tolist()], self.labels[indices])

    def joined(self, other: "FileImageSet") -> "FileImageSet":
        return FileImageSet([*self.paths, *other.paths], torch.cat([self.labels, other.labels]))

    def __len__(self) -> int:
        return len(self.labels)


class FileImages(Dataset):
    """Decodes, converts and resizes one image per item, so DataLoader workers can do it in parallel. Every file's
    header was read when the folder was opened, so a file that fails here was damaged after its header (or
    changed since).

    `shape` is the (C, H, W) every image must come out as (the model was built for it).
    """

    def __init__(self, image_set: FileImageSet, shape: tuple[int, int, int], image_size: int | None) -> None:
        self.image_set, self.shape, self.image_size = image_set, tuple(shape), image_size

    def __len__(self) -> int:
        return len(self.image_set)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path = self.image_set.paths[index]
        image = decode_image(path).unsqueeze(0)
        if self.image_size is not None:
            image = resize(image, self.image_size)
        if image.shape[2:] != self.shape[1:]:
            raise UserError(
                f"image {str(path)!r} is {image.shape[3]}×{image.shape[2]} but the others are "
                f"{self.shape[2]}×{self.shape[1]}: set --data.image_size to resize them all to one size"
            )
        return adapt_channels(image, self.shape[0])[0], self.image_set.labels[index]

    def sample(self, count: int, seed: int) -> Tensor:
        """Up to `count` decoded images chosen by `seed`: enough to estimate normalization statistics."""
        chosen = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:count]
        return torch.stack([self[int(i)][0] for i in chosen])
