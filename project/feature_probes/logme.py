"""LogME (You et al., ICML 2021): how well frozen features explain the labels, with no training.

For each class, the one-vs-rest label vector is modelled as a Bayesian linear regression on the features
(weight prior precision alpha, noise precision beta); alpha and beta are set by maximizing the evidence
with MacKay's fixed-point updates, and the score is the maximized log evidence per sample, averaged over
classes. Higher is better; scores compare feature extractors on one labelled set, not across sets.
"""

import math

import torch
from torch import Tensor

EPSILON = 1e-5


def logme_score(features: Tensor, labels: Tensor, max_iterations: int = 20) -> float:
    """LogME of `features` (N, D) for integer `labels` (N,)."""
    f = features.double().cpu()
    n, d = f.shape
    # One thin SVD of F serves every class: the eigenvalues of F^T F are its squared singular values (the other
    # D - rank are zero), and the posterior mean lives in the span of its right singular vectors. Cheaper than
    # an eigendecomposition of the D×D F^T F when there are fewer labelled images than features.
    u, singular, vh = torch.linalg.svd(f, full_matrices=False)
    sigma = singular**2
    null_dims = d - len(sigma)
    evidences = []
    for label in labels.unique():
        y = (labels.cpu() == label).double()
        projected = singular * (u.T @ y)  # V^T F^T y
        alpha, beta = 1.0, 1.0
        for _ in range(max_iterations):
            gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
            mean = vh.T @ (beta * projected / (alpha + beta * sigma))
            weight_norm = float(mean @ mean)
            residual = float(((y - f @ mean) ** 2).sum())
            new_alpha = gamma / (weight_norm + EPSILON)
            new_beta = (n - gamma) / (residual + EPSILON)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        log_det = float(torch.log(alpha + beta * sigma).sum()) + null_dims * math.log(alpha)
        evidence = (
            d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * log_det
            - beta / 2 * residual - alpha / 2 * weight_norm - n / 2 * math.log(2 * math.pi)
        )
        evidences.append(evidence / n)
    return sum(evidences) / len(evidences)
