"""A trained model read back from its checkpoint through Lightning's own `load_from_checkpoint`.

Every checkpoint says which class wrote it (`model_class`) and what its input must be (`preprocessing`:
normalization, shape, class names), so nothing the model was first built from (a pretraining run, torchvision
weights) is read again.
"""

from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.errors import UserError
from project.lightning_modules import MODEL_CLASSES, ImageClassifier


def add_model_arguments(parser: ArgumentParser, output_folder: str | None = None) -> None:
    """The options every inference script shares, named as the training scripts name them; `--output_dir` too
    for a script that writes into `<run folder>/<output_folder>` by default."""
    parser.add_argument(
        "--ckpt_path", type=str, required=True,
        help="a .ckpt file, a run folder or an experiment folder (its selected checkpoint)",
    )
    parser.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:N (default: a GPU if any)")
    if output_folder is not None:
        parser.add_argument("--output_dir", type=str | None, default=None,
                            help=f"folder for what it writes (default: <run folder>/{output_folder})")


def load_trained_model(location: str | Path, device: torch.device | str = "cpu") -> tuple[ImageClassifier, Path]:
    """The model in a .ckpt file, or the selected checkpoint of a run or experiment folder, in eval mode on `device`.

    Mapped to the CPU first, so a checkpoint written on a GPU loads on a machine without one.
    """
    path = find_checkpoint(location, "best")
    checkpoint = load_checkpoint(path)  # read safely first: a damaged or unsafe file is a clear error
    model_class = MODEL_CLASSES.get(checkpoint.get("model_class"))
    if model_class is None or checkpoint.get("preprocessing") is None:
        raise UserError(
            f"{str(path)!r} does not say which model wrote it or what its input must be: give a checkpoint written "
            f"by this version's scripts/pretrain.py or scripts/finetune.py"
        )
    if not issubclass(model_class, ImageClassifier):  # e.g. SimCLR: features, no classifier to evaluate or export
        raise UserError(
            f"{str(path)!r} is a {model_class.__name__} checkpoint: a backbone without a classifier, so it has no "
            f"classes to evaluate, predict or export; fine-tune it first (python scripts/finetune.py "
            f"--model.pretrained={path}) and use the fine-tuned run"
        )
    try:
        model = model_class.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError) as error:  # weights or arguments that do not fit the class the file names
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"{str(path)!r} holds weights that do not fit the model its hyperparameters describe ({first_line}): "
            f"it was edited, or written by another version of this project; retrain or use another checkpoint"
        ) from error
    return model.to(device).eval(), path


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
