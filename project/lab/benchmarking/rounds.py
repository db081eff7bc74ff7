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
from collections.abc import Callable
from typing import TypeVar

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
    """`median (min–max)` over the rounds of each round's own ratio of two paths' rates (each timing's first item)."""
    return spread([each[top][0] / each[bottom][0] for each in rounds], ".2f")


def spread(values: list[float], form: str) -> str:
    """`median (min–max)` of a path's rates or ratios over the rounds."""
    return f"{statistics.median(values):{form}} ({min(values):{form}}–{max(values):{form}})"
