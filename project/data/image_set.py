"""Images held in memory as one uint8 tensor, served a whole batch per index lookup."""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset


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
