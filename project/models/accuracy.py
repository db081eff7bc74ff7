"""Top-1 accuracy over an epoch, cheap enough to update on every training step of a tiny model."""

import torch
from torch import Tensor
from torchmetrics import Metric


class EpochAccuracy(Metric):
    """Correct predictions / images seen: two counters on the model's device, summed across processes by
    torchmetrics when computed, so a DDP run reports the accuracy over every rank's images.

    The same number as torchmetrics' MulticlassAccuracy(average="micro"), whose update (input checks and formatting,
    per-class statistics) took 88 µs a batch of 128 against 29 µs for this one, on the 2-core development VM: on the
    MNIST MLP, whose whole step takes about 1.5 ms, the difference is 4 %. Its input check also calls torch.unique
    on the labels, which on a GPU waits for the device at every step; nothing here reads a value back to the host.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total
