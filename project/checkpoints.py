"""Finding and safely reading checkpoints: the handoff from a pretraining run to a fine-tuning run."""

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from project.errors import UserError

CHECKPOINT_PATTERNS = {"best": "best-*.ckpt", "last": "last.ckpt"}


def version_number(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def selects_last_epoch(run: Path) -> bool:
    """Whether the run was configured with `--model_selection=last_epoch` (its config.yaml says so)."""
    config = run / "config.yaml"
    return config.is_file() and re.search(r"^model_selection: last_epoch$", config.read_text(), re.M) is not None


def find_checkpoint(location: str | Path, which: Literal["best", "last"]) -> Path:
    """A checkpoint file from a path that is the file, a run folder (`version_N`, or its `checkpoints/`) or an
    experiment folder. `best` is the checkpoint the run selected: best-*.ckpt, or last.ckpt for a run that
    selected its last epoch (`--model_selection=last_epoch`).

    In an experiment folder the newest run (highest N) that holds the wanted checkpoint wins.
    """
    path = Path(location)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(
            f"checkpoint {str(path)!r} does not exist: give a .ckpt file, a run folder or an experiment folder"
        )
    if (path / "checkpoints").is_dir():
        runs = [path]
    elif path.name == "checkpoints":  # a run's checkpoints/ folder itself
        runs = [path.parent]
    else:
        runs = sorted(path.glob("version_*"), key=version_number, reverse=True)
    for run in runs:
        pattern = CHECKPOINT_PATTERNS["last" if which == "best" and selects_last_epoch(run) else which]
        found = sorted((run / "checkpoints").glob(pattern), key=lambda p: p.stat().st_mtime)
        complete = [path for path in found if zipfile.is_zipfile(path)]  # skip a damaged file for an older one
        if complete:
            return complete[-1]
    raise UserError(
        f"no {which} checkpoint ({CHECKPOINT_PATTERNS[which]}) under {str(path)!r}: run the training that writes it "
        f"first (e.g. python scripts/pretrain.py), or give the .ckpt path"
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`, so a file carrying code is refused instead of run."""
    if not Path(path).is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist")
    # torch.save writes a zip archive: anything else is truncated (the zip index sits at the end) or not a checkpoint.
    if not zipfile.is_zipfile(path):
        raise UserError(f"{str(path)!r} is not a readable checkpoint (truncated, or another kind of file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"refused to load {str(path)!r}: it holds objects other than weights and plain values, "
            f"which could run code; only load checkpoints you trust, re-saved as plain state"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UserError(f"{str(path)!r} is not a readable checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{str(path)!r} is not a Lightning checkpoint (it has no state_dict)")
    return checkpoint


def backbone_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The `backbone.` part of a model's state dict, with the prefix removed."""
    prefix = "backbone."
    return {key[len(prefix) :]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}


def load_backbone_weights(backbone: nn.Module, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Copy pretrained weights into `backbone`, strictly: any missing, unexpected or reshaped key is an error."""
    state = backbone_state(checkpoint)
    own = backbone.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    reshaped = [
        f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
        for key in sorted(own.keys() & state.keys())
        if state[key].shape != own[key].shape
    ]
    if missing or unexpected or reshaped:
        raise UserError(
            f"{str(path)!r} does not fit this backbone: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"other shape {reshaped[:5]}; use a checkpoint of the same architecture"
        )
    backbone.load_state_dict(state)
