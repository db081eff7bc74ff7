"""Backbones from torchvision's model zoo: the architecture only; ImageNet weights come in as a pretrained source."""

import torch
import torchvision
from torch import Tensor, nn

from project.errors import UserError

ZOO_ARCHITECTURES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier without its classifier: pooled features, `out_features` of them.

    For 1-channel data the stem takes one channel; `load_torchvision_state` fills it with the sum of the
    RGB filters, which gives the same output as the gray image copied to three channels.
    """

    def __init__(self, input_shape: tuple[int, int, int], arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.model = torchvision.models.get_model(arch, weights=None)
        adapt_stem(self.model, arch, input_shape[0])
        self.out_features = remove_classifier(self.model, arch)

    def blocks(self) -> list[nn.Module]:
        """Stem, then the stages, in input-to-output order."""
        if self.arch.startswith("resnet"):
            m = self.model
            return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4]
        return list(self.model.features)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def load_torchvision_state(self, state: dict[str, Tensor]) -> str:
        """Load a state dict of the whole torchvision model (its classifier is dropped); says what was done."""
        classifier = "fc." if self.arch.startswith("resnet") else "classifier."
        state = {key: value for key, value in state.items() if not key.startswith(classifier)}
        stem_key = "conv1.weight" if self.arch.startswith("resnet") else "features.0.0.weight"
        own_stem = self.model.state_dict()[stem_key]
        adapted = stem_key in state and state[stem_key].shape[1] == 3 and own_stem.shape[1] == 1
        if adapted:
            state[stem_key] = state[stem_key].sum(dim=1, keepdim=True)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            raise UserError(f"the weights do not fit torchvision's {self.arch}: {str(error)[:400]}") from error
        return (
            f"{self.arch}: {len(state)} pretrained tensors reused"
            f"{'; the stem adapted from 3 channels to 1 by summing its filters' if adapted else ''}; "
            f"its 1000-class classifier removed, a new head follows"
        )


def download_torchvision_weights(arch: str, weights: str) -> dict[str, Tensor]:
    """The state dict of torchvision's named weights for `arch` (downloaded once into the torch cache)."""
    choices = torchvision.models.get_model_weights(arch)
    if weights not in choices.__members__:
        raise UserError(f"unknown weights {weights!r} for {arch}: choose one of {list(choices.__members__)}")
    try:
        return choices[weights].get_state_dict(progress=False)
    except Exception as error:  # URLError, socket errors: no network
        raise UserError(
            f"could not download {arch} weights {weights} ({type(error).__name__}: {error}); without network, "
            f"save them elsewhere with torchvision (torch.save(model.state_dict(), 'file.pt')) and pass "
            f"--model.pretrained=file.pt"
        ) from error


def stem_conv(model: nn.Module, arch: str) -> tuple[nn.Module, str, nn.Conv2d]:
    """(parent module, attribute name, conv) of the first convolution."""
    if arch.startswith("resnet"):
        return model, "conv1", model.conv1
    first_block = model.features[0]
    return first_block, "0", first_block[0]


def adapt_stem(model: nn.Module, arch: str, channels: int) -> None:
    """Make the stem take `channels` inputs (1 for grayscale; torchvision's take 3)."""
    parent, name, conv = stem_conv(model, arch)
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
    setattr(parent, name, new)


def remove_classifier(model: nn.Module, arch: str) -> int:
    """Replace the classifier by an identity; returns the number of pooled features left."""
    if arch.startswith("resnet"):
        features = model.fc.in_features
        model.fc = nn.Identity()
        return features
    first_linear = next(layer for layer in model.classifier.modules() if isinstance(layer, nn.Linear))
    model.classifier = nn.Identity()
    return first_linear.in_features
