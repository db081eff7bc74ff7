"""Augmentation and normalization of whole uint8 batches on the device the model is on.

airbench-style: one gather per batch instead of a PIL transform per image, each image still gets
its own random crop offset and flip.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """torchvision's RandomCrop(size, padding) with zero fill, drawn independently for every image."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    shift_y = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=generator)
    shift_x = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=generator)
    rows = (shift_y + torch.arange(height, device=images.device))[:, None, :, None]  # N,1,H,1
    cols = (shift_x + torch.arange(width, device=images.device))[:, None, None, :]  # N,1,1,W
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


def random_horizontal_flip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror a random half of the images (each with probability 0.5)."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 images to float, scaled to [0, 1], then standardized per channel."""
    mean = mean.to(images.device)[None, :, None, None]
    std = std.to(images.device)[None, :, None, None]
    return (images.float() / 255.0 - mean) / std


def adapt_channels(images: Tensor, channels: int) -> Tensor:
    """Grayscale to 3 channels by replication, colour to 1 channel by ITU-R 601 luma (PIL's "L")."""
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device)[None, :, None, None]
    return (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)


def resize(images: Tensor, size: int | tuple[int, int], chunk: int = 4096) -> Tensor:
    """uint8 images resized to size×size, or (height, width) (bilinear, antialiased as torchvision's Resize), a chunk
    at a time to bound memory. The one resize of the project: image folders, predictions and the digits alike."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    parts = [
        F.interpolate(part.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
        for part in images.split(chunk)
    ]
    return torch.cat(parts)


def channel_mean_std(images: Tensor, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1] units, summed in float64 a chunk at a time."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for part in images.split(chunk):
        values = part.double() / 255.0
        total += values.sum((0, 2, 3))
        total_sq += (values * values).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()
