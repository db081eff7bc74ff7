"""The article's multilayer perceptron (784-128-64-10 on MNIST) as a backbone that returns features."""

import math

from torch import Tensor, nn


class MLPBackbone(nn.Module):
    """Flatten the image, then Linear-ReLU blocks; the head (the article's last Linear) lives elsewhere."""

    def __init__(self, input_shape: tuple[int, int, int], hidden_sizes: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.blocks = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, images: Tensor) -> Tensor:
        return self.blocks(images)
