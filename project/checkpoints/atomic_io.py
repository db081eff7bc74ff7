"""Checkpoint writes that a kill cannot half-finish, wherever $TMPDIR is.

Lightning writes a checkpoint to a temporary file in $TMPDIR and moves it into place. Where $TMPDIR is on
another filesystem that move is a copy: a SIGKILL during it left a 0-byte last.ckpt that could not be
resumed (measured in the bad-input audit), and a killed write left its temporary file in $TMPDIR for good.
Here the temporary file sits beside the checkpoint, is flushed to disk, then renamed over it: the previous
complete file stays until the new one is whole. A killed write's leftover is removed at the next save.
"""

import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

TEMPORARY_PREFIX = ".writing-"


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0  # spent writing, for the run's time breakdown

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        start = time.perf_counter()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in path.parent.glob(f"{TEMPORARY_PREFIX}*"):  # from a write that was killed
            if not leftover.name.endswith(f".{os.getpid()}"):
                leftover.unlink(missing_ok=True)
        temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{os.getpid()}")
        with temporary.open("wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        self.seconds += time.perf_counter() - start
