"""Finding and safely reading checkpoints: the handoff from a pretraining run to a fine-tuning run."""

import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Literal

import torch

from project.checkpoints.run_claims import TEST_RECORD, writer_of
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

    In an experiment folder the newest run (highest N) that holds the wanted checkpoint wins; for `best`, a run
    another process is still training is passed over (its checkpoint is not yet the run's selection).
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
        if which == "best":
            busy = [run for run in runs if writer_of(run) is not None]
            if busy:
                print(f"note: passing over {', '.join(str(run) for run in busy)}: still being trained "
                      f"({writer_of(busy[0])}); taking the newest finished run")
            runs = [run for run in runs if run not in busy]
            finished = [run for run in runs if (run / TEST_RECORD).is_file()]
            if finished and runs[0] not in finished:  # killed or stopped before their test: not yet a selection
                newer = runs[: runs.index(finished[0])]
                print(f"note: passing over {', '.join(str(run) for run in newer)}: not finished (no final test); "
                      f"taking the newest finished run, {finished[0]}")
                runs = runs[runs.index(finished[0]):]
    for run in runs:
        pattern = CHECKPOINT_PATTERNS["last" if which == "best" and selects_last_epoch(run) else which]
        found = sorted((run / "checkpoints").glob(pattern), key=lambda p: p.stat().st_mtime)
        if not found:
            continue  # a run stopped before its first checkpoint: an older run's may be the one
        complete = [path for path in found if zipfile.is_zipfile(path)]
        if complete:
            if which == "best" and not (run / TEST_RECORD).is_file():
                print(f"note: {run} did not finish (no final test: stopped or killed, or run without a test); "
                      f"taking its selection so far, {complete[-1].name}; to finish it first, rerun the command that "
                      f"started it with --ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
            return complete[-1]
        if which == "last":  # resuming: the run's newest complete checkpoint of any kind keeps it going
            others = sorted((run / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
            fallback = [path for path in others if zipfile.is_zipfile(path)]
            if fallback:
                print(f"note: {str(found[-1])!r} is damaged (not a complete checkpoint); resuming from "
                      f"{str(fallback[-1])!r}, the run's newest complete one")
                return fallback[-1]
        raise UserError(
            f"{str(found[-1])!r} is damaged (not a complete checkpoint) and its run holds no other complete "
            f"checkpoint: start a new run without --ckpt_path, or give another checkpoint"
        )
    raise UserError(
        f"no {which} checkpoint ({CHECKPOINT_PATTERNS[which]}) under {str(path)!r}: run the training that writes it "
        f"first (e.g. python scripts/pretrain.py), or give the .ckpt path"
    )


def file_bytes(path: str | Path) -> bytes:
    """The whole file, read once (for a caller that reads it twice, as a checkpoint and as a model)."""
    path = Path(path)
    check_readable(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {str(path)!r} ({error.strerror}): check its permissions") from error


def check_readable(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise UserError(f"cannot read {str(path)!r} ({error.strerror}): check its permissions") from error


def read_torch_file(path: str | Path, content: bytes | None = None) -> Any:
    """A file written by torch.save, read with `weights_only=True`, so a file carrying code is refused, not run.
    `content`: the file's bytes, where the caller read them already (`file_bytes`)."""
    path = Path(path)
    if content is None:
        check_readable(path)
    source = path if content is None else io.BytesIO(content)
    # torch.save writes a zip archive: anything else is truncated (the zip index sits at the end) or not a checkpoint.
    if not zipfile.is_zipfile(source):
        raise UserError(f"{str(path)!r} is not a readable checkpoint (truncated, or another kind of file)")
    if content is not None:
        source.seek(0)
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"refused to load {str(path)!r}: it holds objects other than weights and plain values, "
            f"which could run code; only load checkpoints you trust, re-saved as plain state"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UserError(f"{str(path)!r} is not a readable checkpoint: {error}") from error


def load_checkpoint(path: str | Path, content: bytes | None = None) -> dict[str, Any]:
    """A Lightning checkpoint, read safely (see `read_torch_file`)."""
    checkpoint = read_torch_file(path, content)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{str(path)!r} is not a Lightning checkpoint (it has no state_dict)")
    return checkpoint


def read_weights_file(path: str | Path) -> Any:
    """A file written by torch.save (read as `read_torch_file` does), or a .safetensors file: the format timm's and
    the Hugging Face hub's weights come in, which holds tensors only and so cannot carry code."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return read_torch_file(path)
    try:
        from safetensors.torch import load_file  # comes with timm (the [timm] extra)
    except ImportError as error:
        raise UserError(f"reading {str(path)!r} needs safetensors: pip install -e '.[timm]' (or pip install "
                        f"safetensors)") from error
    try:
        return load_file(path, device="cpu")
    except Exception as error:  # safetensors' own error type for a damaged header or file
        raise UserError(f"{str(path)!r} is not a readable .safetensors file ({' '.join(str(error).split())[:200]})") \
            from error
