"""A linear probe fit to convergence: L2-regularized logistic regression (L-BFGS) on frozen features, its
penalty chosen by cross-validation on the labelled images only (Kornblith et al. 2019).

The penalty is the one with the lowest held-out log-loss, not the highest held-out accuracy: with 10 labelled
images per class a fold holds 2 per class, so accuracy moves in steps of 5 points and its argmax swung from
C=0.001 to C=100 between seeds, and the weak picks were overconfident probes that lost on test. The log-loss
scores every held-out image's probability, not only its argmax (measured in docs/results.md).

An SGD-trained head in a few epochs under-fits the probe on small label budgets; this is its exact optimum.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from torch import Tensor

from project.progress import Progress

PENALTIES = 10.0 ** np.arange(-3, 4)  # sklearn's C: the inverse of the L2 penalty


@dataclass(frozen=True)
class LogisticProbe:
    """A fitted probe as the weights of an `nn.Linear` on the raw features (standardization folded in)."""

    weight: Tensor  # (classes, features)
    bias: Tensor  # (classes,)
    penalty_c: float  # the chosen C
    cv_accuracy: float | None  # its mean cross-validated accuracy; None when too few labels to cross-validate
    cv_log_loss: float | None  # its mean cross-validated log-loss (nats per image), by which it was chosen

    def predict(self, features: Tensor) -> Tensor:
        return (features.float() @ self.weight.T + self.bias).argmax(dim=1)

    def edge_note(self) -> str | None:
        """What it means when cross-validation chose the strongest or the weakest penalty tried; None otherwise.
        (The caller decides whether to say it: for random weights, the transferability check's baseline, the
        strongest is expected.)"""
        if self.cv_log_loss is None or PENALTIES[0] < self.penalty_c < PENALTIES[-1]:
            return None
        edge = (f"C={self.penalty_c:g}, the strongest penalty tried: a probe close to predicting the class "
                f"frequencies; these features may carry little about these labels" if self.penalty_c == PENALTIES[0]
                else f"C={self.penalty_c:g}, the weakest penalty tried: the labelled images are likely separable in "
                     f"these features")
        return f"the logistic probe's cross-validation chose {edge}"


def fit_logistic_probe(
    features: Tensor, labels: Tensor, seed: int = 0, max_folds: int = 5, images: Tensor | None = None,
    between_fits: Callable[[], None] | None = None,
) -> LogisticProbe:
    """Fit on `features` (N, D) and integer `labels`; C by the lowest log-loss in stratified k-fold CV (k up to
    the smallest class size). `images` (N,) says which image each row comes from, when rows are several
    augmented views of one image: a fold then holds out all of an image's views, or CV would score an image's
    view on a model fit to its other views. `between_fits` is called before each of the CV's fits, e.g. to raise
    when the run was asked to stop."""
    x = features.double().cpu().numpy()
    y = labels.cpu().numpy()
    groups = None if images is None else images.cpu().numpy()
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8  # standardized: L-BFGS converges, one C fits every feature
    # The L2-penalized weights lie in the span of the training features (their gradient always does), so fitting
    # on coordinates in that span is exact, and with fewer images than features (a label budget) much faster.
    _, _, basis = np.linalg.svd((x - mean) / std, full_matrices=False)
    standardized = ((x - mean) / std) @ basis.T
    if groups is None:
        one_row_per_image, row_weight = slice(None), np.ones(len(y))
    else:  # each image weighs 1 in the loss however many views it has: C means what it means without views
        _, one_row_per_image, row_image, views = np.unique(groups, return_index=True, return_inverse=True,
                                                           return_counts=True)
        row_weight = 1.0 / views[row_image]
    folds = min(max_folds, int(np.bincount(y[one_row_per_image]).min()))
    penalty, cv_accuracy, cv_log_loss = 1.0, None, None  # with one labelled image in a class no fold holds it out
    if folds >= 2:
        kfold = StratifiedKFold if groups is None else StratifiedGroupKFold
        splits = list(kfold(folds, shuffle=True, random_state=seed).split(standardized, y, groups))

        def held_out(c: float, fold: np.ndarray, held: np.ndarray) -> tuple[float, float]:
            if between_fits is not None:
                between_fits()
            return held_out_scores(fit(standardized[fold], y[fold], c, row_weight[fold]), standardized[held], y[held])

        scores = np.array([  # (penalties, 2): mean held-out log-loss and accuracy of each C
            np.mean([held_out(c, fold, held) for fold, held in splits], axis=0)
            for c in Progress(PENALTIES, f"logistic probe ({folds}-fold CV per penalty)", unit="C")
        ])
        best = int(np.argmin(scores[:, 0]))
        penalty, cv_log_loss, cv_accuracy = float(PENALTIES[best]), float(scores[best, 0]), float(scores[best, 1])
    model = fit(standardized, y, penalty, row_weight)
    weight = (model.coef_ @ basis) / std
    bias = model.intercept_ - weight @ mean
    if weight.shape[0] == 1:  # sklearn keeps one row for two classes: logits (0, z) give the same argmax
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    return LogisticProbe(torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), penalty, cv_accuracy,
                         cv_log_loss)


def held_out_scores(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Log-loss and accuracy on held-out rows. A class absent from the fold's training rows (possible when folds
    keep an image's views together) has probability 0 there: its loss is capped as if it had 1e-15."""
    columns = {label: column for column, label in enumerate(model.classes_)}
    probabilities = model.predict_proba(x)
    of_the_label = np.array([probabilities[row, columns[label]] if label in columns else 0.0
                             for row, label in enumerate(y)])
    return float(-np.log(np.clip(of_the_label, 1e-15, None)).mean()), float(model.score(x, y))


def fit(x: np.ndarray, y: np.ndarray, penalty_c: float, row_weight: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # weak penalties on separable data stop at max_iter
        # sklearn's default tolerance stops weak penalties a few hundredths of a logit short of the optimum. The
        # tighter one costs little at few labels; with every label of the digits (646 separable images) the
        # whole probe took 55 s instead of 25-38 s, the weak penalties running to max_iter.
        return LogisticRegression(C=penalty_c, max_iter=1000, tol=1e-6).fit(x, y, sample_weight=row_weight)
