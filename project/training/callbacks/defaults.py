"""The callbacks every run gets, in one list."""

from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from project.training.callbacks.best_checkpoint import BestCheckpoint
from project.training.callbacks.epoch_seeding import ReseedEveryEpoch
from project.training.callbacks.evaluation_figures import LogEvaluationFigures
from project.training.callbacks.interruption import FlushLogsOnCheckpoint, StopOnSignal
from project.training.callbacks.log_file_progress import LogFileProgressBar
from project.training.callbacks.phase_timer import PhaseTimer
from project.training.callbacks.slurm_requeue import RequeueBetweenSteps


def default_callbacks(
    with_lr_monitor: bool, checkpoint_every_n_steps: int | None = None, model_selection: str = "best_val",
    monitor: str = "val/acc", progress_in_lines: bool = False,
) -> list[Callback]:
    """Checkpoints (the best by `monitor`, ties by val/loss, unless the last epoch is selected; the last, to
    resume), interruption, per-epoch seeding, lr curves, test figures; progress as lines for a log file."""
    callbacks: list[Callback] = [
        # A checkpointer of its own for last.ckpt: Lightning 2.6's save_last only writes when the best one changed,
        # so a run whose val/acc stopped improving would resume from an old epoch.
        ModelCheckpoint(filename="last", monitor=None, save_top_k=1, enable_version_counter=False),
        StopOnSignal(),
        RequeueBetweenSteps(),  # SLURM's requeue at a step boundary, not inside a logger write
        FlushLogsOnCheckpoint(),
        ReseedEveryEpoch(),
        LogEvaluationFigures(),  # does nothing without a TensorBoard logger
        PhaseTimer(),
    ]
    if progress_in_lines:
        callbacks.append(LogFileProgressBar())
    if model_selection == "best_val":  # ties: the lower val/loss wins
        callbacks.insert(0, BestCheckpoint(monitor=monitor, mode="max", filename="best-{epoch:03d}"))
    if checkpoint_every_n_steps:  # mid-epoch copies of last.ckpt (Lightning's checkpointers take one trigger each)
        callbacks.append(
            ModelCheckpoint(
                filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                every_n_train_steps=checkpoint_every_n_steps,
            )
        )
    return [*callbacks, LearningRateMonitor(logging_interval="step")] if with_lr_monitor else callbacks
