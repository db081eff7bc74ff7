"""The LightningModule that trains any backbone + linear head as an image classifier."""

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from project.errors import UserError
from project.models import BackboneName, build_backbone

STAGES = ("train", "val", "test")


class ImageClassifier(LightningModule):
    """`backbone` (features) → `head` (nn.Linear), cross-entropy, accuracy per split, SGD/AdamW + schedule.

    `num_classes`, `input_shape` and `class_names` come from the data (the scripts link them), so
    every hyperparameter is a plain value and a checkpoint loads with `weights_only=True`.

    Args:
        backbone_args: keyword arguments of the backbone class, e.g. `{hidden_sizes: [128, 64]}` for `mlp`.
        lr: peak learning rate (of the head, where a subclass gives the backbone its own).
        scheduler: per-step `cosine` decay, `onecycle` (warm-up then anneal), or `none`.
    """

    def __init__(
        self,
        backbone: BackboneName = "cnn",
        backbone_args: dict[str, Any] | None = None,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        class_names: list[str] | None = None,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if lr <= 0 or weight_decay < 0 or not 0 <= momentum < 1 or not 0 <= label_smoothing < 1:
            raise UserError(
                f"lr={lr} must be > 0, weight_decay={weight_decay} >= 0, momentum={momentum} and "
                f"label_smoothing={label_smoothing} in [0, 1)"
            )
        if optimizer == "sgd" and nesterov and momentum == 0:
            raise UserError("nesterov=true needs momentum > 0: set --model.momentum=0.9 or --model.nesterov=false")
        self.backbone = build_backbone(backbone, input_shape, backbone_args)
        self.head = nn.Linear(self.backbone.out_features, num_classes)
        for stage in STAGES:  # one metric object per split: their states must not mix
            setattr(self, f"{stage}_accuracy", MulticlassAccuracy(num_classes, average="micro"))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        accuracy = getattr(self, f"{stage}_accuracy")
        accuracy(logits, labels)
        training = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=training, on_epoch=not training, prog_bar=True, sync_dist=not training)
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Named optimizer groups (the names show in TensorBoard's lr curves); subclasses split them further."""
        return [{"name": "model", "params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.parameter_groups()
        for group in groups:
            group.setdefault("lr", hp.lr)
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        else:
            peak = [group["lr"] for group in groups]
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
