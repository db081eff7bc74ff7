"""What happens when a scheduler stops a job: SIGTERM saves a resumable checkpoint before the process exits.

Lightning turns SIGTERM into a SIGTERMException at the next batch on every rank; this callback then writes
last.ckpt (mid-epoch included) so `--ckpt_path last` continues from that step. Checkpoint files are
written to a temporary file and renamed (Lightning's fsspec transaction), so even SIGKILL leaves either
the previous complete file or the new one, never half a file.
"""

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


def last_checkpoint_path(trainer: Trainer) -> Path | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.filename == "last" and callback.dirpath:
            return Path(callback.dirpath) / "last.ckpt"
    return None


class SaveOnSigterm(Callback):
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        path = last_checkpoint_path(trainer)
        if isinstance(exception, SIGTERMException) and path is not None:
            trainer.save_checkpoint(path)  # every rank calls it; only rank 0 writes
