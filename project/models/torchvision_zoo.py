"""Backbones from torchvision's model zoo, with ImageNet weights by name or from a local file."""

import torch
import torchvision
from torch import Tensor, nn

from project.errors import UserError

ZOO_ARCHITECTURES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier without its classifier: pooled features, `out_features` of them.

    Args:
        weights: a torchvision weights name such as `IMAGENET1K_V1` (downloaded once into the torch cache).
        weights_file: a local state dict of the whole torchvision model, for machines without network.
    """

    def __init__(
        self, input_shape: tuple[int, int, int], arch: str, weights: str | None = None, weights_file: str | None = None
    ) -> None:
        super().__init__()
        self.arch = arch
        self.model = torchvision.models.get_model(arch, weights=None)
        reused = load_zoo_weights(self.model, arch, weights, weights_file)
        adapted = adapt_stem(self.model, arch, input_shape[0])
        self.out_features = remove_classifier(self.model, arch)
        source = weights_file or weights
        self.report = (
            f"{arch}: {f'{reused} pretrained tensors reused from {source}' if reused else 'random init'}"
            f"{'; ' + adapted if adapted else ''}; its 1000-class classifier removed, a new head follows"
        )

    def blocks(self) -> list[nn.Module]:
        """Stem, then the stages, in input-to-output order."""
        if self.arch.startswith("resnet"):
            m = self.model
            return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4]
        return list(self.model.features)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def load_zoo_weights(model: nn.Module, arch: str, weights: str | None, weights_file: str | None) -> int:
    """Load ImageNet weights into the full model (classifier included, so the keys match strictly)."""
    if weights_file is not None:
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except FileNotFoundError as error:
            raise UserError(f"weights_file {weights_file!r} does not exist") from error
        except Exception as error:
            raise UserError(f"weights_file {weights_file!r} is not a readable state dict ({error})") from error
    elif weights is not None:
        choices = torchvision.models.get_model_weights(arch)
        if weights not in choices.__members__:
            raise UserError(f"unknown weights {weights!r} for {arch}: choose one of {list(choices.__members__)}")
        try:
            state = choices[weights].get_state_dict(progress=False)
        except Exception as error:  # URLError, socket errors: no network
            raise UserError(
                f"could not download {arch} weights {weights} ({type(error).__name__}: {error}); without network, "
                f"save them elsewhere with torchvision and pass backbone_args.weights_file=PATH"
            ) from error
    else:
        return 0
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"the weights do not fit torchvision's {arch}: {str(error)[:400]}") from error
    return len(state)


def stem_conv(model: nn.Module, arch: str) -> tuple[nn.Module, str, nn.Conv2d]:
    """(parent module, attribute name, conv) of the first convolution."""
    if arch.startswith("resnet"):
        return model, "conv1", model.conv1
    first_block = model.features[0]
    return first_block, "0", first_block[0]


def adapt_stem(model: nn.Module, arch: str, channels: int) -> str:
    """Make the stem take `channels` inputs; for grayscale, sum the RGB filters (the same response as a gray image
    copied to three channels, without copying images)."""
    parent, name, conv = stem_conv(model, arch)
    if conv.in_channels == channels:
        return ""
    if channels != 1:
        raise UserError(f"{arch} takes 3-channel images, not {channels}: set --data.channels=3")
    new = nn.Conv2d(
        1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, name, new)
    return "stem adapted from 3 channels to 1 by summing its filters"


def remove_classifier(model: nn.Module, arch: str) -> int:
    """Replace the classifier by an identity; returns the number of pooled features left."""
    if arch.startswith("resnet"):
        features = model.fc.in_features
        model.fc = nn.Identity()
        return features
    first_linear = next(layer for layer in model.classifier.modules() if isinstance(layer, nn.Linear))
    model.classifier = nn.Identity()
    return first_linear.in_features
