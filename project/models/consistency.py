"""The unlabelled half of a semi-supervised fine-tuning step: pseudo-labels and the loss that trains towards them.

FixMatch (Sohn et al. 2020): the model's prediction on a weak view of an unlabelled image becomes its
pseudo-label where the model is confident (max probability >= `threshold`), and the model is trained to predict
it from a strong view of the same image. The cheap variant, thresholded pseudo-labelling (Lee 2013), trains on
the weak view itself: one forward pass per unlabelled image instead of two.

Distribution alignment (ReMixMatch, Berthelot et al. 2020) rescales each prediction by the classes' prior over
the model's running mean prediction on the pool, so a model that favours a few classes early does not label the
pool with them. With balanced label budgets the prior is uniform.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import Strategy
from torch import Tensor

SemiSupervised = Literal["none", "fixmatch", "pseudo_label"]
ALIGNMENT_MOMENTUM = 0.999  # of the running mean prediction: ~1,000 batches of memory (ReMixMatch: 128 batches)


@dataclass
class PseudoLabels:
    """Targets of one unlabelled batch: `targets` for every image, used where `confident`."""

    targets: Tensor
    confident: Tensor

    def loss(self, logits: Tensor) -> Tensor:
        """Cross-entropy towards the targets, over the confident images, averaged over the whole batch (as FixMatch:
        few confident images make a small loss, not a large step on a few)."""
        per_image = F.cross_entropy(logits, self.targets, reduction="none")
        return (per_image * self.confident).mean()

    def accuracy(self, true_labels: Tensor) -> Tensor | None:
        """The share of confident pseudo-labels that are right, over the images whose label is known (those of the
        training split beyond the budget; never read by training): a monitor, None where there are none."""
        known = self.confident & (true_labels >= 0)
        if not known.any():
            return None
        return (self.targets[known] == true_labels[known]).float().mean()


def pseudo_labels(logits: Tensor, threshold: float, running_mean: Tensor | None = None) -> PseudoLabels:
    """Confident predictions of `logits` (detached) as targets; aligned to a uniform prior when `running_mean` (the
    running mean prediction over the pool) is given."""
    probabilities = logits.detach().float().softmax(dim=1)
    if running_mean is not None:
        probabilities = probabilities / running_mean.to(probabilities.device).clamp_min(1e-6)
        probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
    confidence, targets = probabilities.max(dim=1)
    return PseudoLabels(targets, confidence >= threshold)


def updated_running_mean(running_mean: Tensor, logits: Tensor, strategy: Strategy) -> Tensor:
    """The running mean prediction after one more unlabelled batch (every process's, so all keep the same one)."""
    batch_mean = strategy.reduce(logits.detach().float().softmax(dim=1).mean(dim=0), reduce_op="mean")
    return ALIGNMENT_MOMENTUM * running_mean.to(batch_mean.device) + (1 - ALIGNMENT_MOMENTUM) * batch_mean


def uniform_prediction(num_classes: int) -> Tensor:
    return torch.full((num_classes,), 1.0 / num_classes)
