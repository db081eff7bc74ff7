"""Plain nn.Module backbones; each returns pooled features and says how many in `out_features`."""

from project.models.cnn import CNNBackbone
from project.models.mlp import MLPBackbone
from project.models.registry import BACKBONES, BackboneName, build_backbone

__all__ = ["BACKBONES", "BackboneName", "CNNBackbone", "MLPBackbone", "build_backbone"]
