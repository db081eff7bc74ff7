"""At test time, show in TensorBoard what the test accuracy hides: a confusion matrix, sample predictions,
and the final test metrics next to the hyperparameters (the HPARAMS tab).

The figures are `matplotlib.figure.Figure`s made directly, not through pyplot: no GUI backend is
needed and no global list of open figures grows; TensorBoard renders them with Agg.
"""

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

MAX_SAMPLES = 16  # a 4×4 grid: enough to spot a pattern, small enough to read each title


class LogTestFigures(Callback):
    """Accumulates the test predictions and logs the figures and HPARAMS metrics when a test run ends.

    Does nothing unless the logger is a TensorBoardLogger (no logger: no extra forward passes either).
    """

    def __init__(self) -> None:
        self.confusion: MulticlassConfusionMatrix | None = None
        self.samples: list[tuple[Tensor, Tensor, Tensor]] = []

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples = []
        if isinstance(trainer.logger, TensorBoardLogger):
            self.confusion = MulticlassConfusionMatrix(pl_module.hparams.num_classes).to(pl_module.device)
        else:
            self.confusion = None

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: tuple[Tensor, Tensor],
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if self.confusion is None:
            return
        images, labels = batch  # already on the device and normalized
        logits = outputs["logits"] if isinstance(outputs, dict) and "logits" in outputs else pl_module(images)
        predictions = logits.argmax(dim=1)
        self.confusion.update(predictions, labels)
        kept = sum(len(sample[0]) for sample in self.samples)
        if kept < MAX_SAMPLES:
            take = MAX_SAMPLES - kept
            self.samples.append((images[:take].cpu(), labels[:take].cpu(), predictions[:take].cpu()))

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = trainer.logger
        if self.confusion is None or not isinstance(logger, TensorBoardLogger):
            return
        matrix = self.confusion.compute().cpu()  # under DDP a collective: every rank computes, rank 0 draws
        names = pl_module.hparams.get("class_names") or [str(i) for i in range(len(matrix))]
        step = trainer.global_step
        if trainer.is_global_zero:
            logger.experiment.add_figure("test/confusion_matrix", confusion_matrix_figure(matrix, names), step)
        if trainer.is_global_zero and self.samples:
            images, labels, predictions = (torch.cat(parts) for parts in zip(*self.samples, strict=True))
            figure = predictions_figure(images, labels, predictions, names)
            logger.experiment.add_figure("test/predictions", figure, step)
        metrics = {name: float(trainer.callback_metrics[name]) for name in ("test/acc", "test/loss")
                   if name in trainer.callback_metrics}
        if metrics:
            # At the step the test metrics were logged, so the copy log_hyperparams writes lands on the same point.
            logger.log_hyperparams(pl_module.hparams, metrics, step=step)


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
