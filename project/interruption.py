"""What happens when a scheduler stops a job: SIGTERM saves a resumable checkpoint before the process exits.

Lightning turns SIGTERM into a SIGTERMException at the next batch on every rank; this callback then writes
last.ckpt (mid-epoch included) so `--ckpt_path last` continues from that step. Lightning writes checkpoints
to a temporary file in $TMPDIR and moves it into place (its fsspec transaction): a rename, so even SIGKILL
leaves the previous complete file or the new one, where $TMPDIR and the logs share a filesystem.
"""

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


def last_checkpoint_path(trainer: Trainer) -> Path | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.filename == "last" and callback.dirpath:
            return Path(callback.dirpath) / "last.ckpt"
    return None


class SaveOnSigterm(Callback):
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        path = last_checkpoint_path(trainer)
        # Only while fitting: in the test after fit the model holds the *best* weights, which must not
        # become last.ckpt (the finished fit's last.ckpt is already on disk).
        if isinstance(exception, SIGTERMException) and path is not None and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(path)  # every rank calls it; only rank 0 writes
