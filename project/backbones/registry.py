"""Backbones by name, so configs and checkpoints name an architecture with a plain string: `mlp`, `cnn`, a
torchvision zoo architecture (`resnet18`, ...), or `timm:<name>` for any timm architecture (the `timm` extra)."""

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from project.backbones import timm_backbones, torchvision_zoo
from project.backbones.cnn import CNNBackbone
from project.backbones.contract import Backbone, WeightsInput
from project.backbones.mlp import MLPBackbone
from project.backbones.timm_backbones import TimmBackbone
from project.backbones.torchvision_zoo import ZOO_ARCHITECTURES, TorchvisionBackbone
from project.errors import UserError

# A plain string, checked by build_backbone: timm's names are open-ended, so no Literal can list them.
BackboneName = str
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLPBackbone,
    "cnn": CNNBackbone,
    **{arch: partial(TorchvisionBackbone, arch=arch) for arch in ZOO_ARCHITECTURES},
}
BACKBONE_CHOICES = f"{sorted(BACKBONES)} or {timm_backbones.PREFIX}<name> (any timm model)"


def backbone_class(name: str) -> Callable[..., nn.Module]:
    """What builds the backbone `name`."""
    if name.startswith(timm_backbones.PREFIX):
        return partial(TimmBackbone, name=name)
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}: choose one of {BACKBONE_CHOICES}")
    return BACKBONES[name]


def build_backbone(name: str, input_shape: tuple[int, int, int], args: dict[str, Any] | None = None) -> Backbone:
    """Build the named backbone for images of `input_shape` (C, H, W); it meets the `Backbone` contract."""
    build = backbone_class(name)
    try:
        return build(tuple(input_shape), **(args or {}))
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


def is_library_backbone(name: str | None) -> bool:
    """Whether `name` is a library's architecture, whose published weights a state-dict file can hold."""
    return name is not None and (name in ZOO_ARCHITECTURES or name.startswith(timm_backbones.PREFIX))


def library_weights_input(name: str) -> WeightsInput:
    """The input the published weights of the library architecture `name` were trained under."""
    if name.startswith(timm_backbones.PREFIX):
        return timm_backbones.weights_input(name)
    return torchvision_zoo.weights_input(name)
