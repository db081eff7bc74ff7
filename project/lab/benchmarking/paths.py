"""The four ways of training one model on one dataset that the benchmark compares.

Each returns samples per second over the timed batches (the first `warmup` batches are not timed:
they include worker start-up, allocator warm-up and lazy initialization).
"""

import copy
import logging
import time

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from torch.utils.data import DataLoader

from project.data import ImageDataModule
from project.data.datamodule import augmentation_generator
from project.data.image_set import InMemoryImages, keep_batch
from project.data.resumable_shuffle import ResumableShuffle
from project.models import ImageClassifier
from project.seeding import reseed_for_epoch
from project.training.callbacks.epoch_seeding import ReseedEveryEpoch


def sgd(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


class Stopwatch(Callback):
    """Times the training batches after `warmup`, and keeps every step's loss."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.losses, self.start, self.end = warmup, [], 0.0, 0.0

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())
        self.end = time.perf_counter()


def lightning_fit(model: ImageClassifier, batches: int, warmup: int, device: str, **data) -> Stopwatch:
    """Train `batches` steps under the Lightning Trainer; `data` is a datamodule or train_dataloaders."""
    stopwatch = Stopwatch(warmup)
    # Its notes ("GPU available: ...", "`Trainer.fit` stopped ...") would be 4 lines a fit, 20 fits a case: only its
    # warnings are kept.
    notes = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = notes.level
    notes.setLevel(logging.WARNING)
    try:
        trainer = Trainer(
            max_steps=batches, limit_train_batches=batches, limit_val_batches=0, accelerator=device, devices=1,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[stopwatch, ReseedEveryEpoch()],
        )
        trainer.fit(model, **data)
    finally:
        notes.setLevel(level)
    return stopwatch


class MinimalModule(LightningModule):
    """Lightning's own floor: the same network, optimizer and data path, and a training step that only computes
    the loss (no metric, no logging, no lr scheduler, no callbacks but the stopwatch)."""

    def __init__(self, model: ImageClassifier) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.model(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return sgd(self, self.model.hparams.lr)


def timed_rate(stopwatch: Stopwatch, batches: int, warmup: int, batch_size: int) -> float:
    return (batches - warmup) * batch_size / (stopwatch.end - stopwatch.start)


def prepared_batches(data: ImageDataModule, batches: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `batches` training batches, normalized, on the device: compute-only's input, built once."""
    # Shuffled like the other paths: an image folder is stored class by class, and one-class batches drive the
    # loss to zero and the gradients into denormal floats, which are many times slower on a CPU (measured: 1.9×).
    sampler = ResumableShuffle(len(data.train_set), seed=0)
    loader = iter(DataLoader(InMemoryImages(data.train_set), batch_size=data.hparams.batch_size, sampler=sampler,
                             collate_fn=keep_batch))
    prepared = []
    for _ in range(batches):
        images, labels = next(loader)
        prepared.append(data.on_after_batch_transfer((images.to(device), labels.to(device)), 0))
    return prepared


def compute_rate(
    model: ImageClassifier, prepared: list[tuple[torch.Tensor, torch.Tensor]], warmup: int, batch_size: int,
    device: str,
) -> float:
    """Samples per second of forward, backward and step alone on `prepared` batches, a copy of `model` trained."""
    model = copy.deepcopy(model).to(device).train()
    optimizer = sgd(model, model.hparams.lr)
    training_steps_seconds(model, optimizer, prepared[:warmup], device)
    return (len(prepared) - warmup) * batch_size / training_steps_seconds(model, optimizer, prepared[warmup:], device)


def training_steps_seconds(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]],
    device: str,
) -> float:
    """Seconds of forward, backward and step on each of `batches`, nothing else."""
    synchronize(device)
    start = time.perf_counter()
    for images, labels in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def plain_loop(
    model: ImageClassifier, data: ImageDataModule, batches: int, warmup: int, device: str, seed: int
) -> tuple[float, list[float]]:
    """This project's data path and the same model in a hand-written loop, seeded like the Lightning run."""
    seed_everything(seed, verbose=False)
    model = copy.deepcopy(model).to(device).train()
    optimizer = sgd(model, model.hparams.lr)
    sampler = ResumableShuffle(len(data.train_set), seed)
    loader = iter(DataLoader(InMemoryImages(data.train_set), batch_size=data.hparams.batch_size, sampler=sampler,
                             collate_fn=keep_batch, pin_memory=device == "cuda"))
    reseed_for_epoch(0)  # what ReseedEveryEpoch does before epoch 0's first step
    augmentation_rng = augmentation_generator(0, 0, device) if data.augment else None
    losses = []
    for step, (images, labels) in enumerate(loader):
        if step == batches:
            break
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, labels = data.batch_transform(images, labels, augmentation_rng)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    synchronize(device)
    return (batches - warmup) * data.hparams.batch_size / (time.perf_counter() - start), losses


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
