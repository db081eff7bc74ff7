"""Backbones from torchvision's model zoo: the architecture only; ImageNet weights come in as a pretrained source.

Each architecture is one row of `ZOO`, its layout: where its first convolution and its classifier are, and which
modules are its blocks. Another torchvision classifier is another row, with no branch on its name elsewhere.
"""

from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor, nn

from project.backbones.contract import WeightsInput
from project.backbones.exact_load import load_exactly
from project.errors import UserError


@dataclass(frozen=True)
class ZooLayout:
    """Where the parts of a torchvision classifier are, by attribute path."""

    stem_conv: str  # the first convolution, e.g. "conv1"
    classifier: str  # replaced by an identity; its first Linear's input size is the number of features
    blocks: tuple[str, ...]  # input to output; "a+b" is one block of two modules, "features.*" each child a block


RESNET = ZooLayout("conv1", "fc", ("conv1+bn1", "layer1", "layer2", "layer3", "layer4"))
FEATURES_THEN_CLASSIFIER = ZooLayout("features.0.0", "classifier", ("features.*",))
ZOO = {
    "resnet18": RESNET,
    "resnet50": RESNET,
    "mobilenet_v3_small": FEATURES_THEN_CLASSIFIER,
    "efficientnet_b0": FEATURES_THEN_CLASSIFIER,
}
ZOO_ARCHITECTURES = tuple(ZOO)


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier without its classifier: pooled features, `out_features` of them.

    For 1-channel data the stem takes one channel; `load_library_state` fills it with the sum of the RGB filters,
    which gives the same output as the gray image copied to three channels.
    """

    any_input_size = True  # global average pooling before the classifier

    def __init__(self, input_shape: tuple[int, int, int], arch: str) -> None:
        super().__init__()
        self.arch, self.layout, self.input_shape = arch, ZOO[arch], tuple(input_shape)
        self.model = torchvision.models.get_model(arch, weights=None)
        adapt_stem(self.model, self.layout.stem_conv, arch, input_shape[0])
        self.out_features = remove_classifier(self.model, self.layout.classifier)

    def blocks(self) -> list[nn.Module]:
        """Stem, then the stages, in input-to-output order."""
        blocks: list[nn.Module] = []
        for entry in self.layout.blocks:
            if entry.endswith(".*"):
                blocks += list(self.model.get_submodule(entry.removesuffix(".*")).children())
            else:
                parts = [self.model.get_submodule(name) for name in entry.split("+")]
                blocks.append(parts[0] if len(parts) == 1 else nn.ModuleList(parts))
        return blocks

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def weights_input(self) -> WeightsInput:
        return weights_input(self.arch)

    def load_library_state(self, state: dict[str, Tensor]) -> str:
        """Load a state dict of the whole torchvision model (its classifier is dropped); says what was done."""
        classifier = f"{self.layout.classifier}."
        state = {key: value for key, value in state.items() if not key.startswith(classifier)}
        stem_key = f"{self.layout.stem_conv}.weight"
        own_stem = self.model.state_dict()[stem_key]
        adapted = stem_key in state and state[stem_key].shape[1] == 3 and own_stem.shape[1] == 1
        if adapted:
            state[stem_key] = state[stem_key].sum(dim=1, keepdim=True)
        load_exactly(self.model, state, f"the weights for torchvision's {self.arch}",
                     "save the state dict of the same architecture, or set --model.backbone to the weights' own")
        return (
            f"{self.arch}: {len(state)} pretrained tensors reused"
            f"{'; the stem adapted from 3 channels to 1 by summing its filters' if adapted else ''}; "
            f"its 1000-class classifier removed, a new head follows"
        )


def weights_input(arch: str, weights: str = "DEFAULT") -> WeightsInput:
    """The input torchvision's `weights` for `arch` were trained under, from `weights.transforms()` (DEFAULT: the
    weights a state-dict file of the architecture most likely holds; all of the zoo's are ImageNet's)."""
    chosen = named_weights(arch, weights)
    transform = chosen.transforms()
    return WeightsInput(tuple(transform.mean), tuple(transform.std), transform.crop_size[0],
                        f"torchvision {type(chosen).__name__}.{chosen.name}")


def named_weights(arch: str, weights: str) -> torchvision.models.WeightsEnum:
    choices = torchvision.models.get_model_weights(arch)
    if weights == "DEFAULT":
        return choices.DEFAULT
    if weights not in choices.__members__:
        raise UserError(f"unknown weights {weights!r} for {arch}: choose one of {list(choices.__members__)}")
    return choices[weights]


def download_torchvision_weights(arch: str, weights: str) -> dict[str, Tensor]:
    """The state dict of torchvision's named weights for `arch` (downloaded once into the torch cache)."""
    chosen = named_weights(arch, weights)
    try:
        return chosen.get_state_dict(progress=False)
    except Exception as error:  # URLError, socket errors: no network
        raise UserError(
            f"could not download {arch} weights {weights} ({type(error).__name__}: {error}); without network, "
            f"save them elsewhere with torchvision (torch.save(model.state_dict(), 'file.pt')) and pass "
            f"--model.pretrained=file.pt"
        ) from error


def adapt_stem(model: nn.Module, stem_conv: str, arch: str, channels: int) -> None:
    """Make the stem take `channels` inputs (1 for grayscale; torchvision's take 3)."""
    conv = model.get_submodule(stem_conv)
    if conv.in_channels == channels:
        return
    if channels != 1:
        raise UserError(f"{arch} takes 3-channel images, not {channels}: set --data.channels=3")
    new = nn.Conv2d(
        1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():  # as the pretrained stem would be adapted, so a random one keeps its scale too
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
    parent, _, name = stem_conv.rpartition(".")
    setattr(model.get_submodule(parent), name, new)


def remove_classifier(model: nn.Module, classifier: str) -> int:
    """Replace the classifier by an identity; returns the number of pooled features left."""
    first_linear = next(layer for layer in model.get_submodule(classifier).modules() if isinstance(layer, nn.Linear))
    setattr(model, classifier, nn.Identity())
    return first_linear.in_features
