"""EpochAccuracy: the same number as torchmetrics' MulticlassAccuracy, over several batches."""

import torch
from torchmetrics.classification import MulticlassAccuracy

from project.models.accuracy import EpochAccuracy


def test_epoch_accuracy_equals_torchmetrics_micro_accuracy_over_batches():
    generator = torch.Generator().manual_seed(0)
    ours, reference = EpochAccuracy(), MulticlassAccuracy(7, average="micro")
    for size in (5, 32, 1, 17):  # batches of unequal size: a mean of batch accuracies would differ
        logits, labels = torch.randn(size, 7, generator=generator), torch.randint(0, 7, (size,), generator=generator)
        ours.update(logits, labels)
        reference.update(logits, labels)
    assert ours.compute().item() == reference.compute().item()
    assert 0 < ours.compute().item() < 1
    ours.reset()
    assert ours.total.item() == 0
