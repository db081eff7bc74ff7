"""What happens when a job is stopped: SIGTERM (a scheduler) or Ctrl-C saves a resumable last.ckpt, then the
process exits with the shell's status for that signal and says how to continue.

Lightning turns SIGTERM into a SIGTERMException at the next batch boundary on every rank; Ctrl-C is made to
do the same (a second Ctrl-C stops at once), instead of Lightning's immediate exit 1 without a checkpoint.
While fitting, last.ckpt is then written (mid-epoch included) so `--ckpt_path last` continues from that step.
The loggers are flushed whenever a checkpoint is written, so a kill never leaves a checkpoint whose epoch
is missing from the curves.
"""

import signal
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


class RunInterrupted(Exception):
    """A run stopped by a signal, with what is on disk to continue from."""

    def __init__(self, signal_name: str, stage: str, checkpoint: str | None) -> None:
        self.signal_name, self.stage, self.checkpoint = signal_name, stage, checkpoint
        super().__init__(f"stopped by {signal_name} while {stage}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: the shell's status for "terminated by it", so schedulers see an interruption."""
        return 128 + int(getattr(signal, self.signal_name))


def last_checkpoint_path(trainer: Trainer) -> Path | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.filename == "last" and callback.dirpath:
            return Path(callback.dirpath) / "last.ckpt"
    return None


class StopOnSignal(Callback):
    """SIGTERM and a first Ctrl-C stop the run at the next batch; while fitting, last.ckpt is saved first."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous_sigint = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.signal_name = None

        def first_ctrl_c(signum, frame) -> None:
            self.signal_name = "SIGINT"
            trainer._signal_connector.received_sigterm = True  # the same path as SIGTERM: stop at the next batch
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

        self._previous_sigint = signal.signal(signal.SIGINT, first_ctrl_c)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.signal_name = self.signal_name or "SIGTERM"
        path = last_checkpoint_path(trainer)
        # Only while fitting: in the test after fit the model holds the *selected* weights, which must not
        # become last.ckpt (the finished fit's last.ckpt is already on disk).
        if path is not None and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(path)  # every rank calls it; only rank 0 writes


class FlushLogsOnCheckpoint(Callback):
    """Write the loggers' pending events whenever a checkpoint is saved: a checkpoint is never ahead of its curves."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()
