"""What every model of this project shares: a backbone by name, its optimizer and lr plan, and checkpoints that
describe themselves (the class that wrote them and the input the weights expect)."""

import math
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from project.backbones import BackboneName, build_backbone
from project.data import ImageDataModule
from project.data.batch_transforms import normalize
from project.data.model_input import ModelInput
from project.errors import UserError, refuse_wrong
from project.models.lr_schedules import SCHEDULES


class BackboneModule(LightningModule):
    """A `backbone` (pooled features, `out_features` of them) trained with SGD or AdamW under a per-step schedule.

    The hyperparameters are plain values (the data's shape and classes are linked in by the scripts), so a
    checkpoint loads with `weights_only=True`; a fine-tuning run reads its `backbone.` weights.

    Args:
        backbone: `mlp`, `cnn`, a torchvision zoo architecture (resnet18, resnet50, mobilenet_v3_small,
            efficientnet_b0) or `timm:<name>`, any timm model (the [timm] extra), e.g. `timm:convnext_atto`.
        backbone_args: keyword arguments of the backbone class, e.g. `{hidden_sizes: [128, 64]}` for `mlp`; for timm,
            of `timm.create_model` (e.g. `{drop_path_rate: 0.1}`).
        input_shape, num_classes, class_names: the data's (C, H, W) and classes, linked in by the scripts.
        lr: peak learning rate (of the head, where a subclass gives the backbone its own).
        scheduler: per-step `cosine` decay, `onecycle` (warm-up then anneal), `warmup_cosine` (a linear warm-up
            over the first 10 %, then cosine), or `none`.
        channels_last, compile: GPU speed-ups (NHWC memory layout; torch.compile of the backbone). With
            `--trainer.precision=bf16-mixed` they are what makes a CNN fast on recent GPUs.
    """

    selection_metric = "val/acc"  # what the best checkpoint is chosen by
    plans_lr = False  # whether lr_scale/schedule_restarts change the lr (a fine-tuning plan does)

    def __init__(
        self,
        backbone: BackboneName = "cnn",
        backbone_args: dict[str, Any] | None = None,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        class_names: list[str] | None = None,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        scheduler: Literal["cosine", "onecycle", "warmup_cosine", "none"] = "cosine",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        refuse_wrong((f"lr={lr} must be > 0", lr > 0), (f"weight_decay={weight_decay} must be >= 0", weight_decay >= 0),
                     (f"momentum={momentum} must be in [0, 1)", 0 <= momentum < 1))
        if optimizer == "sgd" and nesterov and momentum == 0:
            raise UserError("nesterov=true needs momentum > 0: set --model.momentum=0.9 or --model.nesterov=false")
        self.backbone = build_backbone(backbone, input_shape, backbone_args)
        # What an input must be for this model, recorded from the data when training starts and kept in every
        # checkpoint (as timm's pretrained_cfg): normalization mean/std of uint8/255 images, shape, class names.
        self.preprocessing: dict[str, Any] | None = None
        self.data_input: ModelInput | None = None  # handed over by the run (use_input)

    def configure_model(self) -> None:
        """GPU speed-ups, applied once the model is on its device; state-dict keys stay the same."""
        if self.hparams.channels_last:  # NHWC: faster convolutions on tensor cores (bf16/fp16)
            self.to(memory_format=torch.channels_last)
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.backbone.compile()  # in place, unlike torch.compile(module): no "_orig_mod." key prefix
            self._compiled = True

    def as_input(self, images: Tensor) -> Tensor:
        """A normalized batch in the memory layout the model is set up for."""
        if self.hparams.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def use_input(self, given: ModelInput) -> None:
        """The data's input, handed over by the run before fit: its normalization, which this model's weights are
        only right under (recorded in every checkpoint), and the augmentation its own views follow. A setting the
        data cannot serve is refused here (`check_input`)."""
        self.check_input(given)
        self.data_input = given
        self.preprocessing = {**given.preprocessing(), "input_shape": list(self.hparams.input_shape)}

    def check_input(self, given: ModelInput) -> None:
        """Refuse data this model cannot train on (subclasses add their checks)."""

    def setup(self, stage: str) -> None:
        """A fit started outside this project's run (`trainer.fit(model, datamodule=ImageDataModule(...))` in
        Python) hands over its data's input here, as the run would have."""
        data = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and self.data_input is None and isinstance(data, ImageDataModule) and data.mean is not None:
            self.use_input(data.model_input())

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 (N, C, H, W) images of `input_shape` as the model takes them: scaled and normalized, on its device."""
        if self.preprocessing is None:
            raise UserError("this model was never trained on data, so its input normalization is unknown")
        mean = torch.tensor(self.preprocessing["mean"], device=self.device)
        std = torch.tensor(self.preprocessing["std"], device=self.device)
        return normalize(images.to(self.device), mean, std)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Named optimizer groups (the names show in TensorBoard's lr curves); subclasses split them further."""
        return [{"name": "model", "params": list(self.parameters())}]

    def lr_scale(self, group: int, epoch: int) -> float:
        """Multiplier of group `group`'s lr in `epoch` (0 freezes it); subclasses plan fine-tuning with it."""
        return 1.0

    def schedule_restarts(self) -> list[int]:
        """Epochs at which the lr schedule starts again from its peak (a phase of its own); none by default."""
        return []

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.parameter_groups()
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none" and not self.plans_lr:
            # A constant lr needs no scheduler: Lightning steps one after every batch, which on the MNIST MLP cost
            # about 5 % of its step (measured with scripts/benchmark.py).
            return optimizer
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        batches = self.trainer.num_training_batches  # known once estimated_stepping_batches has loaded the data
        accumulate = self.trainer.accumulate_grad_batches
        steps_per_epoch = total_steps if math.isinf(batches) else max(1, math.ceil(batches / accumulate))
        restarts = [epoch * steps_per_epoch for epoch in self.schedule_restarts()]
        phases = [0, *(step for step in restarts if 0 < step < total_steps), total_steps]
        factors = [
            partial(lr_factor, self, group, SCHEDULES[hp.scheduler], phases, steps_per_epoch)
            for group in range(len(groups))
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def trainable_parameter_count(self, epoch: int) -> int:
        """Parameters that train in `epoch`: counted by group and lr plan, not by `requires_grad` alone
        (strategies such as `lp_ft` freeze blocks with lr 0 and leave their gradients on). Every plan only ever
        unfreezes, so the count at a run's last epoch is everything it trained."""
        return sum(
            parameter.numel()
            for index, group in enumerate(self.parameter_groups())
            if self.lr_scale(index, epoch) > 0
            for parameter in group["params"]
            if parameter.requires_grad
        )

    def on_train_start(self) -> None:
        """Log `params/trainable` (read back by scripts/report.py): the parameters this run trains from its first
        epoch. Subclasses that add to on_train_start call this too."""
        for logger in self.loggers:
            logger.log_metrics({"params/trainable": self.trainable_parameter_count(self.current_epoch)},
                               step=self.global_step)

    def log_epoch_metrics(self, stage: str) -> None:
        """Log what `stage` (train, val, test) measured over the whole epoch; the subclasses say what that is."""

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Say what the file holds, and refuse to write non-finite weights: the file on disk stays the last good one.

        A diverging run can step to NaN weights while its loss was still finite; checked here, at each save,
        rather than after every optimizer step, so the check costs nothing between checkpoints.
        """
        checkpoint["model_class"] = type(self).__name__  # which class reads it back (scripts/evaluate.py, resume)
        checkpoint["preprocessing"] = self.preprocessing
        broken = [k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and not v.isfinite().all()]
        if broken:
            raise UserError(
                f"the weights became NaN or infinite by step {self.global_step} (epoch {self.current_epoch}, e.g. "
                f"{broken[0]}): lower --model.lr or check the data; the checkpoints on disk were left as they were"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.preprocessing = checkpoint.get("preprocessing")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """A group gated to lr 0 takes no step at all: no momentum, no weight decay, untouched weights."""
        for group in optimizer.param_groups:
            if group["lr"] == 0:
                for parameter in group["params"]:
                    parameter.grad = None


def lr_factor(
    model: BackboneModule, group: int, schedule: Callable[[float], float], phases: list[int], steps_per_epoch: int,
    step: int,
) -> float:
    """The lr factor of a group at optimizer step `step`: the schedule (over the phase the step is in, whose
    first steps are `phases[:-1]`, the run's last `phases[-1]`) times the model's plan for that epoch.

    The epoch is derived from the step, not read from the trainer, so the first step of an epoch
    already gets that epoch's plan, and a resumed run computes the same values.
    """
    start = max(first for first in phases[:-1] if first <= step)
    end = min((first for first in phases[1:] if first > start), default=phases[-1])
    return schedule((step - start) / max(1, end - start)) * model.lr_scale(group, step // steps_per_epoch)
