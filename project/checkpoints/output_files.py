"""Where inference outputs go by default, and writing them so that nothing is lost: every file is complete or
absent (written beside its name, then given it in one step), and a name another process has taken is never
written over (hard-linked into place, which fails on an existing name, rather than checked first and opened
later)."""

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from project.checkpoints.run_claims import process_alive
from project.errors import UserError

Writer = Callable[[Path], None]  # fills the file at the path it is given


def run_folder(checkpoint: Path) -> Path:
    """The run folder of `<run>/checkpoints/x.ckpt`, or the folder holding a checkpoint kept elsewhere."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def output_folder(output: str | Path | None, default: Path) -> Path:
    """`output` (or `default`) as an existing folder this user can write in, created if needed: checked before
    any work, so a read-only folder is one line, not a traceback after an evaluation."""
    folder = Path(output) if output is not None else default
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output_dir {str(folder)!r} is a file: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a file where a parent folder should be, or no permission
        raise UserError(
            f"cannot create the --output_dir folder {str(folder)!r} ({error.strerror}): give another"
        ) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--output_dir {str(folder)!r} is not writable: give a folder you can write in")
    return folder


def partial_path(path: Path) -> Path:
    """Where `path` is written before it takes its name: hidden, this process's, with the same suffix (libraries
    such as matplotlib choose the format by it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def remove_stale_partials(folder: Path) -> None:
    """Partial files left in `folder` by processes killed while writing (their pid gone): never a result, only
    clutter."""
    for partial in folder.glob(".*.partial*"):
        pid = partial.name.rsplit(".partial", 1)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def write_new_file(path: Path, write: Writer) -> None:
    """Write `path` whole or not at all; FileExistsError if the name exists (taken meanwhile by another process)."""
    partial = partial_path(path)
    try:
        write(partial)
        os.link(partial, path)  # atomic, and refuses an existing name
    except FileExistsError:
        raise
    except OSError as error:
        raise UserError(f"cannot write {str(path)!r} ({error.strerror}): give a folder you can write in") from error
    finally:
        partial.unlink(missing_ok=True)


def replace_file(path: Path, write: Writer) -> None:
    """Write `path` whole, replacing what is there in one step: a reader sees the old file or the new, never half."""
    remove_stale_partials(path.parent)
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as error:
        raise UserError(f"cannot write {str(path)!r} ({error.strerror}): give a folder you can write in") from error
    finally:
        partial.unlink(missing_ok=True)


def write_new_files(folder: Path, stem: str, suffixes: Sequence[str],
                    writers: Callable[[str], Sequence[Writer | None]]) -> list[Path]:
    """Files `folder/<stem><suffix>` under the first of `stem`, `stem_2`, ... that none of them has, each complete
    or absent; `writers(stem)` gives one writer per suffix, in writing order (None: that file is not written).
    A stem another process takes meanwhile is passed over, and what this one had written under it removed."""
    remove_stale_partials(folder)
    number = 1
    while True:
        candidate = stem if number == 1 else f"{stem}_{number}"
        paths = [folder / f"{candidate}{suffix}" for suffix in suffixes]
        if not any(path.exists() for path in paths):
            written: list[Path] = []
            try:
                for path, write in zip(paths, writers(candidate), strict=True):
                    if write is not None:
                        write_new_file(path, write)
                        written.append(path)
                return written
            except FileExistsError:
                for path in written:
                    path.unlink(missing_ok=True)
        number += 1
