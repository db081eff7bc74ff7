"""LightningModules: the image classifier and the transfer (fine-tuning) classifier."""

from project.lightning_modules.classifier import ImageClassifier
from project.lightning_modules.transfer import TransferClassifier

# By the name every checkpoint records (checkpoint["model_class"]), so it is read back by the class that wrote it.
MODEL_CLASSES: dict[str, type[ImageClassifier]] = {cls.__name__: cls for cls in (ImageClassifier, TransferClassifier)}

__all__ = ["MODEL_CLASSES", "ImageClassifier", "TransferClassifier"]
