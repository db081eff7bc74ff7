"""LightningModules: the image classifier, the transfer (fine-tuning) classifier, and SimCLR pretraining."""

from project.models.backbone_module import BackboneModule
from project.models.classifier import ImageClassifier
from project.models.simclr import SimCLRPretraining
from project.models.transfer import TransferClassifier

# By the name every checkpoint records (checkpoint["model_class"]), so it is read back by the class that wrote it.
MODEL_CLASSES: dict[str, type[BackboneModule]] = {
    cls.__name__: cls for cls in (ImageClassifier, TransferClassifier, SimCLRPretraining)
}
# What scripts/pretrain.py trains, chosen the LightningCLI way: `--model=SimCLRPretraining` (or a config's
# `model: class_path:`) picks the class, the labels' classifier by default.
PRETRAINING_CLASSES: tuple[type[BackboneModule], ...] = (ImageClassifier, SimCLRPretraining)

__all__ = [
    "MODEL_CLASSES", "PRETRAINING_CLASSES", "BackboneModule", "ImageClassifier", "SimCLRPretraining",
    "TransferClassifier",
]
