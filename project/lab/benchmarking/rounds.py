"""Interleaved rounds: every path timed once per round, in its own order, and ratios taken within a round.

Rounds, not each path timed `repeats` times in turn: a burst of load on a shared machine then spoils one round,
which the median leaves out, not every timing of one path; and a ratio taken within a round compares paths timed
seconds apart, under much the same load. (Timed once each, in turn, the MLP's Lightning/plain read 0.80, then
1.50, minutes apart; the whole run against its compute, and the folder's decoding against PIL alone, timed once
per benchmark, moved 10 % and 23 % between two runs on a quiet machine.) The shuffle keeps any path from always
going first, or always after the same one (e.g. after DataLoader workers that are still exiting).
"""

import gc
import random
import statistics
from collections.abc import Callable, Iterable
from typing import TypeVar

from scipy.stats import binom

Timing = TypeVar("Timing")


def one_round(paths: dict[str, Callable[[], Timing]], index: int) -> dict[str, Timing]:
    """Every path called once, in an order shuffled by the round's index (so reruns take the same orders)."""
    order = list(paths)
    random.Random(index).shuffle(order)
    timings = {}
    for name in order:
        # Every path starts with no garbage left by the one before (a Trainer leaves thousands of objects), so
        # Python's collections fall at the same points of its own steps in every round, not wherever the previous
        # path's leftovers push them. Collections stay on while it runs: a user's training pays for them too.
        gc.collect()
        timings[name] = paths[name]()
    return timings


def paired(rounds: list[dict[str, tuple[float, ...]]], top: str, bottom: str) -> str:
    """`median (low–high)` over the rounds of each round's own ratio of two paths' rates (each timing's first item),
    low–high its median's 95 % interval (`median_interval`)."""
    ratios = round_ratios(rounds, top, bottom)
    low, high = median_interval(ratios)
    return f"{statistics.median(ratios):.2f} ({low:.2f}–{high:.2f})"


def round_ratios(rounds: list[dict[str, tuple[float, ...]]], top: str, bottom: str) -> list[float]:
    return [each[top][0] / each[bottom][0] for each in rounds]


def median_interval(values: Iterable[float]) -> tuple[float, float]:
    """The median's 95 % confidence interval, free of any assumption on the distribution: the order statistics
    x(j) and x(n+1-j) with the largest j whose coverage, 1 - 2 P(B <= j-1) for B ~ Binomial(n, 1/2), is at least
    95 % (n = 9: the 2nd and 8th of 9, 96 %; n = 30: the 10th and 21st). Below 6 values no j reaches 95 %: min–max
    (n = 5: 94 %)."""
    ordered = sorted(values)
    j = max(1, int(binom.ppf(0.025, len(ordered), 0.5)))
    return ordered[j - 1], ordered[-j]


def step_ratios(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Every ratio a step case's table prints, as (top, bottom) paths: each path × compute-only, then the default
    path / each torchvision path, Lightning / plain, and the minimal LightningModule / plain."""
    paths = list(paths)
    return [
        *((path, "compute") for path in paths if path != "compute"),
        *(("default", path) for path in paths if path.startswith("torchvision")),
        ("default", "plain"), ("minimal", "plain"),
    ]


def pinned(rounds: list[dict[str, tuple[float, ...]]], ratios: list[tuple[str, str]], precision: float) -> bool:
    """Whether every ratio's 95 % interval is at most `precision` wide (high / low - 1). An interval that wide puts
    the median's standard error near precision / 4, so two such runs' medians differ by about 1.4 times that: within
    `precision` in about 99 pairs of 100 while the machine's noise stays as it was (at most twice `precision` apart
    unless an interval missed)."""
    return all(width <= precision for width in interval_widths(rounds, ratios).values())


def interval_widths(rounds: list[dict[str, tuple[float, ...]]], ratios: list[tuple[str, str]]) -> dict:
    """Each ratio's 95 % interval width, high / low - 1, by (top, bottom)."""
    return {ratio: (lambda low, high: high / low - 1)(*median_interval(round_ratios(rounds, *ratio)))
            for ratio in ratios}


def spread(values: list[float], form: str) -> str:
    """`median (min–max)` of a path's rates or ratios over the rounds."""
    return f"{statistics.median(values):{form}} ({min(values):{form}}–{max(values):{form}})"
