"""Scores of one backbone's frozen features on a target's labelled images (the label budget, nothing more)."""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from project.data import ImageDataModule
from project.data.image_set import ImageSet
from project.feature_probes.knn import knn_accuracy
from project.feature_probes.logistic import fit_logistic_probe
from project.feature_probes.logme import logme_score

BATCH = 256


@dataclass(frozen=True)
class FeatureScores:
    logme: float  # LogME evidence per image over every labelled image (train + validation budget)
    knn_accuracy: float  # leave-one-out 5-NN accuracy over every labelled image
    probe_accuracy: float  # logistic probe fit on the training labels (penalty by CV), scored on the validation ones


@torch.inference_mode()
def frozen_features(backbone: nn.Module, data: ImageDataModule, images: ImageSet) -> Tensor:
    """The backbone's pooled features of `images`, normalized as the data module serves them, in eval mode."""
    backbone.eval()
    parts = []
    for start in range(0, len(images), BATCH):
        batch, labels = images.images[start : start + BATCH], images.labels[start : start + BATCH]
        parts.append(backbone(data.batch_transform(batch, labels)[0]))
    return torch.cat(parts)


def score_features(backbone: nn.Module, data: ImageDataModule, seed: int = 0) -> FeatureScores:
    """All three scores of `backbone` on the data module's labelled training and validation images."""
    train, val = data.train_set, data.val_set
    train_features, val_features = frozen_features(backbone, data, train), frozen_features(backbone, data, val)
    features = torch.cat([train_features, val_features])
    labels = torch.cat([train.labels, val.labels])
    probe = fit_logistic_probe(train_features, train.labels, seed)
    probe_accuracy = float((probe.predict(val_features) == val.labels).float().mean()) if len(val) else float("nan")
    return FeatureScores(logme_score(features, labels), knn_accuracy(features, labels), probe_accuracy)
