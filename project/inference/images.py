"""Image files for prediction, read the way training saw them: the model's channel count and size, uint8."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from project.data.image_folder import IMAGE_EXTENSIONS
from project.errors import UserError

# What PIL raises for a file it cannot decode: not an image (UnidentifiedImageError is an OSError), truncated,
# an unsupported mode, or more pixels than its decompression-bomb guard allows.
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)


def image_files(locations: list[str]) -> list[Path]:
    """Files as given, then the image files under each folder (recursively, sorted by path)."""
    files = []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{location!r} does not exist: give image files or folders of images")
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {locations}: give images or folders")
    return files


def read_image(path: Path, input_shape: tuple[int, int, int]) -> Tensor:
    """One image as uint8 (C, H, W): gray ("L") or RGB as the model takes, resized bilinearly like image folders."""
    channels, height, width = input_shape
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.array(image))
    return pixels.unsqueeze(0) if channels == 1 else pixels.permute(2, 0, 1).contiguous()
