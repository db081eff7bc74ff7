"""A trained model read back from its checkpoint through Lightning's own `load_from_checkpoint`.

Every checkpoint says which class wrote it (`model_class`) and what its input must be (`preprocessing`:
normalization, shape, class names), so nothing the model was first built from (a pretraining run, torchvision
weights) is read again.
"""

import io
import math
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser

from project.checkpoints.files import file_bytes, find_checkpoint, load_checkpoint
from project.errors import UserError
from project.models import MODEL_CLASSES, ImageClassifier


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
    """The model in a .ckpt file, or the selected checkpoint of a run or experiment folder, in eval mode on `device`."""
    model, path, _ = load_trained_run(location, device)
    return model, path


def load_trained_run(location: str | Path, device: torch.device | str = "cpu"
                     ) -> tuple[ImageClassifier, Path, dict[str, Any]]:
    """(model, its checkpoint file, the checkpoint's content): the file is read once, checked, and the model built
    from the same bytes, mapped to the CPU first, so a checkpoint written on a GPU loads on a machine without one."""
    path = find_checkpoint(location, "best")
    content = file_bytes(path)
    checkpoint = load_checkpoint(path, content)  # read safely first: a damaged or unsafe file is a clear error
    model_class = MODEL_CLASSES.get(checkpoint.get("model_class"))
    if model_class is None or checkpoint.get("preprocessing") is None:
        raise UserError(
            f"{str(path)!r} does not say which model wrote it or what its input must be: give a checkpoint written "
            f"by this version's scripts/pretrain.py or scripts/finetune.py"
        )
    check_preprocessing(checkpoint, path)
    if not issubclass(model_class, ImageClassifier):  # e.g. SimCLR: features, no classifier to evaluate or export
        raise UserError(
            f"{str(path)!r} is a {model_class.__name__} checkpoint: a backbone without a classifier, so it has no "
            f"classes to evaluate, predict or export; fine-tune it first (python scripts/finetune.py "
            f"--model.pretrained={path}) and use the fine-tuned run"
        )
    try:
        model = model_class.load_from_checkpoint(io.BytesIO(content), map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError) as error:  # weights or arguments that do not fit the class the file names
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"{str(path)!r} holds weights that do not fit the model its hyperparameters describe ({first_line}): "
            f"it was edited, or written by another version of this project; retrain or use another checkpoint"
        ) from error
    return model.to(device).eval(), path, checkpoint


MAX_SIDE = 4096  # pixels: a larger recorded input would be a damaged or hostile file, not a model of this project


def check_preprocessing(checkpoint: dict, path: Path) -> None:
    """What a checkpoint says its input and classes are must be usable as it stands: it becomes tensors, shapes
    and an export's JSON. A damaged or hand-made file is one line here, not a traceback or a wrong artifact."""
    recorded, hparams = checkpoint.get("preprocessing"), checkpoint.get("hyper_parameters")
    problem = None
    if not isinstance(recorded, dict) or not isinstance(hparams, dict):
        problem = "its preprocessing or hyperparameters are not a mapping"
    else:
        shape, mean, std, names = (recorded.get(key) for key in ("input_shape", "mean", "std", "class_names"))
        numbers = [*mean, *std] if isinstance(mean, list) and isinstance(std, list) else []
        if not (isinstance(shape, list | tuple) and len(shape) == 3 and all(isinstance(v, int) for v in shape)
                and shape[0] in (1, 3) and all(0 < v <= MAX_SIDE for v in shape[1:])):
            problem = f"its input_shape {shape!r} is not (1 or 3, H, W) with sides of 1 to {MAX_SIDE}"
        elif not numbers or len(mean) != shape[0] or len(std) != shape[0] or not all(
                isinstance(v, int | float) and math.isfinite(v) for v in numbers) or min(std) <= 0:
            problem = f"its mean {mean!r} and std {std!r} are not {shape[0]} finite numbers each (std above 0)"
        elif not (isinstance(names, list) and all(isinstance(n, str) for n in names)
                  and len(names) == hparams.get("num_classes", len(names))):
            problem = f"its class_names are not {hparams.get('num_classes')} names, one per output"
    if problem:
        raise UserError(f"{str(path)!r} cannot be used: {problem}; it was damaged or edited: retrain, or use another "
                        f"checkpoint")


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
