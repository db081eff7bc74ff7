"""The article's CIFAR-10 CNN, conv(3→32)-pool-conv(32→64)-pool-fc512, as a backbone that returns features."""

import torch
from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """3×3 conv (padding 1, so only the pool halves the size), optional BatchNorm, ReLU, 2×2 max-pool."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


class CNNBackbone(nn.Module):
    """Conv blocks, flatten, then one fully connected feature layer; the head (fc10) lives elsewhere.

    The flatten size is measured by a dry run on the configured input shape, so one class serves
    1×28×28 (64·7·7) and 3×32×32 (64·8·8) — the article hard-coded 64·6·6, which is wrong for both.
    """

    any_input_size = False  # the flatten fixes the size

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: tuple[int, ...] = (32, 64),
        feature_size: int = 512,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = [input_shape[0], *channels]
        self.features = nn.Sequential(*(conv_block(a, b, batch_norm) for a, b in zip(widths, widths[1:], strict=False)))
        with torch.no_grad():  # in eval mode, so the dry run leaves the BatchNorm statistics untouched
            flat_size = self.features.eval()(torch.zeros(1, *input_shape)).numel()
        self.features.train()
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat_size, feature_size), nn.ReLU(inplace=True)
        )
        self.out_features = feature_size

    def blocks(self) -> list[nn.Module]:
        """The conv blocks, then the feature layer: the units that gradual unfreezing and layer-wise lr work on."""
        return [*self.features, self.fc]

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(self.features(images))
