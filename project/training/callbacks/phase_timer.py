"""Where a run's wall time goes: training steps, validation, checkpoint writes and the final test.

Printed in every run's summary and read by scripts/benchmark.py's whole-run case, which sets the run's time
next to the compute it needed.
"""

import time
from collections import defaultdict

from lightning.pytorch import Callback, LightningModule, Trainer

from project.checkpoints.atomic_io import AtomicCheckpointIO


class PhaseTimer(Callback):
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.epochs: list[float] = []  # each epoch's wall time, validation and checkpoint writes included
        self._started: dict[str, float] = {}

    def _begin(self, phase: str) -> None:
        self._started[phase] = time.perf_counter()

    def _end(self, phase: str) -> None:
        if phase in self._started:
            self.seconds[phase] += time.perf_counter() - self._started.pop(phase)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin("epochs")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        before = self.seconds["epochs"]
        self._end("epochs")
        self.epochs.append(self.seconds["epochs"] - before)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin("sanity check" if trainer.sanity_checking else "validation")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("sanity check" if trainer.sanity_checking else "validation")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin("test")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("test")

    def breakdown(self, trainer: Trainer) -> dict[str, float]:
        """Seconds per phase; `training` is the epochs less the validation and checkpoint writes inside them."""
        io = trainer.strategy.checkpoint_io
        checkpoints = io.seconds if isinstance(io, AtomicCheckpointIO) else 0.0
        training = self.seconds["epochs"] - self.seconds["validation"] - checkpoints
        validation = self.seconds["validation"] + self.seconds["sanity check"]
        return {"training": max(training, 0.0), "validation": validation, "checkpoints": checkpoints,
                "test": self.seconds["test"]}
