"""Progress of long loops (decoding images, the probe's fits, scoring transferability, a study's runs) that suits
where it goes: a live bar with rate and ETA on a terminal; in a log file (nohup, SLURM, CI), a plain line at most
every 10 % and never more often than every few seconds, instead of a bar's carriage-return updates.

`showing_progress(False)` turns it off for what runs inside it (`--quiet`, the Python API's default).
"""

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
SHOWN: ContextVar[bool] = ContextVar("progress_shown", default=True)
LINE_EVERY_FRACTION = 0.10  # in a log file: a line per 10 % done ...
LINE_EVERY_SECONDS = 5.0  # ... and not more often than this


@contextmanager
def showing_progress(shown: bool) -> Iterator[None]:
    """Progress shown (or not) for the loops that run inside; outside, as before."""
    token = SHOWN.set(shown)
    try:
        yield
    finally:
        SHOWN.reset(token)


def on_terminal() -> bool:
    """Whether progress goes to a terminal: stderr, where tqdm's and Lightning's bars write."""
    return sys.stderr.isatty()


class Progress:
    """Counts a loop's items: `for item in Progress(items, "decoding", total)`, `note(text)` prints beside it."""

    def __init__(self, items: Iterable[Item], description: str, total: int | None = None, unit: str = "it") -> None:
        self.items, self.description, self.unit = items, description, unit
        self.total = total if total is not None else len(items) if hasattr(items, "__len__") else None
        self.shown = SHOWN.get()
        self.bar = tqdm(total=self.total, desc=description, unit=unit, dynamic_ncols=True, leave=False) if (
            self.shown and on_terminal()) else None

    def __iter__(self) -> Iterator[Item]:
        start = last_line = time.perf_counter()
        done, last_done = 0, 0
        for item in self.items:
            yield item
            done += 1
            if self.bar is not None:
                self.bar.update(1)
                continue
            now = time.perf_counter()
            step = (self.total or 0) * LINE_EVERY_FRACTION
            if self.shown and done - last_done >= max(step, 1) and now - last_line >= LINE_EVERY_SECONDS:
                print(self.line(done, now - start), file=sys.stderr, flush=True)
                last_line, last_done = now, done
        if self.bar is not None:
            self.bar.close()

    def line(self, done: int, seconds: float) -> str:
        rate = done / seconds if seconds > 0 else 0.0
        if self.total:
            left = (self.total - done) / rate if rate > 0 else float("inf")
            return (f"{self.description}: {done}/{self.total} ({100 * done / self.total:.0f} %), "
                    f"{rate:.2f} {self.unit}/s, ETA {clock(left)}")
        return f"{self.description}: {done}, {rate:.2f} {self.unit}/s"

    def note(self, text: str) -> None:
        """A line of output that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)


def clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
