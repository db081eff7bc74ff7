"""Plain nn.Module backbones behind one contract (`contract.Backbone`): pooled features, `out_features` of them,
their blocks, and the input their weights expect."""

from project.backbones.cnn import CNNBackbone
from project.backbones.contract import Backbone, LibraryBackbone, WeightsInput
from project.backbones.mlp import MLPBackbone
from project.backbones.registry import BACKBONES, BackboneName, build_backbone
from project.backbones.timm_backbones import TimmBackbone
from project.backbones.torchvision_zoo import TorchvisionBackbone

__all__ = [
    "BACKBONES", "Backbone", "BackboneName", "CNNBackbone", "LibraryBackbone", "MLPBackbone", "TimmBackbone",
    "TorchvisionBackbone", "WeightsInput", "build_backbone",
]
