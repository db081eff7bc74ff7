"""A study's results.csv as markdown tables (mean ± std accuracy; the paired gain over scratch with its 95 %
confidence interval and a verdict) and a plot of both: the accuracy curves, and the gains as a forest plot."""

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, NullLocator
from scipy import stats

METRICS = {"test_acc": "test accuracy", "val_acc": "validation accuracy"}


def read_results(results_csv: Path) -> list[dict]:
    with results_csv.open() as file:
        return list(csv.DictReader(file))


def budget_order(budget: str) -> float:
    return float("inf") if budget == "all" else float(budget)


def grouped(rows: list[dict], field: str) -> dict[tuple[str, str], list[float]]:
    """(method, budget) -> values of `field` over seeds (rows without a value, e.g. no val split, are skipped)."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.get(field) not in (None, ""):
            groups[(row["method"], row["samples_per_class"])].append(float(row[field]))
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def confidence_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student's t interval of the mean (seeds are independent draws); None with fewer than two values."""
    if len(values) < 2:
        return None
    mean, std = mean_std(values)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / math.sqrt(len(values))
    return mean - half, mean + half


def verdict(interval: tuple[float, float] | None) -> str:
    """`helps` or `hurts` when the 95 % interval of the paired gain excludes zero; `unclear` otherwise."""
    if interval is None:
        return "unclear"
    low, high = interval
    return "helps" if low > 0 else "hurts" if high < 0 else "unclear"


def methods_and_budgets(rows: list[dict]) -> tuple[list[str], list[str]]:
    methods = list(dict.fromkeys(row["method"] for row in rows))
    return methods, sorted({row["samples_per_class"] for row in rows}, key=budget_order)


