"""Random views of whole batches on the model's device.

SimCLR's (Chen et al. 2020, CIFAR settings): a random resized crop (area 0.2-1 of the image, aspect 3/4-4/3) with
a horizontal flip, colour jitter with probability 0.8 (brightness, contrast, saturation 0.4; hue 0.1) and
grayscale with probability 0.2. FixMatch's (Sohn et al. 2020) weak view is the usual crop and flip; its strong
view here is SimCLR's view with a cutout (FixMatch used RandAugment + cutout; SimCLR's view is the strong
augmentation this project already has on the device).

Each image draws its own parameters from the generator given, as torchvision's per-image transforms would, but
the whole batch is transformed in a few tensor operations: no per-image PIL work in the data path.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from project.data.batch_transforms import random_crop, random_horizontal_flip

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, PIL's "L"
# RGB <-> YIQ, where a hue shift is a rotation of the (I, Q) chroma plane.
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def uniform(low: float, high: float, count: int, device: torch.device, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, device=device, generator=generator)


def random_resized_crop(
    images: Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True,
) -> Tensor:
    """A random area and aspect of each image, resized back to the image's size (bilinear), mirrored half the time."""
    n, device = len(images), images.device
    area = uniform(*scale, n, device, generator)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1]), n, device, generator))
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # as fractions of the image's side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = uniform(-1, 1, n, device, generator) * (1 - width)  # so the crop stays inside the image
    centre_y = uniform(-1, 1, n, device, generator) * (1 - height)
    mirror = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0) if flip else 1.0
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def gray(images: Tensor) -> Tensor:
    """(N, 1, H, W) luma of RGB images."""
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype)[None, :, None, None]
    return (images * weights).sum(1, keepdim=True)


def colour_jitter(
    images: Tensor, generator: torch.Generator, strength: float = 0.5, probability: float = 0.8
) -> Tensor:
    """Brightness, contrast, saturation (0.8 × strength each) and hue (0.2 × strength), each image with `probability`.

    For 1-channel images only brightness and contrast apply.
    """
    n, device = len(images), images.device
    amount = 0.8 * strength

    def factors() -> Tensor:
        return uniform(1 - amount, 1 + amount, n, device, generator)[:, None, None, None]

    jittered = images * factors()  # brightness
    mean = (gray(jittered) if images.shape[1] == 3 else jittered).mean(dim=(1, 2, 3), keepdim=True)
    jittered = (jittered - mean) * factors() + mean  # contrast
    if images.shape[1] == 3:
        luma = gray(jittered)
        jittered = (jittered - luma) * factors() + luma  # saturation
        jittered = shift_hue(jittered, uniform(-0.2 * strength, 0.2 * strength, n, device, generator))
    apply = torch.rand(n, device=device, generator=generator) < probability
    return torch.where(apply[:, None, None, None], jittered.clamp(0, 1), images)


def shift_hue(images: Tensor, turns: Tensor) -> Tensor:
    """Rotate each image's hue by `turns` of a full circle, in YIQ space (a linear map on the colour channels)."""
    to_yiq = torch.tensor(RGB_TO_YIQ, device=images.device, dtype=images.dtype)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, images)
    angle = 2 * math.pi * turns
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    i, q = yiq[:, 1], yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), rotated)


def random_grayscale(images: Tensor, generator: torch.Generator, probability: float = 0.2) -> Tensor:
    if images.shape[1] != 3:
        return images
    chosen = torch.rand(len(images), device=images.device, generator=generator) < probability
    return torch.where(chosen[:, None, None, None], gray(images).expand_as(images), images)


def simclr_view(
    images: Tensor, generator: torch.Generator, crop_scale: float = 0.2, strength: float = 0.5, flip: bool = True
) -> Tensor:
    """One random view of every image of a batch of floats in [0, 1] (N, C, H, W)."""
    view = random_resized_crop(images, generator, scale=(crop_scale, 1.0), flip=flip)
    return random_grayscale(colour_jitter(view, generator, strength), generator)


def cutout(images: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """A size × size square of every image (its centre anywhere in the image, clipped at the border) set to 0.5 grey
    (DeVries & Taylor 2017; FixMatch's strong augmentation ends with one)."""
    n, _, height, width = images.shape
    centre_y = torch.randint(0, height, (n, 1, 1), device=images.device, generator=generator)
    centre_x = torch.randint(0, width, (n, 1, 1), device=images.device, generator=generator)
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    low, high = -(size // 2), size - size // 2  # size pixels across, the centre among them
    dy, dx = rows - centre_y, cols - centre_x
    inside = (dy >= low) & (dy < high) & (dx >= low) & (dx < high)
    return torch.where(inside[:, None], torch.full_like(images, 0.5), images)


def weak_view(images: Tensor, generator: torch.Generator, crop_padding: int = 4, flip: bool = True) -> Tensor:
    """FixMatch's weak view of images in [0, 1]: a random crop with padding and, with `flip`, a horizontal flip (not
    for data whose mirror image is another thing, such as digits)."""
    cropped = random_crop(images, crop_padding, generator)
    return random_horizontal_flip(cropped, generator) if flip else cropped


def strong_view(
    images: Tensor, generator: torch.Generator, crop_scale: float = 0.2, strength: float = 0.5, cutout_size: int = 16,
    flip: bool = True,
) -> Tensor:
    """FixMatch's strong view of images in [0, 1]: SimCLR's view, then a cutout (none when `cutout_size` is 0)."""
    view = simclr_view(images, generator, crop_scale, strength, flip)
    return cutout(view, generator, cutout_size) if cutout_size else view
