"""Reseed every random number generator at the start of each training epoch, from the run's seed and the epoch.

Shuffling (the sampler draws its seed when the epoch's iterator is made), augmentation and dropout
then depend only on (seed, epoch), so a run resumed at an epoch boundary continues exactly as the
uninterrupted run would have.
"""

import os
import random

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ReseedEveryEpoch(Callback):
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))  # set by seed_everything; left unchanged here
        # Different per rank, so DDP processes do not draw the same augmentations for different images.
        seed = (base + 1009 * trainer.current_epoch + trainer.global_rank) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # CPU and every CUDA device
