"""Backbones by name, so configs and checkpoints name an architecture with a plain string."""

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from torch import nn

from project.backbones.cnn import CNNBackbone
from project.backbones.mlp import MLPBackbone
from project.backbones.torchvision_zoo import ZOO_ARCHITECTURES, TorchvisionBackbone
from project.errors import UserError

BackboneName = Literal["mlp", "cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"]
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLPBackbone,
    "cnn": CNNBackbone,
    **{arch: partial(TorchvisionBackbone, arch=arch) for arch in ZOO_ARCHITECTURES},
}


def build_backbone(name: str, input_shape: tuple[int, int, int], args: dict[str, Any] | None = None) -> nn.Module:
    """Build the named backbone for images of `input_shape` (C, H, W); it exposes `out_features`."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}: choose one of {sorted(BACKBONES)}")
    try:
        return BACKBONES[name](tuple(input_shape), **(args or {}))
    except TypeError as error:
        raise UserError(
            f"bad backbone_args {args} for backbone {name!r} ({error}): give that backbone's own, e.g. "
            f"--model.backbone_args='{{}}' for its defaults (a config's backbone_args belong to its backbone)"
        ) from error
    except (RuntimeError, ValueError) as error:  # e.g. more pooling than the image has pixels
        raise UserError(
            f"backbone {name!r} with args {args} cannot take {tuple(input_shape)} (C, H, W) images ({error}): "
            f"use fewer conv blocks or a larger --data.image_size"
        ) from error
