"""scripts/export.py: a checkpoint as TorchScript and ONNX (normalized float images → logits), plus its preprocessing.

The preprocessing JSON beside them says how to make the input: the colour mode, the size, mean and std,
and the class names that index the logits.
"""

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from project.errors import UserError
from project.inference.loading import Classifier, load_classifier
from project.output_files import output_folder, run_folder, unused_stem

SUFFIXES = (".torchscript.pt", ".onnx", ".preprocessing.json")


def main(argv: list[str] | None = None) -> None:
    """Export the checkpoint's model; a user error exits with status 2 and a one-line message."""
    parser = argparse.ArgumentParser(description="Export a checkpoint as TorchScript and ONNX, with its preprocessing.")
    parser.add_argument("--ckpt", required=True, help="a .ckpt file, a run folder or an experiment folder")
    parser.add_argument("--output", help="folder for the exported files (default: <run folder>/export)")
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.ckpt)
        folder = output_folder(args.output, run_folder(classifier.checkpoint_path) / "export")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for path in export(classifier, folder):
        print(f"written: {path}")


def export(classifier: Classifier, folder: Path) -> list[Path]:
    """Write the TorchScript file, the ONNX file (when onnx is installed) and the preprocessing JSON to `folder`."""
    stem = unused_stem(folder, classifier.checkpoint_path.stem, SUFFIXES)
    torchscript, onnx_file, json_file = (folder / f"{stem}{suffix}" for suffix in SUFFIXES)
    network = logits_network(classifier)
    example = torch.zeros(2, *classifier.input_shape)
    with warnings.catch_warnings():  # torch.jit is deprecated upstream, yet TorchScript is what this file is for
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        torch.jit.trace(network, example).save(str(torchscript))
    if importlib.util.find_spec("onnx") is None:
        print("onnx is not installed: no ONNX file (pip install 'lightning-transfer-lab[onnx]' to get one)")
        onnx_file = None
    else:
        export_onnx(network, example, onnx_file)
    files = {"torchscript": torchscript.name, "onnx": onnx_file.name if onnx_file else None}
    json_file.write_text(json.dumps(preprocessing(classifier, files), indent=2) + "\n")
    return [path for path in (torchscript, onnx_file, json_file) if path is not None]


def logits_network(classifier: Classifier) -> nn.Module:
    """The classifier's forward, head(backbone(images)), as a plain module in eval mode.

    Not the LightningModule itself: torch.jit.trace probes every attribute, and its `trainer` property
    raises outside a Trainer. The tests check that the outputs match the LightningModule's.
    """
    model = classifier.model
    return nn.Sequential(model.backbone, model.head).eval()


def export_onnx(network: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX with a variable batch size, checked by onnx's checker."""
    import onnx  # optional (the [onnx] extra): imported only when it is installed

    with warnings.catch_warnings():  # the legacy exporter: it needs only onnx, not onnxscript like the new default
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy TorchScript-based ONNX.*")
        torch.onnx.export(
            network, (example,), str(path), dynamo=False, input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(str(path))  # raises if the file is not valid ONNX


def preprocessing(classifier: Classifier, files: dict[str, str | None]) -> dict:
    """How to turn an image file into the exported model's input, and its output into class names."""
    channels, height, width = classifier.input_shape
    return {
        "checkpoint": str(classifier.checkpoint_path),
        "files": files,
        "input_name": "images",
        "output_name": "logits",
        "input_shape": [channels, height, width],  # after a batch dimension of any size; float32
        "color": "gray" if channels == 1 else "RGB",
        "mean": classifier.mean.tolist(),
        "std": classifier.std.tolist(),
        "class_names": classifier.class_names,
        "steps": [
            f"decode the image and convert it to {'gray (PIL mode L)' if channels == 1 else 'RGB'}",
            f"resize it to {width}x{height} (width x height), bilinear",
            "uint8 pixels / 255, as float32 in (channel, height, width) order",
            "per channel: (x - mean) / std; stack images into a (batch, C, H, W) input",
            "the logits' argmax (or softmax, for probabilities) indexes class_names",
        ],
    }
