"""Every random stream of a run, derived from one seed, so runs with different seeds share no stream.

A stream's seed is a hash of (seed, stream, position...) by NumPy's SeedSequence, never `seed + offset`:
with offsets, seed s in epoch e shuffled exactly like seed s+1 in epoch e-1, so a study's "independent"
seeds shared batch orders. The run's seed is the one `seed_everything` set (LightningCLI's
`--seed_everything`); it is read here and nowhere else.
"""

import os
import random
from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """What a derived seed is for; one number per use, so no two uses draw the same numbers."""

    SHUFFLE = 1  # the training sampler's permutation of each pass
    EPOCH = 2  # the global RNGs (dropout) reseeded at each epoch's first step
    AUGMENT = 3  # crop offsets and flips of each epoch
    TEST_SPLIT = 4  # held-out test images (split_seed)
    VAL_SPLIT = 5  # held-out validation images (split_seed)
    TRAIN_BUDGET = 6  # the labelled training images of a label budget (split_seed)
    VAL_BUDGET = 7  # the labelled validation images of a label budget (split_seed)
    RANDOM_INIT = 8  # the random weights a pretrained backbone is compared with (transferability check)
    VIEWS = 9  # SimCLR's random views
    PROBE_VIEWS = 10  # the augmented views a logistic probe is fit on
    UNLABELLED_SHUFFLE = 11  # the unlabelled pool's permutation of each pass (semi-supervised fine-tuning)
    CONSISTENCY_VIEWS = 12  # the weak and strong views of the unlabelled images (semi-supervised fine-tuning)


def derived_seed(seed: int, stream: Stream, *position: int) -> int:
    """A 32-bit seed for `stream` at `position` (e.g. pass, or epoch and rank), independent across all arguments."""
    return int(np.random.SeedSequence([seed % 2**64, int(stream), *position]).generate_state(1)[0])


def run_seed() -> int:
    """The run's seed, as `seed_everything` recorded it (0 when no seed was set)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def reseed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and every CUDA device), without touching PL_GLOBAL_SEED."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(epoch: int, rank: int = 0, stream: Stream = Stream.EPOCH) -> int:
    """The seed of one epoch on one rank for `stream`: from the run's seed, different per rank and per epoch."""
    return derived_seed(run_seed(), stream, epoch, rank)


def reseed_for_epoch(epoch: int, rank: int = 0) -> None:
    """The global RNGs as every run has them at the first step of `epoch` on `rank` (a plain loop can match it)."""
    reseed_everything(epoch_seed(epoch, rank))
