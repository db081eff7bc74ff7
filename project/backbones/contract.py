"""The contract every backbone meets, written down: what fine-tuning, the BatchNorm policy, layer decay and the
pretrained sources rely on, so that none of them has to know an architecture by name (timm's own contract:
pooled features and their number, the head a separate nn.Linear, `pretrained_cfg` travelling with the weights)."""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@dataclass(frozen=True)
class WeightsInput:
    """The input a set of weights was trained under: timm's `pretrained_cfg`, torchvision's `weights.transforms()`,
    or the preprocessing a pretraining run of this project recorded in its checkpoints.

    mean and std are of uint8/255 images, one value per channel the weights were trained on.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int | None  # the side the weights were trained at (None: not recorded)
    origin: str  # where the values were read, e.g. "torchvision ResNet18_Weights.IMAGENET1K_V1"


@runtime_checkable
class Backbone(Protocol):
    """An nn.Module that turns (N, C, H, W) normalized images into (N, out_features) pooled features.

    Attributes:
        out_features: the number of pooled features (the new head's input).
        input_shape: the (C, H, W) it was built for.
        any_input_size: whether it also takes other H × W (global pooling), or only input_shape's (a flatten).
    """

    out_features: int
    input_shape: tuple[int, int, int]
    any_input_size: bool

    def forward(self, images: Tensor) -> Tensor: ...

    def blocks(self) -> list[nn.Module]:
        """The blocks in input-to-output order: what gradual unfreezing, layer decay, the frozen-BatchNorm policy
        and `reinit_blocks` work on. Together they should hold every parameter (any left over train with the
        first block)."""
        ...


@runtime_checkable
class LibraryBackbone(Backbone, Protocol):
    """A backbone from a model library (torchvision, timm), whose published weights come as the library's
    whole-model state dict and were trained under an input of their own."""

    def load_library_state(self, state: dict[str, Tensor]) -> str:
        """Load a state dict of the library's whole model (its classifier is dropped, a 3-channel stem adapted to
        1 channel where the data has one); returns what was done, in words."""
        ...

    def weights_input(self) -> WeightsInput:
        """The input the architecture's published weights were trained under."""
        ...
