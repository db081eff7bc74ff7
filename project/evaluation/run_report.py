"""scripts/report.py: runs side by side: their curves in report.png, their numbers in report.md (also printed)."""

import sys
from pathlib import Path

from jsonargparse import ArgumentParser
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from project.checkpoints.output_files import output_folder, write_new_files
from project.errors import exits_on_user_error
from project.evaluation.run_events import Run, read_run

COLUMNS = ("run", "best val acc", "test acc", "epochs", "wall time", "parameters trained")
MISSING = "–"  # a value the run never logged


def main(args: list[str] | None = None) -> None:
    """Read the runs, write the figure and the table; a bad folder exits with status 2 and a one-line message."""
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=str, help="run folders: lightning_logs/<experiment>/version_N")
    parser.add_argument(
        "--output_dir", type=str | None, default=None,
        help="folder for report.png and report.md (default: the first run's folder; report_2.* and so on when those "
        "exist: nothing is overwritten)",
    )
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        runs = [read_run(Path(run_dir)) for run_dir in config.run_dirs]
        folder = output_folder(config.output_dir, Path(config.run_dirs[0]))
    table = markdown_table(runs)
    figure = curves_figure(runs)
    written = write_new_files(folder, "report", (".png", ".md"), lambda stem: [
        figure.savefig, lambda file: file.write_text(table)])
    print(table, end="")
    print(f"written: {written[0]}, {written[1]}")


def curves_figure(runs: list[Run]) -> Figure:
    """Two panels, 1200×450 pixels: val/acc per epoch and train/loss per step, one colour per run in both."""
    # Figure, not pyplot: no GUI backend and no global figure list; savefig renders PNGs with Agg.
    figure = Figure(figsize=(12, 4.5), dpi=100, layout="constrained")
    val_axes, loss_axes = figure.subplots(1, 2)
    for index, run in enumerate(runs):
        if run.val_acc:
            val_axes.plot(*zip(*run.val_acc, strict=True), marker="o", color=f"C{index}", label=run.name)
        if run.train_loss:
            loss_axes.plot(*zip(*run.train_loss, strict=True), color=f"C{index}", label=run.name)
    val_axes.set(title="val/acc", xlabel="epoch", ylabel="accuracy")
    val_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.set(title="train/loss", xlabel="step", ylabel="loss")
    for axes in (val_axes, loss_axes):
        axes.grid(alpha=0.3)
        if axes.lines:  # legend() warns when there is nothing to label
            axes.legend(fontsize=8)
    return figure


def markdown_table(runs: list[Run]) -> str:
    rows = [COLUMNS, ("---",) * len(COLUMNS), *(table_row(run) for run in runs)]
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


def table_row(run: Run) -> tuple[str, ...]:
    return (
        run.name,
        MISSING if run.best_val_acc is None else f"{run.best_val_acc:.4f}",
        MISSING if run.test_acc is None else f"{run.test_acc:.4f}",
        MISSING if run.epochs is None else str(run.epochs),
        MISSING if run.wall_time_s is None else duration(run.wall_time_s),
        MISSING if run.trainable_params is None else f"{run.trainable_params:,}",
    )


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"
