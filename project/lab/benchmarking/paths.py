"""The five ways of training one model on one dataset that the benchmark compares (compute only, this project's
default path, the usual torchvision DataLoader, a plain PyTorch loop, a minimal LightningModule).

Each trains a given number of steps, over as many passes of the data as they take, and returns samples per second
over the timed steps (the first `warmup` steps are not timed: they include worker start-up, allocator warm-up and
lazy initialization).
"""

import copy
import itertools
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
    """Times the training steps after the first `warmup` (counted over epochs, by the global step), counts the
    samples they took (an epoch's last batch may be short), and keeps every step's loss."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.losses, self.samples, self.start, self.end = warmup, [], 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())
        if trainer.global_step > self.warmup:  # the step just taken is a timed one
            self.samples += len(batch[1])
        self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        """Samples per second over the timed steps."""
        return self.samples / (self.end - self.start)


def lightning_fit(model: ImageClassifier, batches: int, warmup: int, device: str, **data) -> Stopwatch:
    """Train `batches` steps, over as many epochs as they take, under the Lightning Trainer; `data` is a datamodule
    or train_dataloaders."""
    stopwatch = Stopwatch(warmup)
    # Its notes ("GPU available: ...", "`Trainer.fit` stopped ...") would be 4 lines a fit, 20 fits a case: only its
    # warnings are kept.
    notes = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = notes.level
    notes.setLevel(logging.WARNING)
    try:
        trainer = Trainer(
            max_steps=batches, limit_val_batches=0, accelerator=device, devices=1,
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


def prepared_batches(data: ImageDataModule, batches: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `batches` training batches (one epoch's at most), normalized, on the device: compute-only's input,
    built once."""
    # Shuffled like the other paths: an image folder is stored class by class, and one-class batches drive the
    # loss to zero and the gradients into denormal floats, which are many times slower on a CPU (measured: 1.9×).
    sampler = ResumableShuffle(len(data.train_set), seed=0)
    loader = DataLoader(InMemoryImages(data.train_set), batch_size=data.hparams.batch_size, sampler=sampler,
                        collate_fn=keep_batch)
    prepared = []
    for images, labels in itertools.islice(loader, batches):
        prepared.append(data.on_after_batch_transfer((images.to(device), labels.to(device)), 0))
    return prepared


def compute_rate(
    model: ImageClassifier, prepared: list[tuple[torch.Tensor, torch.Tensor]], batches: int, warmup: int, device: str,
) -> float:
    """Samples per second of forward, backward and step alone, a copy of `model` trained `batches` steps on the
    `prepared` batches over and over."""
    model = copy.deepcopy(model).to(device).train()
    optimizer = sgd(model, model.hparams.lr)
    steps = list(itertools.islice(itertools.cycle(prepared), batches))
    training_steps_seconds(model, optimizer, steps[:warmup], device)
    timed = steps[warmup:]
    return sum(len(labels) for _, labels in timed) / training_steps_seconds(model, optimizer, timed, device)


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
    """This project's data path and the same model in a hand-written loop of `batches` steps, each epoch seeded like
    the Lightning run's: samples per second over the steps after `warmup`, and every step's loss."""
    seed_everything(seed, verbose=False)
    model = copy.deepcopy(model).to(device).train()
    optimizer = sgd(model, model.hparams.lr)
    loader = DataLoader(InMemoryImages(data.train_set), batch_size=data.hparams.batch_size,
                        sampler=ResumableShuffle(len(data.train_set), seed), collate_fn=keep_batch,
                        pin_memory=device == "cuda")
    losses, samples, step = [], 0, 0
    for epoch in itertools.count():
        epoch_batches = iter(loader)  # a new pass, a new permutation; made before the reseed, as Lightning makes it
        reseed_for_epoch(epoch)  # what ReseedEveryEpoch does before each epoch's first step
        augmentation_rng = augmentation_generator(epoch, 0, device) if data.augment else None  # as the DataModule
        for images, labels in epoch_batches:
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
            step += 1
            if step > warmup:
                samples += len(labels)
            if step == batches:
                synchronize(device)
                return samples / (time.perf_counter() - start), losses


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
