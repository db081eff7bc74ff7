"""The LightningModule that trains any backbone + linear head as an image classifier."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from project.data.model_input import ModelInput
from project.errors import UserError
from project.models.accuracy import EpochAccuracy
from project.models.backbone_module import BackboneModule

STAGES = ("train", "val", "test")


class ImageClassifier(BackboneModule):
    """`backbone` (features) → `head` (nn.Linear), cross-entropy, accuracy per split, SGD/AdamW + schedule.

    Args:
        label_smoothing: of the training loss's targets.
        test_time_flip: predict with the mean logits of each image and its mirror image wherever the model is
            not training (validation, test, evaluate.py, predict.py, the exported files): about a point more on
            CIFAR-10 for twice the evaluation compute (docs/results.md). Only for data trained with flips
            (`--data.augment=true`); a digit's mirror image is no digit.

    The backbone, data, optimizer and schedule arguments are BackboneModule's.
    """

    def __init__(self, label_smoothing: float = 0.0, test_time_flip: bool = False, **kwargs: Any) -> None:
        if not 0 <= label_smoothing < 1:
            raise UserError(f"label_smoothing={label_smoothing} must be in [0, 1)")
        super().__init__(**kwargs)
        self.head = nn.Linear(self.backbone.out_features, self.hparams.num_classes)
        for stage in STAGES:  # one metric object per split: their states must not mix
            setattr(self, f"{stage}_accuracy", EpochAccuracy())

    def check_input(self, given: ModelInput) -> None:
        super().check_input(given)
        if given.unlabelled_images:
            raise UserError("--data.unlabelled_root's images have no labels: only SimCLR pretraining "
                            "(--model=SimCLRPretraining) trains on them")
        if given.unlabelled_ratio and self.hparams.get("semi_supervised", "none") == "none":
            raise UserError("--data.unlabelled_ratio serves unlabelled images, which only semi-supervised "
                            "fine-tuning reads: set --model.semi_supervised=fixmatch (scripts/finetune.py) or "
                            "--data.unlabelled_ratio=0")
        if self.hparams.test_time_flip and not given.augment:
            raise UserError("test_time_flip=true predicts from mirror images too, which a model trained without "
                            "flips has never seen: set --data.augment=true, or --model.test_time_flip=false")

    def forward(self, images: Tensor) -> Tensor:
        logits = self.head(self.backbone(self.as_input(images)))
        if self.hparams.test_time_flip and not self.training:
            mirrored = self.head(self.backbone(self.as_input(images.flip(-1))))
            logits = (logits + mirrored) / 2
        return logits

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        """Loss and logits of a batch; `{stage}/loss` logged, the accuracy's state updated (logged once an epoch).

        Nothing here reads a value back to the host on a training step the logger does not write: on the MNIST
        MLP, whose step takes under a millisecond, logging the loss and a torchmetrics accuracy on every step
        cost more than the step itself (measured with scripts/benchmark.py).
        """
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        getattr(self, f"{stage}_accuracy").update(logits.detach(), labels)
        if stage != "train":
            self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        elif (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # the steps Lightning's logger writes
            if not torch.isfinite(loss):  # before backward: the weights are still the ones last logged
                raise UserError(
                    f"the training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}):"
                    f" lower --model.lr or check the data; the last good checkpoint (last.ckpt) was left as it was"
                )
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss, logits

    def log_epoch_metrics(self, stage: str) -> None:
        """The epoch's accuracy over every batch (synchronized across processes by torchmetrics), then reset."""
        accuracy = getattr(self, f"{stage}_accuracy")
        if accuracy.update_count:  # no step updated it (e.g. a logistic probe, fit before training): nothing to log
            self.log(f"{stage}/acc", accuracy.compute(), prog_bar=True)
        accuracy.reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return {"logits": self._step(batch, "test")[1].detach()}  # for the test figures, without a second forward
