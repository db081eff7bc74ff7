"""LightningModules: the image classifier and the transfer (fine-tuning) classifier."""

from project.lightning_modules.classifier import ImageClassifier
from project.lightning_modules.transfer import TransferClassifier

__all__ = ["ImageClassifier", "TransferClassifier"]
