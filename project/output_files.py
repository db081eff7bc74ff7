"""Where inference outputs go by default, and names that never overwrite an earlier output."""

from collections.abc import Iterable
from pathlib import Path

from project.errors import UserError


def run_folder(checkpoint: Path) -> Path:
    """The run folder of `<run>/checkpoints/x.ckpt`, or the folder holding a checkpoint kept elsewhere."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def output_folder(output: str | Path | None, default: Path) -> Path:
    """`output` (or `default`) as an existing folder, created if needed."""
    folder = Path(output) if output is not None else default
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output {str(folder)!r} is a file: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a file where a parent folder should be, or no permission
        raise UserError(
            f"cannot create the --output folder {str(folder)!r} ({error.strerror}): give another"
        ) from error
    return folder


def unused_stem(folder: Path, stem: str, suffixes: Iterable[str]) -> str:
    """`stem`, or `stem_2`, `stem_3`, ...: the first for which no `folder/<stem><suffix>` exists yet."""
    suffixes = list(suffixes)
    candidate, number = stem, 1
    while any((folder / f"{candidate}{suffix}").exists() for suffix in suffixes):
        number += 1
        candidate = f"{stem}_{number}"
    return candidate
