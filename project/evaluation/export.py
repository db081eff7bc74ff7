"""scripts/export.py: a checkpoint as TorchScript and ONNX (normalized float images → logits), plus its preprocessing.

The preprocessing JSON beside them says how to make the input: the colour mode, the size, mean and std,
and the class names that index the logits.
"""

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from project.checkpoints.output_files import output_folder, run_folder, write_new_files
from project.errors import exits_on_user_error
from project.evaluation.loading import add_model_arguments, load_trained_model
from project.models import ImageClassifier

SUFFIXES = (".torchscript.pt", ".onnx", ".preprocessing.json")


def main(args: list[str] | None = None) -> None:
    """Export the checkpoint's model; a user error exits with status 2 and a one-line message."""
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    add_model_arguments(parser, output_folder="export")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        model, path = load_trained_model(config.ckpt_path)  # exported from the CPU: it runs anywhere
        folder = output_folder(config.output_dir, run_folder(path) / "export")
    for written in export(model, path, folder):
        print(f"written: {written}")


def export(model: ImageClassifier, checkpoint: Path, folder: Path) -> list[Path]:
    """Write the TorchScript file, the ONNX file (when onnx is installed) and, last, the preprocessing JSON that
    names them to `folder`: each file complete or absent, under a stem no other export has taken."""
    example = torch.zeros(2, *model.preprocessing["input_shape"])
    with_onnx = importlib.util.find_spec("onnx") is not None
    if not with_onnx:
        print("onnx is not installed: no ONNX file (pip install 'lightning-transfer-lab[onnx]' to get one)")

    def writers(stem: str) -> list:
        files = {"torchscript": f"{stem}{SUFFIXES[0]}", "onnx": f"{stem}{SUFFIXES[1]}" if with_onnx else None}
        described = json.dumps(preprocessing(model, checkpoint, files), indent=2) + "\n"
        return [lambda path: export_torchscript(model, example, path),
                (lambda path: export_onnx(model, example, path)) if with_onnx else None,
                lambda path: path.write_text(described)]

    return write_new_files(folder, checkpoint.stem, SUFFIXES, writers)


def export_torchscript(model: ImageClassifier, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream (torch, and Lightning from 2.7), yet it is what many serving tools
        # still load; the ONNX file beside it is the portable one.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*to_torchscript.*deprecated.*")
        model.to_torchscript(str(path), method="trace", example_inputs=example)


def export_onnx(model: ImageClassifier, example: torch.Tensor, path: Path) -> None:
    """ONNX with a variable batch size, checked by onnx's checker."""
    import onnx  # optional (the [onnx] extra): imported only when it is installed

    with warnings.catch_warnings():  # the legacy exporter: it needs only onnx, not onnxscript like the new default
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy TorchScript-based ONNX.*")
        model.to_onnx(
            str(path), example, dynamo=False, input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(str(path))  # raises if the file is not valid ONNX


def preprocessing(model: ImageClassifier, checkpoint: Path, files: dict[str, str | None]) -> dict:
    """How to turn an image file into the exported model's input, and its output into class names."""
    channels, height, width = model.preprocessing["input_shape"]
    return {
        "checkpoint": str(checkpoint),
        "files": files,
        "input_name": "images",
        "output_name": "logits",
        "input_shape": [channels, height, width],  # after a batch dimension of any size; float32
        "color": "gray" if channels == 1 else "RGB",
        "mean": model.preprocessing["mean"],
        "std": model.preprocessing["std"],
        "class_names": model.preprocessing["class_names"],
        "steps": [
            f"decode the image and convert it to {'gray (PIL mode L)' if channels == 1 else 'RGB'}",
            f"resize it to {width}x{height} (width x height), bilinear with antialiasing",
            "uint8 pixels / 255, as float32 in (channel, height, width) order",
            "per channel: (x - mean) / std; stack images into a (batch, C, H, W) input",
            "the logits' argmax (or softmax, for probabilities) indexes class_names",
        ],
    }
