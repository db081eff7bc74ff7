"""The unlabelled pool of semi-supervised fine-tuning: images the run may look at but whose labels it never reads.

The pool is the training split's images beyond the label budget, and `--data.unlabelled_root`'s. Neither may
hold a validation or test image: a test image in the pool would be trained on (without its label, but the
pseudo-label of an image is a guess at it), and the test accuracy would no longer measure unseen images.
Images are compared by their decoded pixels (after resizing, as the model sees them), so a copy of a test image
under another file name is found too.
"""

import hashlib

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from project.data.image_set import ImageSet
from project.errors import UserError


def image_digests(images: Tensor) -> list[bytes]:
    """One digest of every image's pixels (uint8 (N, C, H, W)); 0.3 s for 50,000 CIFAR-sized images on the 2-core VM."""
    return [hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest() for image in images.contiguous()]


def held_out_copies(pool: ImageSet, held_out: list[ImageSet]) -> Tensor:
    """A mask over the pool: True where an image is pixel for pixel a validation or test image."""
    seen = {digest for image_set in held_out if len(image_set) for digest in image_digests(image_set.images)}
    return torch.tensor([digest in seen for digest in image_digests(pool.images)], dtype=torch.bool)


def budget_remainder_pool(remainder: ImageSet, val: ImageSet, test: ImageSet) -> ImageSet:
    """The training images beyond the label budget, less any exact copy of a validation or test image.

    A dataset can hold the same picture twice (CIFAR-10 does, a few times); such a copy is dropped from the pool,
    not refused: the user did nothing wrong.
    """
    copies = held_out_copies(remainder, [val, test])
    if copies.any():
        rank_zero_info(f"unlabelled pool: {int(copies.sum())} training images are exact copies of validation or test "
                       f"images and are left out of it")
    return remainder.subset((~copies).nonzero().flatten())


def refuse_held_out_images(extra: ImageSet, val: ImageSet, test: ImageSet, root: str) -> None:
    """--data.unlabelled_root must hold no validation or test image: refused, naming how many it holds."""
    copies = held_out_copies(extra, [val, test])
    if copies.any():
        raise UserError(
            f"{int(copies.sum())} of the {len(extra)} images under --data.unlabelled_root={root} are validation or "
            f"test images of --data.root: the pool would train on the images the run is measured with. Point it "
            f"at images outside the labelled dataset's validation and test splits"
        )
