"""The whole-run case: the real pretraining run (cifar10_cnn.yaml on an image folder), twice, as a user waits for it.

The first run decodes the folder, the second reads the decode cache. Each run's wall time is split by phase
(data, training, validation, checkpoint writes, test) and set next to its compute: the same model's
training and evaluation steps alone, on batches already in memory, measured in the same process.
"""

import copy
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from project.config.shipped import config_path
from project.data.image_files import image_files
from project.data.image_folder import split_folders
from project.lab.benchmarking.paths import compute_only, synchronize
from project.models import ImageClassifier
from project.training.run import RunResult, fit_and_test

PHASES = ("data", "training", "validation", "checkpoints", "test", "total")


def whole_run(folder: str, epochs: int, batch_size: int | None, scratch: Path, device: str) -> list[tuple[str, ...]]:
    """`batch_size`: None runs the config's own."""
    args = [
        "--config", str(config_path("cifar10_cnn.yaml")), "--data.dataset=imagefolder", f"--data.root={folder}",
        f"--data.cache_dir={scratch / 'decode_cache'}", *([f"--data.batch_size={batch_size}"] if batch_size else []),
        f"--trainer.max_epochs={epochs}", f"--output_dir={scratch}",
        "--experiment=whole_run", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
    ]
    cold, warm = fit_and_test(ImageClassifier, args), fit_and_test(ImageClassifier, args)
    compute = compute_seconds(warm, epochs, device)
    rows = [(phase, f"{cold.seconds[phase]:.1f}", f"{warm.seconds[phase]:.1f}") for phase in PHASES]
    rows.append((f"compute: {epochs} epochs of training and evaluation steps alone", f"{compute:.1f}",
                 f"{compute:.1f}"))
    ratios = (f"{run.seconds['total'] / compute:.2f}" for run in (cold, warm))
    rows.append(("whole run / compute", *ratios))
    images = sum(len(split) for split in (warm.datamodule.train_set, warm.datamodule.val_set, warm.datamodule.test_set))
    decode_seconds = cold.seconds["data"] - warm.seconds["data"]
    # Too few images and the difference is below the timer's noise: say so instead of printing a rate.
    decode = f"{images / decode_seconds:,.0f} images/s" if decode_seconds > 0.1 else "too few images to measure"
    print(f"\nwhole run on {device}: {images} images, {epochs} epochs; decoding the folder (first run's data time "
          f"less the second's): {decode}, PIL alone on the same files: {pil_decode_rate(folder):,.0f} images/s")
    return rows


def compute_seconds(run: RunResult, epochs: int, device: str) -> float:
    """Seconds `epochs` of the run's training and evaluation steps take alone, at rates measured here and now."""
    data, model = run.datamodule, run.model
    batch = data.hparams.batch_size
    batches = max(2, min(40, len(data.train_set) // batch))
    train_rate = compute_only(model, data, batches, min(5, batches - 1), device)
    eval_rate = evaluation_rate(model, data, device)
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


def pil_decode_rate(folder: str, count: int = 2000) -> float:
    """Images per second PIL decodes of the folder's files (open, convert, to an array): the floor of any decoding."""
    files = image_files(split_folders(folder)["train"])
    chosen = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:count]]
    start = time.perf_counter()
    for path in chosen:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))
    return len(chosen) / (time.perf_counter() - start)
