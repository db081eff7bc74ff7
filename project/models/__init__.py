"""LightningModules: the image classifier, the transfer (fine-tuning) classifier, and SimCLR pretraining."""

from project.models.backbone_module import BackboneModule
from project.models.classifier import ImageClassifier
from project.models.simclr import SimCLRPretraining
from project.models.transfer import TransferClassifier

# By the name every checkpoint records (checkpoint["model_class"]), so it is read back by the class that wrote it.
MODEL_CLASSES: dict[str, type[BackboneModule]] = {
    cls.__name__: cls for cls in (ImageClassifier, TransferClassifier, SimCLRPretraining)
}
# What scripts/pretrain.py trains, by `--objective`.
OBJECTIVES: dict[str, type[BackboneModule]] = {"supervised": ImageClassifier, "simclr": SimCLRPretraining}

__all__ = [
    "MODEL_CLASSES", "OBJECTIVES", "BackboneModule", "ImageClassifier", "SimCLRPretraining", "TransferClassifier",
]
