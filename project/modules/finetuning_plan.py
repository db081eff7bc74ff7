"""Which backbone blocks train, and at what lr, in each epoch of a fine-tuning strategy.

Pure functions of the epoch, so the plan is the same after a resume and on every DDP rank: all
parameter groups exist from the first step and a frozen group is gated by a zero lr (Lightning's
BaseFinetuning adds groups mid-run instead, which breaks resume (#6891, #8502) and DDP (#20340)).
"""

from dataclasses import dataclass
from typing import Literal

Strategy = Literal["linear_probe", "full", "gradual", "lp_ft"]


@dataclass(frozen=True)
class FinetuningPlan:
    """A strategy over a backbone of `num_blocks` blocks (block 0 is next to the input).

    Args:
        backbone_lr_ratio: backbone lr = head lr × this (discriminative fine-tuning).
        layer_decay: each block further from the head gets its lr multiplied by this once more.
        unfreeze_at: `gradual`: epochs at which blocks unfreeze from the top, one block per epoch listed;
            the last listed epoch unfreezes all that is left (one epoch: the whole backbone at once).
        lp_epochs: `lp_ft`: epochs of linear probing before everything trains.
        ft_lr_ratio: `lp_ft`: all lrs are multiplied by this once the full fine-tuning phase starts.
        new_blocks: the top blocks that start from fresh weights: they belong to the new head, so they train
            from the first epoch at the head's lr under every strategy; the strategy plans the blocks below.
    """

    strategy: Strategy
    num_blocks: int
    backbone_lr_ratio: float = 1.0
    layer_decay: float = 1.0
    unfreeze_at: tuple[int, ...] = (5,)
    lp_epochs: int = 5
    ft_lr_ratio: float = 0.1
    new_blocks: int = 0

    @property
    def pretrained_blocks(self) -> int:
        return self.num_blocks - self.new_blocks

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
