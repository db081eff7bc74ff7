"""A study's results.csv as markdown tables (mean ± std test accuracy; the paired gain over scratch) and a plot."""

import csv
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def read_results(results_csv: Path) -> list[dict]:
    with results_csv.open() as file:
        return list(csv.DictReader(file))


def budget_order(budget: str) -> float:
    return float("inf") if budget == "all" else float(budget)


def grouped(rows: list[dict], field: str) -> dict[tuple[str, str], list[float]]:
    """(method, budget) -> values of `field` over seeds."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["samples_per_class"])].append(float(row[field]))
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def markdown_table(rows: list[dict]) -> str:
    """Methods as rows, label budgets as columns, mean ± std test accuracy over seeds in each cell."""
    accuracy = grouped(rows, "test_acc")
    methods = list(dict.fromkeys(row["method"] for row in rows))
    budgets = sorted({row["samples_per_class"] for row in rows}, key=budget_order)
    seeds = len({row["seed"] for row in rows})
    lines = [
        f"| method \\ labels per class ({seeds} seeds) | " + " | ".join(budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for method in methods:
        cells = []
        for budget in budgets:
            values = accuracy.get((method, budget))
            cells.append("–" if not values else "{:.3f} ± {:.3f}".format(*mean_std(values)))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_gain_table(rows: list[dict]) -> str:
    """Each method's test accuracy minus scratch's of the same seed and budget: mean ± std, and wins/ties/losses.

    Pairing removes what the methods share (the label sample and the test images, both drawn from the seed), so
    the differences are far less noisy than the two means; a gain whose ± is larger than itself is not one.
    """
    by_run = {(r["method"], r["samples_per_class"], r["seed"]): float(r["test_acc"]) for r in rows}
    methods = [m for m in dict.fromkeys(row["method"] for row in rows) if m != "scratch"]
    budgets = sorted({row["samples_per_class"] for row in rows}, key=budget_order)
    lines = [
        "| gain over scratch, same seed (wins/ties/losses) | " + " | ".join(budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for method in methods:
        cells = []
        for budget in budgets:
            gains = [
                accuracy - by_run[("scratch", b, seed)]
                for (m, b, seed), accuracy in by_run.items()
                if (m, b) == (method, budget) and ("scratch", b, seed) in by_run
            ]
            if not gains:
                cells.append("–")
                continue
            wins, losses = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
            mean, std = mean_std(gains)
            cells.append(f"{mean:+.3f} ± {std:.3f} ({wins}/{len(gains) - wins - losses}/{losses})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Test accuracy against labels per class (log axis), one line per method with its ± std band."""
    accuracy = grouped(rows, "test_acc")
    labels = grouped(rows, "labels_per_class")
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for method in dict.fromkeys(row["method"] for row in rows):
        budgets = sorted({b for m, b in accuracy if m == method}, key=budget_order)
        xs = [statistics.mean(labels[(method, b)]) for b in budgets]
        means, stds = zip(*(mean_std(accuracy[(method, b)]) for b in budgets), strict=True)
        axis.plot(xs, means, marker="o", label=method)
        axis.fill_between(xs, [m - s for m, s in zip(means, stds, strict=True)],
                          [m + s for m, s in zip(means, stds, strict=True)], alpha=0.15)
    axis.set_xscale("log")
    axis.set_xlabel("labelled training images per class")
    axis.set_ylabel("test accuracy")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def summarize(output_dir: Path) -> str:
    """Write results.md and results.png next to results.csv; returns the tables."""
    rows = read_results(output_dir / "results.csv")
    table = markdown_table(rows)
    if any(row["method"] == "scratch" for row in rows) and any(row["method"] != "scratch" for row in rows):
        table += "\n\n" + paired_gain_table(rows)
    (output_dir / "results.md").write_text(table + "\n")
    plot(rows, output_dir / "results.png")
    return table
