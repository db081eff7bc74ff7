"""What a model must know of the data it trains on, handed to it by the run once the data is set up: the
normalization and shape of its input and the class names (recorded in every checkpoint, so evaluation reads them
back from there), and the training augmentation its own views of unlabelled images follow."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInput:
    mean: list[float]  # per channel, of uint8 images scaled to [0, 1]
    std: list[float]
    input_shape: list[int]  # (C, H, W)
    class_names: list[str]
    augment: bool  # random crops and flips while training
    crop_padding: int  # pixels of padding the random crops take
    unlabelled_ratio: int  # unlabelled images per labelled one in a training batch (0: no pool)
    unlabelled_images: bool  # the training split holds images without labels (--data.unlabelled_root)

    def preprocessing(self) -> dict[str, Any]:
        """What an input must be for the model: kept in its checkpoints (as timm's pretrained_cfg)."""
        return {"mean": list(self.mean), "std": list(self.std), "input_shape": list(self.input_shape),
                "class_names": list(self.class_names)}
