"""Learning-rate schedules as factors of the peak lr, by training progress from 0 to 1."""

import math


def constant(progress: float) -> float:
    return 1.0


def cosine(progress: float) -> float:
    """Cosine decay from the peak to zero."""
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def one_cycle(progress: float, warmup: float = 0.3, start: float = 1 / 25, end: float = 1 / 25e4) -> float:
    """The lr curve of torch's OneCycleLR with its defaults: cosine warm-up from peak/25 over 30 %, then cosine
    anneal to peak/25e4. (OneCycleLR also cycles SGD's momentum against the lr; here momentum stays fixed.)"""
    if progress < warmup:
        return start + (1.0 - start) * (1.0 - math.cos(math.pi * progress / warmup)) / 2
    annealed = min((progress - warmup) / (1.0 - warmup), 1.0)
    return end + (1.0 - end) * (1.0 + math.cos(math.pi * annealed)) / 2


def warmup_cosine(progress: float, warmup: float = 0.1) -> float:
    """A linear warm-up over the first 10 %, then cosine decay to zero (SimCLR's schedule, Chen et al. 2020)."""
    if progress < warmup:
        return (progress + 1e-3) / (warmup + 1e-3)
    return cosine((progress - warmup) / (1.0 - warmup))


SCHEDULES = {"none": constant, "cosine": cosine, "onecycle": one_cycle, "warmup_cosine": warmup_cosine}
