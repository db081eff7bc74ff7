"""At test time, show in TensorBoard what the test accuracy hides: a confusion matrix, sample predictions,
and the final test metrics next to the hyperparameters (the HPARAMS tab)."""

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from project.figures import MAX_SAMPLES, confusion_matrix_figure, predictions_figure
from project.lightning_modules.classifier import ImageClassifier


class CollectTestPredictions(Callback):
    """Accumulates a test run's confusion matrix (torchmetrics) and its first 16 images with their predictions.

    Collects only under a TensorBoard logger unless `always` (scripts/evaluate.py): without one, no extra work.
    """

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.confusion: MulticlassConfusionMatrix | None = None
        self.samples: list[tuple[Tensor, Tensor, Tensor]] = []

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples = []
        if not isinstance(pl_module, ImageClassifier):  # no classes predicted (SimCLR): nothing to show
            self.confusion = None
        elif self.always or isinstance(trainer.logger, TensorBoardLogger):
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
    """At the end of a test run: the confusion matrix, sample predictions and HPARAMS metrics in TensorBoard."""

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
