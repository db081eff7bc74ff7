"""LightningModules: the image classifier and the transfer (fine-tuning) classifier."""

from project.modules.classifier import ImageClassifier
from project.modules.transfer import TransferClassifier

__all__ = ["ImageClassifier", "TransferClassifier"]
