"""Plain nn.Module backbones; each returns pooled features and says how many in `out_features`."""

from project.models.cnn import CNNBackbone
from project.models.mlp import MLPBackbone
from project.models.registry import BACKBONES, BackboneName, build_backbone
from project.models.torchvision_zoo import TorchvisionBackbone

__all__ = ["BACKBONES", "BackboneName", "CNNBackbone", "MLPBackbone", "TorchvisionBackbone", "build_backbone"]
