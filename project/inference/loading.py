"""A trained classifier read back from its checkpoint, with what inference needs: classes, input shape, statistics."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.data import ImageDataModule
from project.data.batch_transforms import normalize
from project.errors import UserError
from project.lightning_modules import ImageClassifier, TransferClassifier


@dataclass
class Classifier:
    """A model in eval mode and the contract of its input: uint8 images of `input_shape`, normalized by mean/std."""

    checkpoint_path: Path
    model: ImageClassifier
    class_names: list[str]
    input_shape: tuple[int, int, int]
    mean: Tensor
    std: Tensor
    data_settings: dict[str, Any]  # the ImageDataModule arguments it was trained with

    @torch.inference_mode()
    def logits(self, images: Tensor) -> Tensor:
        """Logits of a uint8 (N, C, H, W) batch, on the model's device."""
        images = images.to(self.model.device)
        return self.model(normalize(images, self.mean, self.std))


def load_classifier(location: str | Path, device: torch.device | str = "cpu") -> Classifier:
    """The classifier in a .ckpt file, or the best checkpoint of a run or experiment folder, moved to `device`."""
    path = find_checkpoint(location, "best")
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    if not {"backbone", "num_classes", "input_shape"} <= hparams.keys():
        raise UserError(
            f"{str(path)!r} is not a checkpoint of this project's classifiers (no backbone hyperparameters): "
            f"give one written by scripts/pretrain.py or scripts/finetune.py"
        )
    statistics = checkpoint.get(ImageDataModule.__qualname__, {})
    if "mean" not in statistics or "std" not in statistics:
        raise UserError(
            f"{str(path)!r} does not record the normalization (mean, std) its model was trained with: "
            f"give a checkpoint written by scripts/pretrain.py or scripts/finetune.py"
        )
    model = build_model(path, hparams).to(device).eval()
    data_settings = checkpoint.get("datamodule_hyper_parameters", {})
    return Classifier(
        checkpoint_path=path,
        model=model,
        class_names=list(hparams.get("class_names") or [str(i) for i in range(hparams["num_classes"])]),
        input_shape=tuple(hparams["input_shape"]),
        mean=torch.tensor(statistics["mean"], dtype=torch.float32),
        std=torch.tensor(statistics["std"], dtype=torch.float32),
        data_settings={key: value for key, value in data_settings.items() if not key.startswith("_")},
    )


def build_model(path: Path, hparams: dict[str, Any]) -> ImageClassifier:
    """The model with the checkpoint's weights; nothing it was first built from (pretrained run, zoo weights) is read.

    Mapped to the CPU first, so a checkpoint written on a GPU loads on a machine without one.
    """
    try:
        if "strategy" in hparams:  # a fine-tuned TransferClassifier: its backbone weights are in the state_dict too
            return TransferClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        return ImageClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except RuntimeError as error:  # load_state_dict: weights that do not fit the architecture the file names
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"{str(path)!r} holds weights that do not fit the model its hyperparameters describe ({first_line}): "
            f"it was edited, or written by another version of this project; retrain or use another checkpoint"
        ) from error


def inference_device(name: str | None) -> torch.device:
    """The device to run on: `name`, or the GPU when there is one."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UserError(f"--device {name!r} is not a device ({error}): use cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: this machine has no usable CUDA GPU; use --device=cpu")
    return device
