"""scripts/evaluate.py: a checkpoint's test loss, accuracy, per-class accuracy and confusion matrix, saved to files.

The data defaults to what the checkpoint was trained on (its test split); `--data.*` changes any setting of it.
"""

import inspect
import json
import sys

import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from torch import Tensor
from torch.utils.data import DataLoader

from project.data import ImageDataModule
from project.errors import UserError
from project.figures import confusion_matrix_figure
from project.inference.loading import Classifier, inference_device, load_classifier
from project.output_files import output_folder, run_folder, unused_stem

SUFFIXES = (".json", "_confusion.png")


def main(args: list[str] | None = None) -> None:
    """Evaluate, print the numbers, write `<stem>.json` and `<stem>_confusion.png`; a user error exits with 2."""
    args = list(sys.argv[1:] if args is None else args)
    parser = build_parser()
    try:
        # Parsed twice: first for --ckpt, then with the checkpoint's data settings as defaults, so that
        # --data.* changes only the settings it names.
        config = parser.parse_args(args)
        classifier = load_classifier(config.ckpt, inference_device(config.device))
        known = inspect.signature(ImageDataModule).parameters
        parser.set_defaults({f"data.{key}": value for key, value in classifier.data_settings.items() if key in known})
        config = parser.parse_args(args)
        data = evaluation_data(classifier, config.data.as_dict())
        loss, matrix = evaluate(classifier, data.test_dataloader())
        folder = output_folder(config.output, run_folder(classifier.checkpoint_path) / "evaluation")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    stem = unused_stem(folder, f"{classifier.checkpoint_path.stem}_{data.hparams.dataset}_test", SUFFIXES)
    results = summary(classifier, data, loss, matrix)
    (folder / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    confusion_matrix_figure(matrix, classifier.class_names).savefig(folder / f"{stem}_confusion.png")
    print(report(results))
    print(f"written:    {folder / (stem + SUFFIXES[0])}, {folder / (stem + SUFFIXES[1])}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Evaluate a checkpoint on a test split: loss, accuracy, confusion matrix. The --data.* settings "
        "default to those the checkpoint was trained with (not the defaults shown below); give only what changes."
    )
    parser.add_argument(
        "--ckpt", type=str, required=True, help="a .ckpt file, a run folder or an experiment folder (its best one)"
    )
    parser.add_argument(
        "--output", type=str | None, default=None, help="folder for the results (default: <run folder>/evaluation)"
    )
    parser.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:N (default: a GPU if any)")
    parser.add_class_arguments(ImageDataModule, "data")
    return parser


def evaluation_data(classifier: Classifier, settings: dict) -> ImageDataModule:
    """The DataModule of `settings`, its images shaped for the model, set up; its classes must match the model's."""
    channels, height, width = classifier.input_shape
    if settings["channels"] is None:  # other data than the model's: convert it to what the model takes
        settings["channels"] = channels
    if settings["image_size"] is None and height == width:
        settings["image_size"] = height
    data = ImageDataModule(**settings)
    data.prepare_data()
    data.setup("test")
    if data.input_shape != classifier.input_shape:
        raise UserError(
            f"the data gives {data.input_shape} (C, H, W) images but the model takes {classifier.input_shape}: "
            f"set --data.channels={channels} --data.image_size={height}"
        )
    if data.num_classes != len(classifier.class_names):
        raise UserError(
            f"the data has {data.num_classes} classes {data.class_names[:10]} but the model predicts "
            f"{len(classifier.class_names)} {classifier.class_names[:10]}: select them with --data.classes"
        )
    if data.class_names != classifier.class_names:
        print(
            f"note: the data's classes {data.class_names[:10]} are not named like the model's "
            f"{classifier.class_names[:10]}; they are matched by position",
            file=sys.stderr,
        )
    if len(data.test_set) == 0:
        raise UserError("the test split is empty: set --data.test_fraction or add images to the test folder")
    return data


@torch.inference_mode()
def evaluate(classifier: Classifier, loader: DataLoader) -> tuple[float, Tensor]:
    """Mean cross-entropy and the confusion matrix (rows: true class, columns: predicted) over every batch.

    Normalized with the checkpoint's statistics, not the data's: they are part of what the model learned.
    """
    size = len(classifier.class_names)
    loss_sum = 0.0
    matrix = torch.zeros(size, size, dtype=torch.int64)
    for images, labels in loader:
        logits = classifier.logits(images)
        labels = labels.to(logits.device)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        pairs = labels * size + logits.argmax(dim=1)
        matrix += torch.bincount(pairs, minlength=size * size).view(size, size).cpu()
    return loss_sum / int(matrix.sum()), matrix


def summary(classifier: Classifier, data: ImageDataModule, loss: float, matrix: Tensor) -> dict:
    """Everything the evaluation found, as plain values for the JSON file."""
    return {
        "checkpoint": str(classifier.checkpoint_path),
        "data": {key: value for key, value in data.hparams.items() if not key.startswith("_")},
        "split": "test",
        "samples": int(matrix.sum()),
        "loss": loss,
        "accuracy": int(matrix.diag().sum()) / int(matrix.sum()),
        "per_class": [
            {"class": name, "samples": int(matrix[index].sum()), "accuracy": class_accuracy(matrix, index)}
            for index, name in enumerate(classifier.class_names)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def class_accuracy(matrix: Tensor, index: int) -> float | None:
    """The share of class `index`'s images predicted as it (its recall); None if it has no test images."""
    samples = int(matrix[index].sum())
    return int(matrix[index, index]) / samples if samples else None


def report(results: dict) -> str:
    """The numbers as printed: totals, then one line per class."""
    width = max(len("class"), *(len(row["class"]) for row in results["per_class"]))
    lines = [
        f"checkpoint: {results['checkpoint']}",
        f"data:       {results['data']['dataset']}, test split, {results['samples']} images",
        f"test loss:  {results['loss']:.4f}",
        f"accuracy:   {results['accuracy']:.4f}",
        "",
        f"{'class':<{width}}  accuracy  images",
    ]
    for row in results["per_class"]:
        accuracy = "–" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        lines.append(f"{row['class']:<{width}}  {accuracy:>8}  {row['samples']:>6}")
    return "\n".join(lines)
