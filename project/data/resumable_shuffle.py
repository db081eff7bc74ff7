"""A shuffling sampler whose order is a function of (seed, pass number), and whose pass number checkpoints keep."""

import torch
from torch.utils.data import Sampler

from project.seeding import Stream, derived_seed


class ResumableShuffle(Sampler[int]):
    """A new permutation for every pass over the data, drawn from its own generator seeded by (seed, pass).

    A run resumed from a checkpoint restores `passes` (through the DataModule's state_dict) and so
    shuffles its next epoch exactly as the uninterrupted run did. The global RNG cannot give that:
    Lightning makes the first epoch's iterator before any epoch-start hook could reseed it.
    """

    def __init__(self, size: int, seed: int, passes: int = 0, stream: Stream = Stream.SHUFFLE) -> None:
        self.size, self.seed, self.passes, self.stream = size, seed, passes, stream

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.stream, self.passes))
        self.passes += 1
        return iter(torch.randperm(self.size, generator=generator).tolist())
