"""Seeded, per-class index selection: held-out splits, class subsets and label budgets."""

from dataclasses import replace

import torch
from torch import Tensor

from project.data.image_set import ImageSet
from project.errors import UserError


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into (kept, held_out), holding out `fraction` of every class, chosen by `seed`.

    Per class, so a small or unbalanced dataset keeps every class on both sides.
    """
    generator = torch.Generator().manual_seed(seed)
    kept, held_out = [], []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = round(fraction * len(members))
        held_out.append(members[:count])
        kept.append(members[count:])
    return torch.cat(kept).sort().values, torch.cat(held_out).sort().values


def select_classes(image_set: ImageSet, class_ids: list[int]) -> ImageSet:
    """Keep only `class_ids` and relabel them 0..k-1 in the order given (a split may lack some, or be empty)."""
    largest = int(image_set.labels.max()) if len(image_set) else 0
    new_label = torch.full((max(largest, *class_ids) + 1,), -1, dtype=torch.int64)
    new_label[torch.tensor(class_ids)] = torch.arange(len(class_ids))
    keep = (new_label[image_set.labels] >= 0).nonzero().flatten()
    kept = image_set.subset(keep)
    return replace(kept, labels=new_label[kept.labels])


def take_per_class(
    image_set: ImageSet, count: int, seed: int, class_names: list[str], setting: str = "samples_per_class",
    at_most: bool = False,
) -> ImageSet:
    """A label budget: `count` samples of every class, chosen by `seed` (the first `count` of a seeded permutation,
    so a smaller budget drawn with the same seed is a subset of a larger one).

    A class with fewer samples is an error naming `setting`, or, with `at_most`, gives all it has.
    """
    return image_set.subset(per_class_indices(image_set, count, seed, class_names, setting, at_most))


def per_class_indices(
    image_set: ImageSet, count: int, seed: int, class_names: list[str], setting: str = "samples_per_class",
    at_most: bool = False,
) -> Tensor:
    """The sorted indices `take_per_class` keeps (the rest of the split is, e.g., the unlabelled pool)."""
    generator = torch.Generator().manual_seed(seed)
    split = "validation" if setting.startswith("val") else "training"
    chosen = []
    for label, name in enumerate(class_names):
        members = (image_set.labels == label).nonzero().flatten()
        if len(members) < count and not at_most:
            raise UserError(
                f"{setting}={count} but class {name!r} has only {len(members)} {split} samples "
                f"(after the held-out splits): lower --data.{setting}"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def complement(indices: Tensor, size: int) -> Tensor:
    """The indices of 0..size-1 not in `indices`."""
    kept = torch.ones(size, dtype=torch.bool)
    kept[indices] = False
    return kept.nonzero().flatten()
