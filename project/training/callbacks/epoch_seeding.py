"""Random numbers that depend only on (run seed, epoch, rank), so a run resumed at an epoch boundary
continues exactly as the uninterrupted run would have.

Lightning makes the first epoch's dataloader iterator at a different moment in a resumed run than in a
running one, and making an iterator draws from the global RNG; so the global RNGs are reseeded just
before each epoch's first training step (dropout), and augmentation draws from its own generator
(see ImageDataModule). Shuffling has its own seeded sampler (ResumableShuffle).
"""

from lightning.pytorch import Callback, LightningModule, Trainer

from project.seeding import reseed_for_epoch


class ReseedEveryEpoch(Callback):
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            reseed_for_epoch(trainer.current_epoch, trainer.global_rank)
