"""Training progress for a log file: Lightning's bar, written to a file (nohup, SLURM, CI), leaves every
carriage-return update in it (measured: 1.1 MB for 7 CIFAR-10 epochs). This bar writes plain lines instead: at
most one per 10 % of an epoch and never two within a few seconds, and one when each epoch ends, with the rate,
the epoch's ETA and the metrics. The scripts use it where stderr is not a terminal."""

import sys
import time

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar

from project.progress import LINE_EVERY_FRACTION, LINE_EVERY_SECONDS, clock


class LogFileProgressBar(ProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self.enabled = True
        self.epoch_start = self.last_line = 0.0
        self.last_batch = 0
        self.first_batch: int | None = 0  # the epoch's first batch this process ran (None: not known yet)
        self.finished: tuple[str, float] | None = None  # the epoch that ended, not written yet

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        done, total = batch_idx + 1, self.total_train_batches
        now = time.perf_counter()
        if self.first_batch is None:
            self.first_batch = batch_idx
        step = total * LINE_EVERY_FRACTION if total != float("inf") else 1
        if done - self.last_batch >= step and now - self.last_line >= LINE_EVERY_SECONDS and done < total:
            rate = (done - self.first_batch) / (now - self.epoch_start)
            eta = (total - done) / rate if total != float("inf") else float("inf")
            self.write(trainer, f"{self.epoch(trainer)}: batch {done}/{total} ({100 * done / total:.0f} %), "
                                f"{rate:.1f} batches/s, epoch ETA {clock(eta)}, {self.metrics(trainer, pl_module)}")
            self.last_line, self.last_batch = now, done

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Written once the module's own epoch-end hook (which runs after this one) has logged train/acc.
        self.finished = (self.epoch(trainer), time.perf_counter() - self.epoch_start)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed in the middle of an epoch gets no on_train_epoch_start for it (Lightning goes on where it
        # stopped): that epoch is timed from here, over the batches this process runs (was: from the machine's
        # boot, "epoch 2/15 done in 7:47:01").
        self.epoch_start = self.last_line = time.perf_counter()
        self.first_batch = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write_finished_epoch(trainer, pl_module)
        self.epoch_start = self.last_line = time.perf_counter()
        self.last_batch, self.first_batch = 0, 0

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write_finished_epoch(trainer, pl_module)

    def write_finished_epoch(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.finished is not None:
            epoch, seconds = self.finished
            self.write(trainer, f"{epoch} done in {clock(seconds)}: {self.metrics(trainer, pl_module)}")
            self.finished = None

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write(trainer, f"test done: {self.metrics(trainer, pl_module)}")

    def epoch(self, trainer: Trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs if trainer.max_epochs != -1 else '?'}"

    def metrics(self, trainer: Trainer, pl_module: LightningModule) -> str:
        shown = {key: value for key, value in self.get_metrics(trainer, pl_module).items() if key != "v_num"}
        return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                         for key, value in shown.items())

    def write(self, trainer: Trainer, line: str) -> None:
        if self.enabled and trainer.is_global_zero:
            print(line, file=sys.stderr, flush=True)
