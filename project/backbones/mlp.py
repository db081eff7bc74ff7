"""The article's multilayer perceptron (784-128-64-10 on MNIST) as a backbone that returns features."""

import math

from torch import Tensor, nn


class MLPBackbone(nn.Module):
    """Flatten the image, then Linear-ReLU blocks; the head (the article's last Linear) lives elsewhere."""

    any_input_size = False

    def __init__(self, input_shape: tuple[int, int, int], hidden_sizes: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = [math.prod(input_shape), *hidden_sizes]
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(
            *(nn.Sequential(nn.Linear(a, b), nn.ReLU(inplace=True)) for a, b in zip(widths, widths[1:], strict=False))
        )
        self.out_features = widths[-1]

    def blocks(self) -> list[nn.Module]:
        """The layers in input-to-output order: the units that gradual unfreezing and layer-wise lr work on."""
        return list(self.layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(self.flatten(images))
