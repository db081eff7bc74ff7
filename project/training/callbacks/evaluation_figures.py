"""At test time, show what the test accuracy hides: a confusion matrix and sample predictions, in each logger
that takes figures (TensorBoard, W&B, MLflow) and as PNG files in the run folder for those that do not (CSV);
in TensorBoard, the final test metrics next to the hyperparameters too (the HPARAMS tab)."""

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from project.figures import MAX_SAMPLES, confusion_matrix_figure, predictions_figure


class CollectTestPredictions(Callback):
    """Accumulates a test run's confusion matrix (torchmetrics) and its first 16 images with their predictions.

    Collects only when the run has a logger, or `always` (scripts/evaluate.py): without one, no extra work.
    """

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.confusion: MulticlassConfusionMatrix | None = None
        self.samples: list[tuple[Tensor, Tensor, Tensor]] = []

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples = []
        # A classifier has a `head` (the project's backbone + head contract); SimCLR has none: no classes to show.
        # Asked of the module rather than imported from lightning_modules, which stands above the callbacks.
        if not isinstance(getattr(pl_module, "head", None), torch.nn.Linear):
            self.confusion = None
        elif self.always or trainer.loggers:
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


class LogEvaluationFigures(CollectTestPredictions):
    """At the end of a test run: the confusion matrix and sample predictions in every logger (see the module's
    docstring), and HPARAMS metrics in TensorBoard."""

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.confusion is None or not trainer.loggers:
            return
        matrix = self.confusion.compute().cpu()  # under DDP a collective: every rank computes, rank 0 draws
        run_dir = Path(trainer.log_dir)  # a collective under DDP too
        if not trainer.is_global_zero:
            return
        names = pl_module.hparams.get("class_names") or [str(i) for i in range(len(matrix))]
        step = trainer.global_step
        figures = {"test/confusion_matrix": confusion_matrix_figure(matrix, names)}
        if self.samples:
            images, labels, predictions = (torch.cat(parts) for parts in zip(*self.samples, strict=True))
            figures["test/predictions"] = predictions_figure(images, labels, predictions, names)
        for tag, figure in figures.items():
            publish_figure(trainer.loggers, run_dir, tag, figure, step)
        metrics = {name: float(trainer.callback_metrics[name]) for name in ("test/acc", "test/loss")
                   if name in trainer.callback_metrics}
        for logger in trainer.loggers:
            if metrics and isinstance(logger, TensorBoardLogger):
                # At the step the test metrics were logged, so the copy log_hyperparams writes lands on the same point.
                logger.log_hyperparams(pl_module.hparams, metrics, step=step)


def publish_figure(loggers: list[Logger], run_dir: Path, tag: str, figure: Figure, step: int) -> None:
    """The figure in each logger that takes one; a PNG in the run folder's figures/ if any logger does not."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, step, close=False)  # the others draw it too
        elif isinstance(logger, WandbLogger):
            logger.log_image(tag, [rendered(figure)], step=step)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_figure(logger.run_id, figure, f"{tag}.png")
    if not all(isinstance(logger, TensorBoardLogger | WandbLogger | MLFlowLogger) for logger in loggers):
        (run_dir / "figures").mkdir(exist_ok=True)
        figure.savefig(run_dir / "figures" / f"{tag.replace('/', '_')}.png")


def rendered(figure: Figure) -> np.ndarray:
    """The figure's pixels (RGB), as W&B's log_image takes them."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
