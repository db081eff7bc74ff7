"""SLURM's requeue signal handled between two training steps, not inside whatever the process was doing.

Lightning saves the requeue checkpoint and calls `scontrol requeue` inside the signal handler itself
(`_SignalConnector._slurm_sigusr_handler_fn`, which first flushes and closes the loggers). A signal that arrives
while the main thread is inside a TensorBoard write, holding the writer's lock, makes that flush wait on the same
lock forever: the job hangs and is never requeued (a simulated requeue hung so under load). A handler installed
before Lightning's keeps Lightning's out (it never replaces one that is set); ours only notes the signal, and
Lightning's own routine runs at the next training batch end — on every rank at the same step, rank 0's signal
deciding, as Lightning does for SIGTERM.
"""

import signal

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer


class RequeueBetweenSteps(Callback):
    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous = None
        self._requested = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        environment = trainer._accelerator_connector.cluster_environment
        if stage != "fit" or not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue:
            return
        self._signum = environment.requeue_signal or signal.SIGUSR1
        self._requested = False

        def note_the_signal(signum, frame) -> None:
            self._requested = True

        self._previous = signal.signal(self._signum, note_the_signal)

    def on_train_batch_end(self, trainer: Trainer, *args) -> None:
        if self._signum is None:
            return
        requested = self._requested
        if trainer.world_size > 1:  # every rank saves (a collective) at the same step
            flag = torch.tensor([int(requested)], device=trainer.strategy.root_device)
            torch.distributed.broadcast(flag, src=0)
            requested = bool(flag.item())
        if requested:
            self._requested = False
            trainer._signal_connector._slurm_sigusr_handler_fn(self._signum, None)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._signum is not None and self._previous is not None:
            signal.signal(self._signum, self._previous)
        self._signum, self._previous = None, None
