"""The whole-run case: the real pretraining run (cifar10_cnn.yaml on an image folder), as a user waits for it.

The first run decodes the folder; then, in interleaved rounds, a run that reads the decode cache and the same
model's training and evaluation steps alone, on batches already in memory (its compute). Each run's wall time is
split by phase (data, training, validation, checkpoint writes, test) and set next to its compute, within a round.
The folder's decoding is timed the same way, in rounds against PIL alone on the same files.
"""

import copy
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import seed_everything
from PIL import Image

from project.config.shipped import config_path
from project.data.image_folder import ImageFolderSource
from project.lab.benchmarking.paths import compute_only, synchronize
from project.lab.benchmarking.rounds import one_round, paired, spread
from project.models import ImageClassifier
from project.training.run import RunResult, fit_and_test

COMPUTE_BATCHES = 130  # 120 timed after 10 warm-up: about 5 s at batch 64 on 2 cores
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
    cold_compute = compute_seconds(cold, epochs, device)  # right after it, as each round pairs its own
    measured = [
        one_round({"run": lambda: fit_and_test(ImageClassifier, args).seconds,
                   "compute": lambda: compute_seconds(cold, epochs, device)}, index)
        for index in range(rounds)
    ]
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


def compute_seconds(run: RunResult, epochs: int, device: str) -> float:
    """Seconds `epochs` of the run's training and evaluation steps take alone, at rates measured here and now."""
    data = run.datamodule
    batch = data.hparams.batch_size
    # The steps of a new model, as the run starts, at lr 0: every step does the same arithmetic, and the weights
    # stay where they are, so each step costs what the one before did and a few seconds of them time a whole epoch.
    # (Trained on, the finished model at the config's peak lr with no warm-up: its 40 steps read the whole run
    # 1.17, then 0.89 times its compute, a run faster than its compute; over 120 steps, longer than the run.)
    seed_everything(0, verbose=False)
    # Without `_class_path` and `_instantiator`: LightningCLI's record of how it built the model, not arguments.
    start = ImageClassifier(**{key: value for key, value in run.model.hparams.items() if not key.startswith("_")})
    batches = max(2, min(COMPUTE_BATCHES, len(data.train_set) // batch))
    train_rate = compute_only(start, data, batches, min(10, batches - 1), device, lr=0.0)
    eval_rate = evaluation_rate(start, data, device)
    evaluated = epochs * len(data.val_set) + len(data.test_set)
    return epochs * len(data.train_set) / train_rate + evaluated / eval_rate


@torch.inference_mode()
def evaluation_rate(model: ImageClassifier, data, device: str) -> float:
    """Images per second of forward passes alone on normalized batches in memory (validation and test steps)."""
    model = copy.deepcopy(model).to(device).eval()
    images = data.val_set.images[: 20 * data.hparams.batch_size]
    batches = [data.batch_transform(part.to(device), None)[0] for part in images.split(data.hparams.batch_size)]
    model(batches[0])  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        model(batch)
    synchronize(device)
    return len(images) / (time.perf_counter() - start)
