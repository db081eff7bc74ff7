"""Tiny trained runs for the inference tests: a pretraining run on digits 0-4, a fine-tuning run on digits 5-9."""

import shutil
from pathlib import Path

from tiny_settings import TINY_CNN, TINY_RUN

from project.models import ImageClassifier, TransferClassifier
from project.training.run import run_experiment

# More batches and a higher lr than the config's gentle one: a model that predicts several classes, so
# accuracies and confusion matrices have something to show (still a few seconds on CPU).
LEARN_A_LITTLE = ["--trainer.limit_train_batches=8", "--model.lr=0.05"]


def pretrained_run(output_dir: Path) -> Path:
    """A pretraining run's folder (`version_0`, with best-*.ckpt and last.ckpt) under `output_dir`."""
    run_experiment(
        ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, *LEARN_A_LITTLE, f"--output_dir={output_dir}"]
    )
    return output_dir / "digits_pretrain" / "version_0"


def finetuned_run(output_dir: Path, pretrained: Path) -> Path:
    """A fine-tuning run from a copy of `pretrained` that is deleted afterwards, as on a machine it was moved to."""
    copy = output_dir / "pretrained_elsewhere"
    shutil.copytree(pretrained, copy)
    run_experiment(
        TransferClassifier,
        "digits_finetune.yaml",
        [*TINY_RUN, *LEARN_A_LITTLE, f"--output_dir={output_dir}", f"--model.pretrained={copy}"],
    )
    shutil.rmtree(copy)
    return output_dir / "digits_finetune" / "version_0"


def best_checkpoint(run: Path) -> Path:
    return next((run / "checkpoints").glob("best-*.ckpt"))
