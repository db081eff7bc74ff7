"""How still the machine is before anything is compared: the same work timed again and again.

On the busy 2-core VM of 2026-12-07 the same 0.5 s of the MLP's training steps, timed 80 times in a row, moved by 21 %
(coefficient of variation; 21 % in CPU time too, so not time spent waiting for a core but slower work), and two
chunks back to back differed by 18-23 %: every path of the benchmark, and so every ratio of two, moves that much from
round to round, and a ratio's interval narrows only as one over the square root of the rounds.
"""

import math
import statistics

import torch

from project.backbones import MLPBackbone
from project.lab.benchmarking.paths import sgd, training_steps_seconds

# A ratio of two paths timed with independent noise `cv` each varies by about √2·cv from round to round; the median
# of n rounds has a standard error of about 1.25 times that over √n (the median of a normal sample), and a 95 %
# interval spans ±1.96 standard errors: its width (high / low - 1) is about 2 · 1.96 · 1.25 · √2 · cv / √n.
INTERVAL_WIDTH_PER_NOISE = 2 * 1.96 * 1.2533 * math.sqrt(2)


def machine_noise(seconds: float, chunk_seconds: float = 0.25) -> tuple[float, int]:
    """The coefficient of variation of equal chunks of the MLP's training steps (a batch of 128 at lr 0, on the
    CPU) timed back to back for about `seconds`, and how many chunks were timed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(MLPBackbone((1, 28, 28)), torch.nn.Linear(64, 10))  # the article's MLP
    optimizer = sgd(model, lr=0.0)
    batch = (torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,)))

    def chunk(steps: int) -> float:
        return training_steps_seconds(model, optimizer, [batch] * steps, "cpu")

    chunk(20)  # warm-up: allocations, lazy initialization
    steps = max(1, round(chunk_seconds / (chunk(20) / 20)))
    timings = [chunk(steps) for _ in range(max(3, round(seconds / chunk_seconds)))]
    return statistics.stdev(timings) / statistics.mean(timings), len(timings)


def rounds_to_pin(noise: float, precision: float) -> int:
    """About how many rounds a ratio's 95 % interval needs to be `precision` wide at this machine's `noise` (the
    normal median's arithmetic above; close to the distribution-free interval's from 30 rounds up, an underestimate
    below)."""
    return math.ceil((INTERVAL_WIDTH_PER_NOISE * noise / precision) ** 2)


def noise_line(seconds: float, precision: float) -> str:
    noise, chunks = machine_noise(seconds)
    return (f"machine noise: the same 0.25 s of MLP training steps timed {chunks} times moved by {noise:.1%} "
            f"(coefficient of variation); at that noise a ratio's 95 % interval is {precision:.0%} wide after "
            f"about {rounds_to_pin(noise, precision)} rounds")
