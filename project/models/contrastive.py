"""SimCLR's NT-Xent loss (Chen et al. 2020) over the whole global batch, whatever the number of processes.

Each image's two views are a positive pair; every other view in the batch is a negative. Under DDP each process
gathers every process's projections, with their gradients, and scores its own anchors against all of them, so
2 processes × batch B compute the loss of 1 process × batch 2B (tests/test_simclr.py checks it on 2 CPU processes).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Gather = Callable[[Tensor], Tensor]  # (local B, D) -> (global B, D), gradients flowing back to every process


def nt_xent(
    first: Tensor, second: Tensor, temperature: float, gather: Gather | None = None, rank: int = 0
) -> tuple[Tensor, Tensor]:
    """(loss, positive-pair accuracy) of this process's anchors: the views `first` and `second` (B, D) of its B images.

    `gather` returns every process's rows in rank order; this process's rows start at rank × B. The accuracy is
    the share of anchors whose most similar other view is their positive.
    """
    local = len(first)
    first, second = F.normalize(first, dim=1), F.normalize(second, dim=1)
    everyone = torch.cat([gather(first), gather(second)]) if gather else torch.cat([first, second])
    total = len(everyone) // 2  # images in the global batch
    anchors = torch.cat([first, second])  # 2B: this process's views
    logits = anchors @ everyone.T / temperature  # (2B, 2 × global)
    own = rank * local + torch.arange(local, device=first.device)
    self_index = torch.cat([own, own + total])  # a view is not its own negative
    positive = torch.cat([own + total, own])
    itself = torch.zeros_like(logits, dtype=torch.bool)
    itself[torch.arange(2 * local, device=first.device), self_index] = True
    logits = logits.masked_fill(itself, float("-inf"))
    loss = F.cross_entropy(logits, positive)
    accuracy = (logits.argmax(dim=1) == positive).float().mean()
    return loss, accuracy
