"""scripts/predict.py: the top-k classes of image files, printed and optionally written as CSV.

A file that cannot be read as an image is reported and skipped; the run fails only if no image was read.
"""

import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from project.checkpoints.output_files import write_new_files
from project.errors import UserError, exits_on_user_error
from project.evaluation.images import input_files, read_image
from project.evaluation.loading import add_model_arguments, inference_device, load_trained_model
from project.models import ImageClassifier
from project.shown_text import shown, spreadsheet_cell

BATCH_SIZE = 64  # images decoded and predicted at a time: bounds memory for folders of any size

Prediction = tuple[Path, list[tuple[str, float]]]  # an image and its top-k (class name, probability)


def main(args: list[str] | None = None) -> None:
    """Predict, print one line per image, write the CSV if asked; a user error exits with status 2."""
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("inputs", nargs="+", type=str, help="image files, or folders (recursive)")
    parser.add_argument("--top_k", type=int, default=3, help="how many classes per image (at most all of them)")
    parser.add_argument("--output_csv", type=str | None, default=None,
                        help="also write the predictions to this CSV file (a new file: an existing one is kept)")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        if config.top_k < 1:
            raise UserError(f"--top_k {config.top_k} must be at least 1")
        output = Path(config.output_csv) if config.output_csv is not None else None
        if output is not None:
            check_new_file(output)  # before any prediction: a run must not fail after printing them all
        files = input_files(config.inputs)
        model, _ = load_trained_model(config.ckpt_path, inference_device(config.device))
        top_k = min(config.top_k, len(model.preprocessing["class_names"]))
        predictions = []
        for path, top in predict(model, files, top_k):
            print(f"{shown(str(path))}: " + ", ".join(f"{shown(name)} {probability:.3f}" for name, probability in top))
            predictions.append((path, top))
        if not predictions:
            raise UserError(f"none of the {len(files)} files could be read as an image: see the messages above")
    if output is not None:
        written = write_csv(output, predictions, top_k)
        if written != output:
            print(f"note: {output} was created by another process while this one predicted; kept, and these "
                  f"predictions written beside it")
        print(f"written: {written} ({len(predictions)} images)")


def check_new_file(path: Path) -> None:
    """`path` can be created as a new file: it does not exist, and its folder is (or can be made) a folder."""
    if str(path) == "-":
        raise UserError("--output_csv - : give a file name (the predictions are printed one line per image anyway; "
                        "the CSV goes to a file)")
    if path.is_dir():
        raise UserError(f"--output_csv {str(path)!r} is a folder: give a CSV file name")
    if path.exists():
        raise UserError(f"--output_csv {str(path)!r} exists: give a new file name (earlier predictions are kept)")
    existing = next(parent for parent in path.parents if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"--output_csv {str(path)!r} cannot be written: {str(existing)!r} is not a writable folder")


@torch.inference_mode()
def predict(model: ImageClassifier, files: list[Path], top_k: int) -> Iterator[Prediction]:
    """Each readable file with its `top_k` classes, most probable first; unreadable ones are reported on stderr."""
    class_names = model.preprocessing["class_names"]
    input_shape = tuple(model.preprocessing["input_shape"])
    for start in range(0, len(files), BATCH_SIZE):
        images, read = [], []
        for path in files[start : start + BATCH_SIZE]:
            try:
                images.append(read_image(path, input_shape))
                read.append(path)
            except UserError as error:  # one unreadable file is skipped, not the whole run
                print(f"skipped: {error}", file=sys.stderr)
        if not images:
            continue
        probabilities = torch.softmax(model(model.preprocess(torch.stack(images))), dim=1).cpu()
        values, indices = probabilities.topk(top_k, dim=1)
        for path, row_values, row_indices in zip(read, values.tolist(), indices.tolist(), strict=True):
            yield path, [(class_names[i], p) for i, p in zip(row_indices, row_values, strict=True)]


def write_csv(path: Path, predictions: list[Prediction], top_k: int) -> Path:
    """One row per image: path, then class_1, prob_1, ..., class_k, prob_k; complete or absent, never over a file
    another process made meanwhile (then beside it, as `<name>_2.csv`). Returns the file written."""
    header = ["path", *(f"{column}_{rank}" for rank in range(1, top_k + 1) for column in ("class", "prob"))]

    def write(file_path: Path) -> None:
        with file_path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            for image, top in predictions:
                cells = (value for name, probability in top for value in (spreadsheet_cell(name), probability))
                writer.writerow([spreadsheet_cell(str(image)), *cells])

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the folder of --output_csv {str(path)!r} ({error.strerror})") from error
    (written,) = write_new_files(path.parent, path.stem, [path.suffix], lambda stem: [write])
    return written
