"""scripts/evaluate.py: a checkpoint's test loss, accuracy, per-class accuracy and confusion matrix, saved to files.

Lightning's own test loop on the model read back from its checkpoint, with its torchmetrics, so the numbers are
those the training run's final test reports. The data defaults to what the checkpoint was trained on (its test
split); `--data.*` changes any setting of it, and the model's own normalization is used whatever the data.
"""

import json
import sys
import warnings
from pathlib import Path

import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer

from project.checkpoints.output_files import output_folder, run_folder, write_new_files
from project.data import ImageDataModule
from project.errors import UserError, exits_on_user_error
from project.evaluation.data_arguments import parse_with_data_defaults
from project.evaluation.loading import add_model_arguments, inference_device, load_trained_run
from project.figures import confusion_matrix_figure
from project.models import ImageClassifier
from project.quiet_lightning import quiet_lightning_adverts
from project.shown_text import shown
from project.training.callbacks.evaluation_figures import CollectTestPredictions

SUFFIXES = ("_confusion.png", ".json")  # in writing order


def main(args: list[str] | None = None) -> None:
    """Evaluate, print the numbers, write `<stem>.json` and `<stem>_confusion.png`; a user error exits with 2."""
    args = list(sys.argv[1:] if args is None else args)
    parser = build_parser()
    with exits_on_user_error():
        # Parsed twice: first for --ckpt_path, then with the checkpoint's data settings as defaults, so that
        # --data.* changes only the settings it names.
        config = parser.parse_args(args)
        device = inference_device(config.device)
        model, path, checkpoint = load_trained_run(config.ckpt_path)  # the file read once
        trained_on = checkpoint.get("datamodule_hyper_parameters", {})
        config = parse_with_data_defaults(parser, args, trained_on)
        for key in ("mean", "std"):  # the model's input is what it was trained under: not a setting here
            if config.data[key] != trained_on.get(key) and config.data[key] != model.preprocessing[key]:
                raise UserError(f"--data.{key}: evaluation normalizes as the model was trained (its checkpoint's "
                                f"mean {model.preprocessing['mean']} std {model.preprocessing['std']}); leave it out")
        data = evaluation_data(model, config.data.as_dict(), trained_on)
        folder = output_folder(config.output_dir, run_folder(path) / "evaluation")
        results = evaluate(model, data, device)
    results = {"checkpoint": str(path), "data": dict(data.hparams), **results}
    figure = confusion_matrix_figure(torch.tensor(results["confusion_matrix"]), model.preprocessing["class_names"])
    numbers = json.dumps(results, indent=2) + "\n"
    # The figure first, the numbers last: a JSON on disk means its pair is complete too.
    written = write_new_files(folder, f"{path.stem}_{data.hparams.dataset}_test", SUFFIXES, lambda stem: [
        figure.savefig, lambda file: file.write_text(numbers)])
    print(report(results))
    print(f"written:    {written[1]}, {written[0]}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    add_model_arguments(parser, output_folder="evaluation")
    parser.add_class_arguments(ImageDataModule, "data")
    return parser


def evaluation_data(model: ImageClassifier, settings: dict, trained_on: dict | None = None) -> ImageDataModule:
    """The DataModule of `settings`, its images shaped for the model, set up; its classes must match the model's:
    by name on the data the model was trained on (`trained_on`: its data settings), by position on other data."""
    channels, height, width = model.preprocessing["input_shape"]
    if settings["channels"] is None:  # other data than the model's: convert it to what the model takes
        settings["channels"] = channels
    if settings["image_size"] is None and height == width:
        settings["image_size"] = height
    data = ImageDataModule(**settings)
    data.normalize_like(model.preprocessing)  # what the weights were trained under, whatever these images are
    data.prepare_data()
    data.setup("test")
    class_names = model.preprocessing["class_names"]
    if list(data.input_shape) != [channels, height, width]:
        raise UserError(
            f"the data gives {data.input_shape} (C, H, W) images but the model takes {(channels, height, width)}: "
            f"set --data.channels={channels} --data.image_size={height}"
        )
    if data.num_classes != len(class_names):
        raise UserError(
            f"the data has {data.num_classes} classes {data.class_names[:10]} but the model predicts "
            f"{len(class_names)} {class_names[:10]}: select them with --data.classes"
        )
    same_data = bool(trained_on) and trained_on.get("dataset") == data.hparams.dataset and (
        Path(str(trained_on.get("root"))).resolve() == Path(data.hparams.root).resolve())
    if data.class_names != class_names and same_data:
        raise UserError(
            f"the model predicts {class_names[:10]} but these are {data.class_names[:10]} of the data it was trained "
            f"on: its accuracy on other classes means nothing; select its own with --data.classes={class_names[:10]}"
        )
    if data.class_names != class_names:
        print(
            f"note: the data's classes {data.class_names[:10]} are not named like the model's {class_names[:10]}; "
            f"they are matched by position",
            file=sys.stderr,
        )
    if len(data.test_set) == 0:
        raise UserError("the test split is empty: set --data.test_fraction or add images to the test folder")
    return data


def evaluate(model: ImageClassifier, data: ImageDataModule, device: torch.device) -> dict:
    """Lightning's test loop: loss and accuracy from the model's own metrics, the confusion matrix beside them."""
    quiet_lightning_adverts()
    collector = CollectTestPredictions(always=True)
    placement = {"accelerator": "gpu", "devices": [device.index or 0]} if device.type == "cuda" else {
        "accelerator": "cpu", "devices": 1
    }
    trainer = Trainer(
        **placement, logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[collector]
    )
    with warnings.catch_warnings():  # raised inside Lightning's own code on recent torch; nothing to act on
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
        metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    matrix = collector.confusion.compute().cpu()
    class_names = model.preprocessing["class_names"]
    return {
        "split": "test",
        "samples": int(matrix.sum()),
        "loss": metrics["test/loss"],
        "accuracy": metrics["test/acc"],
        "per_class": [
            {"class": name, "samples": int(matrix[index].sum()), "accuracy": class_accuracy(matrix, index)}
            for index, name in enumerate(class_names)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def class_accuracy(matrix: torch.Tensor, index: int) -> float | None:
    """The share of class `index`'s images predicted as it (its recall); None if it has no test images."""
    samples = int(matrix[index].sum())
    return int(matrix[index, index]) / samples if samples else None


def report(results: dict) -> str:
    """The numbers as printed: totals, then one line per class."""
    width = max(len("class"), *(len(shown(row["class"])) for row in results["per_class"]))
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
        lines.append(f"{shown(row['class']):<{width}}  {accuracy:>8}  {row['samples']:>6}")
    return "\n".join(lines)
