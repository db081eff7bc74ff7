"""Resuming a run: which checkpoint, which run folder it continues in, and whether it fits the model built now.

Everything here is decided before the Trainer exists, so a resume that cannot work stops with a one-line
error and writes nothing into the run it names.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningModule

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.errors import UserError

# The hyperparameters that fix a model's shape: a checkpoint differing in any of them cannot be resumed.
ARCHITECTURE_KEYS = ("backbone", "backbone_args", "num_classes", "input_shape", "class_names")
# The settings that make the run what it is: a resume with another value would train a run that its record (the
# checkpoint's hyperparameters, config-resume-N.yaml) then describes wrongly, or crash restoring the optimizer.
TRAINING_KEYS = {
    "model": ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "scheduler", "label_smoothing", "strategy",
              "reinit_blocks", "backbone_lr_ratio", "layer_decay", "unfreeze_at", "lp_fraction", "ft_lr_ratio",
              "probe_views", "normalization", "temperature"),
    "data": ("dataset", "batch_size", "samples_per_class", "val_samples_per_class", "val_fraction", "test_fraction",
             "split_seed", "budget_seed", "classes", "augment", "crop_padding"),  # mean, std: input_from_weights.py
}
RUN_KEYS = {"": ("seed_everything", "model_selection"),  # compared with the run's first config.yaml
            "trainer": ("accumulate_grad_batches", "gradient_clip_val", "precision")}


@dataclass(frozen=True)
class Resume:
    """A checkpoint to resume and the run folder it belongs to (None: a file kept outside any run folder)."""

    path: Path
    checkpoint: dict[str, Any]
    run_folder: Path | None

    @property
    def hparams(self) -> dict[str, Any]:
        return self.checkpoint.get("hyper_parameters", {})


def find_resume(ckpt_path: str | None, output_dir: str, experiment: str) -> Resume | None:
    """`last`: the experiment's newest complete last.ckpt; a path: that file (or run folder's), read safely."""
    if ckpt_path is None:
        return None
    experiment_dir = Path(output_dir) / experiment
    if ckpt_path == "last" and not experiment_dir.is_dir():
        raise UserError(
            f"nothing to resume: {str(experiment_dir)!r} holds no run of experiment {experiment!r} "
            f"(check --experiment and --output_dir), or drop --ckpt_path to start a new run"
        )
    path = find_checkpoint(experiment_dir if ckpt_path == "last" else ckpt_path, "last")
    checkpoint = load_checkpoint(path)  # a clear error now for a damaged file, or one that would run code
    in_run = path.parent.name == "checkpoints" and re.fullmatch(r"version_\d+", path.parent.parent.name)
    return Resume(path, checkpoint, path.parent.parent if in_run else None)


def model_class_name(checkpoint: dict[str, Any]) -> str:
    """The LightningModule class that wrote `checkpoint` (older checkpoints: told apart by their hyperparameters)."""
    recorded = checkpoint.get("model_class")
    if recorded:
        return recorded
    return "TransferClassifier" if "strategy" in checkpoint.get("hyper_parameters", {}) else "ImageClassifier"


RESUME_FIX = ("resume with the script and settings that wrote it (its config.yaml is in its run folder), or drop "
              "--ckpt_path to start a new run")


def check_resume_fits(resume: Resume, model: LightningModule) -> None:
    """The checkpoint must be of the same class and architecture as `model` (classes and input shape included)."""
    check_resume_class(resume, type(model).__name__)
    differing = [
        f"{key} {normalized(resume.hparams.get(key))!r} vs {normalized(model.hparams.get(key))!r}"
        for key in ARCHITECTURE_KEYS
        if normalized(resume.hparams.get(key)) != normalized(model.hparams.get(key))
    ]
    own, saved = model.state_dict(), resume.checkpoint["state_dict"]
    reshaped = sorted(key for key in own.keys() & saved.keys() if own[key].shape != saved[key].shape)
    if differing or reshaped or own.keys() != saved.keys():
        detail = "; ".join(differing[:3]) or f"weights {sorted(set(own) ^ set(saved))[:3] or reshaped[:3]}"
        raise UserError(
            f"cannot resume from {str(resume.path)!r}: its model differs from the one this run builds ({detail}); "
            f"{RESUME_FIX}"
        )


def check_resume_class(resume: Resume, own_class: str) -> None:
    """The checkpoint must be of the class this run builds: checked first, since another model is the more basic
    mistake than any setting."""
    saved_class = model_class_name(resume.checkpoint)
    if saved_class != own_class:
        raise UserError(
            f"cannot resume from {str(resume.path)!r}: it is {article(saved_class)} {saved_class} checkpoint but this "
            f"run builds {article(own_class)} {own_class}; {RESUME_FIX}"
        )


def check_same_settings(resume: Resume, config: dict[str, Any]) -> None:
    """The resumed run's training settings (TRAINING_KEYS) are the checkpoint's: refused otherwise, before anything
    is written, naming each difference."""
    saved = {"model": resume.hparams, "data": resume.checkpoint.get("datamodule_hyper_parameters", {})}
    # A model class chosen by --model (pretraining) holds its settings under init_args.
    given = {"model": config["model"].get("init_args", config["model"]), "data": config["data"]}
    changed = [
        f"{section}.{key} {normalized(given[section][key])!r} (was {normalized(saved[section][key])!r})"
        for section, keys in TRAINING_KEYS.items() for key in keys
        if key in saved[section] and key in given[section]
        and normalized(given[section][key]) != normalized(saved[section][key])
    ]
    first = resume.run_folder / "config.yaml" if resume.run_folder is not None else None
    started = (yaml.safe_load(first.read_text()) or {}) if first is not None and first.is_file() else {}
    for section, keys in RUN_KEYS.items():  # what only the run's first config.yaml records
        recorded = started.get(section, {}) if section else started
        given = config[section] if section else config
        changed += [f"{section + '.' if section else ''}{key} {normalized(given[key])!r} (was "
                    f"{normalized(recorded[key])!r})" for key in keys if isinstance(recorded, dict)
                    and key in recorded and normalized(given[key]) != normalized(recorded[key])]
    if changed:
        raise UserError(
            f"cannot resume {str(resume.path)!r} with other training settings than it was started with: "
            f"{'; '.join(changed)}; resume with its own (its run folder's config.yaml), or start a new run without "
            f"--ckpt_path to train with these"
        )


def check_epochs(resume: Resume, max_epochs: int | None) -> None:
    """A resume must not ask for fewer epochs than the run has trained (Lightning refuses it once the run folder has
    been written to)."""
    progress = resume.checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    trained = progress.get("processed")  # epochs whose training finished (Lightning's own count)
    if max_epochs is not None and max_epochs >= 0 and trained is not None and max_epochs < trained:
        raise UserError(f"cannot resume {str(resume.path)!r} with --trainer.max_epochs={max_epochs}: it has trained "
                        f"{trained} epochs already; give {trained} or more (to train on), or start a new run")


def check_writable(resume: Resume) -> None:
    """A resumed run writes into its folder and its checkpoints/: both must take new files, checked now rather
    than when the first checkpoint is saved, after an epoch of training."""
    if resume.run_folder is None:
        return
    for folder in (resume.run_folder, resume.run_folder / "checkpoints"):
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"cannot resume {str(resume.path)!r}: {str(folder)!r} is not writable (a resumed run "
                            f"writes its checkpoints there); restore its permissions, or start a new run")


def article(name: str) -> str:
    return "an" if name[:1] in "AEIOU" else "a"


def normalized(value: Any) -> Any:
    """Tuples and lists compare alike (YAML gives lists, hyperparameters may hold tuples)."""
    if isinstance(value, tuple | list):
        return [normalized(item) for item in value]
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    return value
