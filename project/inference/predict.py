"""scripts/predict.py: the top-k classes of image files, printed and optionally written as CSV.

A file that cannot be read as an image is reported and skipped; the run fails only if no image was read.
"""

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from project.errors import UserError
from project.inference.images import input_files, read_image
from project.inference.loading import Classifier, inference_device, load_classifier

BATCH_SIZE = 64  # images decoded and predicted at a time: bounds memory for folders of any size

Prediction = tuple[Path, list[tuple[str, float]]]  # an image and its top-k (class name, probability)


def main(argv: list[str] | None = None) -> None:
    """Predict, print one line per image, write the CSV if asked; a user error exits with status 2."""
    parser = argparse.ArgumentParser(description="Predict the classes of images with a trained checkpoint.")
    parser.add_argument("--ckpt", required=True, help="a .ckpt file, a run folder or an experiment folder")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders (recursive)")
    parser.add_argument("--top_k", type=int, default=3, help="how many classes per image (at most all of them)")
    parser.add_argument("--output", type=Path, help="also write the predictions to this CSV file")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: a GPU if any)")
    args = parser.parse_args(argv)
    try:
        if args.top_k < 1:
            raise UserError(f"--top_k {args.top_k} must be at least 1")
        if args.output is not None and args.output.is_dir():
            raise UserError(f"--output {str(args.output)!r} is a folder: give a CSV file name")
        files = input_files(args.inputs)
        classifier = load_classifier(args.ckpt, inference_device(args.device))
        top_k = min(args.top_k, len(classifier.class_names))
        predictions = []
        for path, top in predict(classifier, files, top_k):
            print(f"{path}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in top))
            predictions.append((path, top))
        if not predictions:
            raise UserError(f"none of the {len(files)} files could be read as an image: see the messages above")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if args.output is not None:
        write_csv(args.output, predictions, top_k)
        print(f"written: {args.output} ({len(predictions)} images)")


def predict(classifier: Classifier, files: list[Path], top_k: int) -> Iterator[Prediction]:
    """Each readable file with its `top_k` classes, most probable first; unreadable ones are reported on stderr."""
    for start in range(0, len(files), BATCH_SIZE):
        images, read = [], []
        for path in files[start : start + BATCH_SIZE]:
            try:
                images.append(read_image(path, classifier.input_shape))
                read.append(path)
            except UserError as error:  # one unreadable file is skipped, not the whole run
                print(f"skipped: {error}", file=sys.stderr)
        if not images:
            continue
        probabilities = torch.softmax(classifier.logits(torch.stack(images)), dim=1).cpu()
        values, indices = probabilities.topk(top_k, dim=1)
        for path, row_values, row_indices in zip(read, values.tolist(), indices.tolist(), strict=True):
            yield path, [(classifier.class_names[i], p) for i, p in zip(row_indices, row_values, strict=True)]


def write_csv(path: Path, predictions: list[Prediction], top_k: int) -> None:
    """One row per image: path, then class_1, prob_1, ..., class_k, prob_k."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["path", *(f"{column}_{rank}" for rank in range(1, top_k + 1) for column in ("class", "prob"))]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for image, top in predictions:
            writer.writerow([str(image), *(value for name, probability in top for value in (name, probability))])
