"""Figures of a classifier's test results: a confusion matrix and a grid of sample predictions.

They are `matplotlib.figure.Figure`s made directly, not through pyplot: no GUI backend is needed and no
global list of open figures grows; TensorBoard and image files render them with Agg.
"""

from matplotlib.figure import Figure
from torch import Tensor

MAX_SAMPLES = 16  # a 4×4 grid: enough to spot a pattern, small enough to read each title


def confusion_matrix_figure(matrix: Tensor, class_names: list[str]) -> Figure:
    """Counts of (true class row, predicted class column), each cell labelled with its count up to 20 classes."""
    size = len(class_names)
    side = min(1.5 + 0.5 * size, 16)  # inches: 100 classes (CIFAR-100) would otherwise make a 50-inch image
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(matrix.numpy(), cmap="Blues")
    axes.set_xticks(range(size), class_names, rotation=90 if size > 10 else 0)
    axes.set_yticks(range(size), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if size > 20:  # the counts would no longer fit in the cells
        return figure
    threshold = matrix.max().item() / 2  # white text on dark cells
    for row in range(size):
        for column in range(size):
            count = int(matrix[row, column])
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > threshold else "black")
    return figure


def predictions_figure(images: Tensor, labels: Tensor, predictions: Tensor, class_names: list[str]) -> Figure:
    """Up to 16 images in a 4×4 grid, each titled "true / predicted", min-max scaled for display."""
    figure = Figure(figsize=(8, 8.5), layout="constrained")
    figure.suptitle("true / predicted (red: wrong)")
    for index, (image, label, prediction) in enumerate(zip(images[:MAX_SAMPLES], labels, predictions, strict=False)):
        axes = figure.add_subplot(4, 4, index + 1)
        low, high = image.min(), image.max()
        scaled = ((image - low) / (high - low).clamp_min(1e-8)).permute(1, 2, 0).float().numpy()
        axes.imshow(scaled[..., 0] if scaled.shape[2] == 1 else scaled, cmap="gray", vmin=0, vmax=1)
        true_name, predicted_name = class_names[int(label)], class_names[int(prediction)]
        axes.set_title(f"{true_name} / {predicted_name}", fontsize=9, color="black" if label == prediction else "red")
        axes.axis("off")
    return figure