def markdown_table(rows: list[dict], metric: str = "test_acc") -> str:
    """Methods as rows, label budgets as columns, mean ± std of `metric` over seeds in each cell."""
    accuracy = grouped(rows, metric)
    methods, budgets = methods_and_budgets(rows)
    seeds = len({row["seed"] for row in rows})
    lines = [
        f"| {METRICS[metric]}: method \\ labels per class ({seeds} seeds) | " + " | ".join(budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for method in methods:
        cells = []
        for budget in budgets:
            values = accuracy.get((method, budget))
            cells.append("–" if not values else f"{values[0]:.3f}" if len(values) == 1
                         else "{:.3f} ± {:.3f}".format(*mean_std(values)))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_gains(
    rows: list[dict], method: str, budget: str, metric: str = "test_acc", baseline: str = "scratch"
) -> list[float]:
    """`method`'s accuracy minus `baseline`'s, seed by seed, where both ran (same label sample and test images)."""
    by_run = {
        (r["method"], r["samples_per_class"], r["seed"]): float(r[metric])
        for r in rows
        if r.get(metric) not in ("", None)
    }
    return [
        accuracy - by_run[(baseline, b, seed)]
        for (m, b, seed), accuracy in by_run.items()
        if (m, b) == (method, budget) and (baseline, b, seed) in by_run
    ]


def paired_gain_table(rows: list[dict], metric: str = "test_acc", baseline: str = "scratch") -> str:
    """Each method's gain over `baseline` (scratch, or e.g. the same backbone without the unlabelled pool), paired
    by seed and budget: mean, 95 % confidence interval, verdict, and wins/ties/losses.

    Pairing removes what the methods share (the label sample and the test images, both drawn from the seed), so
    the differences are far less noisy than the two means. The verdict is `unclear` whenever the interval
    holds zero: with 3 seeds, t's 97.5 % quantile is 4.3, so only a gain far above its spread counts.
    """
    methods, budgets = methods_and_budgets(rows)
    lines = [
        f"| gain over {baseline}, same seed: mean [95 % CI] verdict (wins/ties/losses) | " + " | ".join(budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for method in (m for m in methods if m != baseline):
        cells = []
        for budget in budgets:
            gains = paired_gains(rows, method, budget, metric, baseline)
            if not gains:
                cells.append("–")
                continue
            wins, losses = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
            interval = confidence_interval(gains)
            span = "[–]" if interval is None else f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"
            cells.append(
                f"{statistics.mean(gains):+.3f} {span} **{verdict(interval)}** "
                f"({wins}/{len(gains) - wins - losses}/{losses})"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, metric: str = "test_acc") -> None:
    """Left, accuracy against labels per class (log axis, ticks at the budgets), one line per method with its ± std
    band; right, where the study has scratch and another method, the paired gain tables' numbers: each method's
    mean gain over scratch per budget with its 95 % interval (a forest plot; an interval that crosses 0 is a tie)."""
    # Figure, not pyplot: no GUI backend is chosen (importing this module changes nothing) and no global figure list.
    forest = any(row["method"] == "scratch" for row in rows) and any(row["method"] != "scratch" for row in rows)
    figure = Figure(figsize=(12.8 if forest else 6.4, 4.2), dpi=100, layout="constrained")
    axes = figure.subplots(1, 2 if forest else 1, squeeze=False)[0]
    accuracy_curves(axes[0], rows, metric)
    if forest:
        gain_forest(axes[1], rows, metric)
    figure.savefig(path)


def accuracy_curves(axis: Axes, rows: list[dict], metric: str) -> None:
    accuracy = grouped(rows, metric)
    labels = grouped(rows, "labels_per_class")
    ticks: dict[float, str] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        budgets = sorted({b for m, b in accuracy if m == method}, key=budget_order)
        xs = [statistics.mean(labels[(method, b)]) for b in budgets]
        ticks.update({x: f"all ({x:.0f})" if b == "all" else b for x, b in zip(xs, budgets, strict=True)})
        means, stds = zip(*(mean_std(accuracy[(method, b)]) for b in budgets), strict=True)
        axis.plot(xs, means, marker="o", label=method)
        axis.fill_between(xs, [m - s for m, s in zip(means, stds, strict=True)],
                          [m + s for m, s in zip(means, stds, strict=True)], alpha=0.15)
    axis.set_xscale("log")
    axis.xaxis.set_minor_locator(NullLocator())  # only the budgets themselves, as plain numbers
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
    axis.set_xlabel("labelled training images per class")
    axis.set_ylabel(METRICS[metric])
    axis.grid(True, which="major", alpha=0.3)
    axis.legend()


def gain_forest(axis: Axes, rows: list[dict], metric: str) -> None:
    """One row per method and budget: the mean paired gain over scratch, its 95 % t interval as a bar (none with
    a single seed), coloured like the method's accuracy curve."""
    methods, budgets = methods_and_budgets(rows)
    labels = []
    for index, method in enumerate(methods):
        if method == "scratch":
            continue
        for budget in budgets:
            gains = paired_gains(rows, method, budget, metric)
            if not gains:
                continue
            y, mean, interval = -len(labels), statistics.mean(gains), confidence_interval(gains)
            if interval is not None:
                axis.plot(interval, (y, y), color=f"C{index}", linewidth=2)
            axis.plot(mean, y, marker="o", color=f"C{index}")
            labels.append(f"{method}, {budget}/class ({verdict(interval)})")
    axis.axvline(0.0, color="black", linewidth=0.8)
    axis.set_yticks([-i for i in range(len(labels))], labels, fontsize=8)
    axis.set_xlabel(f"gain in {METRICS[metric]} over scratch, same seed: mean and 95 % CI")
    axis.grid(True, axis="x", alpha=0.3)


def chosen_on_validation(rows: list[dict], candidates: list[str]) -> tuple[list[dict], str]:
    """Per budget and seed, the candidate with the best budgeted validation accuracy (the first listed on a tie),
    added as a method of its own, and a line saying which one each seed got.

    Which strategy to trust is then a choice made per run on its validation labels, as a user without test
    labels would make it, never on test; a budget or seed where a candidate has no validation accuracy (or did
    not run) gets no chosen row.
    """
    name = "val-chosen: " + " / ".join(candidates)
    by_run = {(r["method"], r["samples_per_class"], r["seed"]): r for r in rows}
    chosen, notes = [], []
    for budget in methods_and_budgets(rows)[1]:
        picks = []
        for seed in dict.fromkeys(r["seed"] for r in rows if r["samples_per_class"] == budget):
            runs = [by_run.get((method, budget, seed)) for method in candidates]
            if any(run is None or run.get("val_acc") in (None, "") for run in runs):
                continue
            best = max(runs, key=lambda run: float(run["val_acc"]))  # max keeps the first of equal values
            chosen.append({**best, "method": name})
            picks.append(f"{best['method']} (seed {seed})")
        if picks:
            notes.append(f"{budget}: " + ", ".join(picks))
    line = f"{name}, the candidate with the best validation accuracy of each run: " + ("; ".join(notes) or "none")
    return rows + chosen, line


def summarize(
    output_dir: Path, metric: str = "test_acc", select_on_val: list[str] | None = None,
    paired_with: list[str] | None = None,
) -> str:
    """Write results.md and results.png next to results.csv (results_val.* for `val_acc`); returns the tables.
    `select_on_val`: methods to choose between per run on validation, reported as a method of its own;
    `paired_with`: more baselines than scratch, each with a paired gain table of its own."""
    rows = read_results(output_dir / "results.csv")
    choices = None
    if select_on_val:
        rows, choices = chosen_on_validation(rows, select_on_val)
    table = markdown_table(rows, metric)
    if any(row["method"] == "scratch" for row in rows) and any(row["method"] != "scratch" for row in rows):
        table += "\n\n" + paired_gain_table(rows, metric)
    for baseline in paired_with or []:  # `val-chosen`: the select_on_val row
        chosen = "val-chosen: " + " / ".join(select_on_val or [])
        table += "\n\n" + paired_gain_table(rows, metric, chosen if baseline == "val-chosen" else baseline)
    if choices:
        table += "\n\n" + choices
    stem = "results" if metric == "test_acc" else "results_val"
    (output_dir / f"{stem}.md").write_text(table + "\n")
    plot(rows, output_dir / f"{stem}.png", metric)
    return table
