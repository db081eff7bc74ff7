"""The embedded offline dataset: scikit-learn's 1,797 8×8 handwritten digits, resized to MNIST's 28×28."""

import torch
import torch.nn.functional as F

from project.data.image_set import ImageSet

DIGITS_CLASSES = [str(digit) for digit in range(10)]


def load_digits_images() -> ImageSet:
    """All 1,797 digits as uint8 1×28×28 images; the package ships them, so nothing is downloaded."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # values 0..16
    resized = F.interpolate(pixels, size=(28, 28), mode="bilinear", align_corners=False)
    images = (resized.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(images, torch.as_tensor(digits.target, dtype=torch.int64))
