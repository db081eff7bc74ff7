"""One run folder (`lightning_logs/<experiment>/version_N`) as its TensorBoard event files, or else its CSV
logger's metrics files, tell it."""

import csv
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
    wall_time_s: float | None  # from the first event to the last scalar (None: CSV files record no times)

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
    csv_files = [*run_dir.glob("metrics-before-resume-*.csv"), *run_dir.glob("metrics.csv")]
    if not files and csv_files:
        return read_csv_run(run_dir)
    if files and csv_files:  # a run resumed under another logger: one source is read, and the user told so
        print(f"note: {run_dir} has TensorBoard events and CSV metrics (its logger changed on a resume): the "
              f"report reads the events; the CSV files are {', '.join(path.name for path in sorted(csv_files))}")
    if not files:
        raise UserError(
            f"{str(run_dir)!r} holds no TensorBoard event files (events.out.tfevents.*) and no metrics.csv: pass a "
            f"run folder lightning_logs/<experiment>/version_N of a run that logged to TensorBoard or CSV"
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


def read_csv_run(run_dir: Path) -> Run:
    """The run as its CSV logger wrote it: metrics.csv, after the files a resume set aside (metrics-before-resume-K)."""
    earlier = sorted(run_dir.glob("metrics-before-resume-*.csv"), key=lambda path: int(path.stem.rsplit("-", 1)[1]))
    rows = []
    for path in [*earlier, *run_dir.glob("metrics.csv")]:
        try:
            with path.open(newline="") as file:
                rows.extend(csv.DictReader(file))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UserError(f"{str(path)!r} is not a readable CSV file ({error}): pass a run folder whose metrics.csv "
                            f"the CSV logger wrote") from error

    def values(column: str, by: str) -> list[tuple[int, float]]:
        try:
            return [(int(float(row[by])), float(row[column])) for row in rows if row.get(column) and row.get(by)]
        except ValueError as error:
            raise UserError(f"{str(run_dir)!r}: a {column!r} value in its metrics files is not a number ({error})") \
                from error

    if not any(values(column, "step") for column in ("val/acc", "train/loss", "test/acc")):
        raise UserError(f"{str(run_dir)!r}: its metrics.csv holds no val/acc, train/loss or test/acc: pass the run "
                        f"folder of a training run")
    test_acc, trainable = values("test/acc", "step"), values("params/trainable", "step")
    resolved = run_dir.resolve()
    return Run(
        name=f"{resolved.parent.name}/{resolved.name}",
        val_acc=values("val/acc", "epoch"),
        train_loss=values("train/loss", "step"),
        test_acc=test_acc[-1][1] if test_acc else None,
        trainable_params=int(trainable[-1][1]) if trainable else None,
        wall_time_s=None,
    )
