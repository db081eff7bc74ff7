"""One run folder (`lightning_logs/<experiment>/version_N`) as its TensorBoard event files tell it."""

from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, EventAccumulator, ScalarEvent

from project.errors import UserError

# Every scalar (the default keeps a random 10,000 per tag), and as few images as allowed: a report shows none.
SIZE_GUIDANCE = {SCALARS: 0, IMAGES: 1}


@dataclass(frozen=True)
class Run:
    """What a report shows of one run; None where the run never logged it."""

    name: str  # <experiment>/version_N
    val_acc: list[tuple[int, float]]  # (epoch, accuracy), one per validation
    train_loss: list[tuple[int, float]]  # (step, loss)
    test_acc: float | None
    trainable_params: int | None  # `params/trainable`, logged by ImageClassifier when training starts
    wall_time_s: float  # from the first event to the last scalar

    @property
    def best_val_acc(self) -> float | None:
        return max(acc for _, acc in self.val_acc) if self.val_acc else None

    @property
    def epochs(self) -> int | None:
        """The last validated epoch + 1 (Lightning counts from 0): a resumed run counts the epochs before it too."""
        return self.val_acc[-1][0] + 1 if self.val_acc else None


def read_run(run_dir: Path) -> Run:
    """Read every event file of the run: fit and test each write their own."""
    if not run_dir.is_dir():
        raise UserError(f"run folder {str(run_dir)!r} does not exist: pass lightning_logs/<experiment>/version_N")
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    if not files:
        raise UserError(
            f"{str(run_dir)!r} holds no TensorBoard event files (events.out.tfevents.*): pass a run folder "
            f"lightning_logs/<experiment>/version_N of a run that logged to TensorBoard"
        )
    scalars: dict[str, list[ScalarEvent]] = {}
    first_wall_times = []
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance=SIZE_GUIDANCE).Reload()
        for tag in accumulator.Tags()[SCALARS]:
            scalars.setdefault(tag, []).extend(accumulator.Scalars(tag))
        try:
            first_wall_times.append(accumulator.FirstEventTimestamp())
        except ValueError:  # an empty file, e.g. from a run killed as it started
            pass
    if not scalars:
        raise UserError(
            f"{str(run_dir)!r} holds event files but no readable curves in them (damaged, or not TensorBoard's): "
            f"pass the run folder of a run that logged to TensorBoard"
        )
    for events in scalars.values():
        events.sort(key=lambda event: event.wall_time)
    last_wall_time = max((event.wall_time for events in scalars.values() for event in events), default=None)
    epochs = scalars.get("epoch", [])
    val_acc = [(epoch_of(event, epochs, index), event.value) for index, event in enumerate(scalars.get("val/acc", []))]
    resolved = run_dir.resolve()
    return Run(
        name=f"{resolved.parent.name}/{resolved.name}",
        val_acc=val_acc,
        train_loss=[(event.step, event.value) for event in scalars.get("train/loss", [])],
        test_acc=scalars["test/acc"][-1].value if "test/acc" in scalars else None,
        trainable_params=int(scalars["params/trainable"][-1].value) if "params/trainable" in scalars else None,
        wall_time_s=last_wall_time - min(first_wall_times) if last_wall_time is not None and first_wall_times else 0.0,
    )


def epoch_of(event: ScalarEvent, epochs: list[ScalarEvent], index: int) -> int:
    """The epoch of a logged value: Lightning writes `epoch` in the same call, so at the same step, microseconds
    apart (test metrics may share the last step, but come later, with the epoch count already advanced).
    Without `epoch` scalars (not a Lightning run), the index-th value is taken to be epoch `index`.
    """
    if not epochs:
        return index
    nearest = min(epochs, key=lambda epoch: (epoch.step != event.step, abs(epoch.wall_time - event.wall_time)))
    return int(nearest.value)
