"""The whole-run case: the real pretraining run (cifar10_cnn.yaml on an image folder), as a user waits for it.

The first run decodes the folder; then, in interleaved rounds, a run that reads the decode cache and the same
model's training and evaluation steps alone, on batches already in memory (its compute). Each run's wall time is
split by phase (data, training, validation, checkpoint writes, test) and set next to its compute, within a round.
The folder's decoding is timed the same way, in rounds against PIL alone on the same files.
"""

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import seed_everything
from PIL import Image

from project.config.shipped import config_path
from project.data.image_folder import ImageFolderSource
from project.lab.benchmarking.paths import prepared_batches, sgd, synchronize, training_steps_seconds
from project.lab.benchmarking.rounds import one_round, paired, spread
from project.models import ImageClassifier
from project.training.run import RunResult, fit_and_test

PHASES = ("data", "training", "validation", "checkpoints", "test", "total")


def whole_run(
    folder: str, epochs: int, batch_size: int | None, scratch: Path, device: str, rounds: int
) -> tuple[list[tuple[str, ...]], list[dict]]:
    """The table's rows, and every round's seconds (the cached run's by phase, its compute). `batch_size`: None runs
    the config's own."""
    args = [
        "--config", str(config_path("cifar10_cnn.yaml")), "--data.dataset=imagefolder", f"--data.root={folder}",
        f"--data.cache_dir={scratch / 'decode_cache'}", *([f"--data.batch_size={batch_size}"] if batch_size else []),
        f"--trainer.max_epochs={epochs}", f"--output_dir={scratch}",
        "--experiment=whole_run", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
    ]
    cold = fit_and_test(ImageClassifier, args)  # decodes the folder and writes the cache the rounds read
    compute = compute_timer(cold, epochs, device)
    cold_compute = compute()  # right after it, as each round pairs its own
    measured = [one_round({"run": lambda: fit_and_test(ImageClassifier, args).seconds, "compute": compute}, index)
                for index in range(rounds)]
    rows = [(phase, f"{cold.seconds[phase]:.1f}", spread([each["run"][phase] for each in measured], ".1f"))
            for phase in PHASES]
    rows.append((f"compute: {epochs} epochs of training and evaluation steps alone", f"{cold_compute:.1f}",
                 spread([each["compute"] for each in measured], ".1f")))
    rows.append(("whole run / compute", f"{cold.seconds['total'] / cold_compute:.2f}",
                 spread([each["run"]["total"] / each["compute"] for each in measured], ".2f")))
    print(f"\nwhole run on {device}: {data_size(cold)} images, {epochs} epochs; the first run decodes the folder, "
          f"then {rounds} interleaved rounds of a run reading the decode cache and its compute alone: median "
          f"(min–max), each ratio taken within a round")
    return rows, measured


def decoding(folder: str, rounds: int) -> tuple[list[tuple[str, ...]], list[dict]]:
    """The run's reading of the folder without the decode cache (every file listed, decoded, stacked) against PIL
    alone on the same files, in interleaved rounds: the rows (images/s and each round's ratio), every round's
    images/s."""
    files = [path for split in ImageFolderSource(folder, None, None, True, 0).files.values() for path, _ in split]

    def project() -> tuple[float]:
        start = time.perf_counter()
        ImageFolderSource(folder, None, None, in_memory=True, memory_limit_gb=0).load()
        return (len(files) / (time.perf_counter() - start),)

    def pil_alone() -> tuple[float]:
        start = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                np.asarray(image.convert("RGB"))
        return (len(files) / (time.perf_counter() - start),)

    measured = [one_round({"project": project, "pil": pil_alone}, index) for index in range(rounds)]
    print(f"\ndecoding {len(files):,} images of the folder: {rounds} interleaved rounds, median (min–max)")
    return [
        ("PIL alone: open, convert to RGB, to an array", spread([each["pil"][0] for each in measured], ",.0f"),
         "1.00"),
        ("this project: files listed, decoded, stacked into one tensor (no cache)",
         spread([each["project"][0] for each in measured], ",.0f"), paired(measured, "project", "pil")),
    ], [{name: rate for name, (rate,) in each.items()} for each in measured]


def data_size(run: RunResult) -> int:
    data = run.datamodule
    return sum(len(split) for split in (data.train_set, data.val_set, data.test_set))


def compute_timer(run: RunResult, epochs: int, device: str) -> Callable[[], float]:
    """A call timing `epochs` of the run's training and evaluation steps alone, on every batch of its splits,
    normalized in memory beforehand (built once here, for every round). The training steps are a new model's at
    lr 0: every step does the same arithmetic as the run's, from weights as a run starts.

    Every batch, not a sample extrapolated to the epoch: 120 steps (about 6 s of a 45 s run) read the whole run
    0.96 and 1.28 times its compute in two runs of one afternoon (2026-12-07), a run faster than its compute in
    some rounds, where the run's own phases never were; 40 steps of the finished model at the config's peak lr
    read 1.17 then 0.89. (Side by side, the lr and the weights did not change a step's cost, 2 rounds within the
    VM's ±10 %.)"""
    data = run.datamodule
    # Without `_class_path` and `_instantiator`: LightningCLI's record of how it built the model, not arguments.
    hparams = {key: value for key, value in run.model.hparams.items() if not key.startswith("_")}
    training = prepared_batches(data, math.ceil(len(data.train_set) / data.hparams.batch_size), device)
    validation, test = ([*data.ordered_batches(split, device)] if getattr(data, f"{split}_set") is not None else []
                        for split in ("val", "test"))

    def seconds() -> float:
        seed_everything(0, verbose=False)
        model = ImageClassifier(**hparams).to(device)
        optimizer = sgd(model, lr=0.0)
        total = 0.0
        for _ in range(epochs):  # as the run: an epoch of training, then its validation
            total += training_steps_seconds(model.train(), optimizer, training, device)
            total += evaluation_seconds(model, validation, device)
        return total + evaluation_seconds(model, test, device)

    return seconds


@torch.inference_mode()
def evaluation_seconds(model: ImageClassifier, batches: list[tuple[torch.Tensor, torch.Tensor]], device: str) -> float:
    """Seconds of forward passes alone (with the model's flip TTA, as in its validation and test steps)."""
    model.eval()
    synchronize(device)
    start = time.perf_counter()
    for images, _ in batches:
        model(images)
    synchronize(device)
    return time.perf_counter() - start
