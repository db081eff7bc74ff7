"""Image files for prediction, read the way training saw them: the model's channel count and size, uint8."""

from pathlib import Path

from torch import Tensor

from project.data.batch_transforms import adapt_channels, resize
from project.data.image_files import IMAGE_EXTENSIONS, decode_image, image_files
from project.errors import UserError


def input_files(locations: list[str]) -> list[Path]:
    """Files as given, then the image files under each folder (recursively, sorted by path)."""
    files = []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            files += image_files(path)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{location!r} does not exist: give image files or folders of images")
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {locations}: give images or folders")
    return files


def read_image(path: Path, input_shape: tuple[int, int, int]) -> Tensor:
    """One image as uint8 (C, H, W) of `input_shape`: decoded, resized and converted as the training data was."""
    channels, height, width = input_shape
    return adapt_channels(resize(decode_image(path).unsqueeze(0), (height, width)), channels)[0]
