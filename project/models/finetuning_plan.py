"""Which backbone blocks train, and at what lr, in each epoch of a fine-tuning strategy.

Pure functions of the epoch, so the plan is the same after a resume and on every DDP rank: all
parameter groups exist from the first step and a frozen group is gated by a zero lr (its weights keep
requires_grad). Lightning's BaseFinetuning instead freezes with requires_grad=False and adds groups to the
optimizer mid-run: Lightning 2.6 restores such groups on resume, but DDP leaves parameters that were frozen
when it wrapped the model out of its gradient reduction, so unfreezing them later fails (#20340, open).
"""

from dataclasses import dataclass
from typing import Literal

from project.errors import UserError, refuse_wrong

Strategy = Literal["linear_probe", "logistic_probe", "full", "gradual", "lp_ft"]
FROZEN_BACKBONE = ("linear_probe", "logistic_probe")  # the pretrained blocks never train


@dataclass(frozen=True)
class FinetuningPlan:
    """A strategy over a backbone of `num_blocks` blocks (block 0 is next to the input).

    Args:
        backbone_lr_ratio: backbone lr = head lr × this (discriminative fine-tuning).
        layer_decay: each block further from the head gets its lr multiplied by this once more.
        unfreeze_at: `gradual`: epochs at which blocks unfreeze from the top, one block per epoch listed;
            the last listed epoch unfreezes all that is left (one epoch: the whole backbone at once).
        lp_fraction: `lp_ft`: the share of the run's epochs spent linear probing before everything trains, so
            both phases scale with `max_epochs`; 0: the probe is the logistic probe, fit to convergence before
            the first step (as Kumar et al. 2022 did, by L-BFGS), and fine-tuning takes the whole run.
        ft_lr_ratio: `lp_ft`: all lrs are multiplied by this once the full fine-tuning phase starts.
        new_blocks: the top blocks that start from fresh weights: they belong to the new head, so they train
            from the first epoch at the head's lr under every strategy; the strategy plans the blocks below.
        total_epochs: the run's max_epochs, known once the run starts (LP-FT's phases depend on it).
    """

    strategy: Strategy
    num_blocks: int
    backbone_lr_ratio: float
    layer_decay: float
    unfreeze_at: tuple[int, ...]
    lp_fraction: float
    ft_lr_ratio: float
    new_blocks: int = 0
    total_epochs: int | None = None

    def __post_init__(self) -> None:
        """Values that cannot work are refused by name, where they enter."""
        refuse_wrong((f"backbone_lr_ratio={self.backbone_lr_ratio} must be >= 0", self.backbone_lr_ratio >= 0),
                     (f"layer_decay={self.layer_decay} must be in (0, 1]", 0 < self.layer_decay <= 1),
                     (f"ft_lr_ratio={self.ft_lr_ratio} must be > 0", self.ft_lr_ratio > 0),
                     (f"lp_fraction={self.lp_fraction} must be in [0, 1)", 0 <= self.lp_fraction < 1))
        steps = self.unfreeze_at
        if any(b < a for a, b in zip(steps, steps[1:], strict=False)) or min(steps) < 0:
            raise UserError(f"unfreeze_at={list(steps)} must be epochs >= 0 in increasing order")

    @property
    def pretrained_blocks(self) -> int:
        return self.num_blocks - self.new_blocks

    @property
    def fits_logistic_head(self) -> bool:
        """Whether the head is fit as a logistic probe before the first step: the strategy's whole training, or
        LP-FT's probing phase when `lp_fraction` is 0."""
        return self.strategy == "logistic_probe" or (self.strategy == "lp_ft" and self.lp_fraction == 0)

    @property
    def lp_epochs(self) -> int:
        """LP-FT's probing epochs: `lp_fraction` of the run, at least one, leaving at least one to fine-tune
        (none when the probe is the logistic one, fit before training)."""
        if self.lp_fraction == 0:
            return 0
        if self.total_epochs is None:  # not started: every epoch is a probing epoch until the length is known
            return 2**31
        return min(max(1, round(self.lp_fraction * self.total_epochs)), max(1, self.total_epochs - 1))

    def schedule_restarts(self) -> list[int]:
        """Epochs at which the lr schedule starts again from its peak: LP-FT's fine-tuning phase.

        The probe is trained to convergence under its own decaying schedule, then fine-tuning gets a full
        schedule of its own at `ft_lr_ratio` × the lr (Kumar et al. 2022); a single schedule over both would
        leave fine-tuning only the tail of the decay.
        """
        probing = self.strategy == "lp_ft" and self.total_epochs is not None and self.lp_epochs > 0
        return [self.lp_epochs] if probing else []

    def trainable_blocks(self, epoch: int) -> int:
        """How many blocks, counted from the top (the head's side), train in `epoch`."""
        return self.new_blocks + self._trainable_pretrained_blocks(epoch)

    def _trainable_pretrained_blocks(self, epoch: int) -> int:
        pretrained = self.pretrained_blocks
        if self.strategy == "full":
            return pretrained
        if self.strategy == "lp_ft":
            return pretrained if epoch >= self.lp_epochs else 0
        if self.strategy == "gradual":
            reached = sum(epoch >= milestone for milestone in self.unfreeze_at)
            return pretrained if reached == len(self.unfreeze_at) else min(reached, pretrained)
        return 0

    def block_trains(self, block: int, epoch: int) -> bool:
        return block >= self.num_blocks - self.trainable_blocks(epoch)

    def head_lr_scale(self, epoch: int) -> float:
        return self.ft_lr_ratio if self.strategy == "lp_ft" and epoch >= self.lp_epochs else 1.0

    def block_lr_scale(self, block: int, epoch: int) -> float:
        """The lr multiplier of backbone block `block` in `epoch`: 0 while it is frozen."""
        if not self.block_trains(block, epoch):
            return 0.0
        if block >= self.pretrained_blocks:  # a new block is part of the head
            return self.head_lr_scale(epoch)
        depth_from_top = self.pretrained_blocks - 1 - block
        return self.head_lr_scale(epoch) * self.backbone_lr_ratio * self.layer_decay**depth_from_top
