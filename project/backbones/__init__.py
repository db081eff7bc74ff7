"""Plain nn.Module backbones; each returns pooled features and says how many in `out_features`."""

from project.backbones.cnn import CNNBackbone
from project.backbones.mlp import MLPBackbone
from project.backbones.registry import BACKBONES, BackboneName, build_backbone
from project.backbones.torchvision_zoo import TorchvisionBackbone

__all__ = ["BACKBONES", "BackboneName", "CNNBackbone", "MLPBackbone", "TorchvisionBackbone", "build_backbone"]
