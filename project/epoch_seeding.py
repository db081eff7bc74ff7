"""Random numbers that depend only on (run seed, epoch, rank), so a run resumed at an epoch boundary
continues exactly as the uninterrupted run would have.

Lightning makes the first epoch's dataloader iterator at a different moment in a resumed run than in a
running one, and making an iterator draws from the global RNG; so the global RNGs are reseeded just
before each epoch's first training step (dropout), and augmentation draws from its own generator
(see ImageDataModule). Shuffling has its own seeded sampler (ResumableShuffle).
"""

import os
import random

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def epoch_seed(epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one rank: from the run's seed_everything, different per rank and per epoch."""
    base = int(os.environ.get("PL_GLOBAL_SEED", 0))
    return (base + 1009 * epoch + rank) % 2**32


def reseed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and every CUDA device), without touching PL_GLOBAL_SEED."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ReseedEveryEpoch(Callback):
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            reseed_everything(epoch_seed(trainer.current_epoch, trainer.global_rank))
