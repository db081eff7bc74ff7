"""The fine-tuning LightningModule: a pretrained backbone under a new head sized for the target task."""

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from project.checkpoints import find_checkpoint, load_backbone_weights, load_checkpoint
from project.errors import UserError
from project.models import BackboneName
from project.modules.classifier import ImageClassifier
from project.modules.finetuning_plan import FinetuningPlan, Strategy


class TransferClassifier(ImageClassifier):
    """An ImageClassifier whose backbone starts from a pretraining checkpoint, trained by a fine-tuning strategy.

    The architecture (backbone name and arguments) is read from the checkpoint, so the fine-tuning
    config need not repeat it; the head is always new, sized by the target data's `num_classes`.

    Args:
        pretrained: a .ckpt file, a run folder or an experiment folder (its newest best checkpoint);
            null trains the same model from scratch, the baseline a transfer must beat.
        strategy: `linear_probe` (frozen backbone, BatchNorm statistics included), `full` (everything
            trains), `gradual` (blocks unfreeze from the top at `unfreeze_at` epochs), `lp_ft` (linear
            probe for `lp_fraction` of the epochs, then everything at `ft_lr_ratio` × the lr, each phase under
            a schedule of its own; Kumar et al. 2022).
        backbone_lr_ratio: backbone lr = lr × this; `layer_decay` multiplies it once more per block down.
        reinit_blocks: start this many top backbone blocks from fresh weights instead of the pretrained ones
            (1 on the CNN: keep the conv trunk, re-initialize fc512 — the article's transfer model). The top
            block is the one most specific to the source classes. Fresh blocks belong to the new head: they
            train from the first epoch at the head's lr under every strategy (with pretrained weights only).
        pretrained_sha256: if set, the pretrained file must have this hash; recorded after every run.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        strategy: Strategy = "full",
        backbone_lr_ratio: float = 1.0,
        layer_decay: float = 1.0,
        unfreeze_at: list[int] | None = None,
        lp_fraction: float = 0.5,
        ft_lr_ratio: float = 0.1,
        reinit_blocks: int = 0,
        pretrained_sha256: str | None = None,
        backbone: BackboneName | None = None,
        backbone_args: dict[str, Any] | None = None,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        **kwargs: Any,
    ) -> None:
        checkpoint = None
        if pretrained is not None:
            pretrained = str(find_checkpoint(pretrained, "best"))
            pretrained_sha256 = checked_sha256(pretrained, pretrained_sha256)
            checkpoint = load_checkpoint(pretrained)
            backbone, backbone_args = pretrained_architecture(
                checkpoint, pretrained, backbone, backbone_args, input_shape
            )
        backbone = backbone or "cnn"
        super().__init__(backbone=backbone, backbone_args=backbone_args, input_shape=input_shape, **kwargs)
        # Record what was resolved, not what was asked for (LightningCLI saves the config as given), so the
        # checkpoint names its architecture and the exact pretrained file even when the config left them open.
        self.hparams.update(
            pretrained=pretrained, pretrained_sha256=pretrained_sha256, backbone=backbone, backbone_args=backbone_args
        )
        blocks = self.backbone.blocks()
        if not 0 <= reinit_blocks <= len(blocks):
            raise UserError(f"reinit_blocks={reinit_blocks} must be between 0 and the backbone's {len(blocks)} blocks")
        if checkpoint is not None:
            load_backbone_weights(self.backbone, checkpoint, pretrained)
            reinitialize(blocks[len(blocks) - reinit_blocks :])
        self.provenance = provenance(pretrained, pretrained_sha256, checkpoint)
        new_blocks = reinit_blocks if checkpoint is not None else 0
        self.plan = FinetuningPlan(
            strategy=strategy, num_blocks=len(blocks), backbone_lr_ratio=backbone_lr_ratio, layer_decay=layer_decay,
            unfreeze_at=tuple(unfreeze_at or (5,)), lp_fraction=lp_fraction, ft_lr_ratio=ft_lr_ratio,
            new_blocks=new_blocks,
        )
        check_plan(self.plan)
        if strategy == "linear_probe":  # the pretrained blocks never train: skip their gradients altogether
            self.backbone.requires_grad_(False)
            for block in blocks[self.plan.pretrained_blocks :]:
                block.requires_grad_(True)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The head, then one group per backbone block, all created up front (gated by lr, never added later)."""
        groups = [{"name": "head", "params": list(self.head.parameters())}]
        blocks = self.backbone.blocks()
        for index, block in enumerate(blocks):
            groups.append({"name": f"backbone.block{index}", "params": list(block.parameters())})
        in_blocks = {id(p) for group in groups for p in group["params"]}
        leftover = [p for p in self.backbone.parameters() if id(p) not in in_blocks]
        groups[1]["params"] += leftover  # parameters outside every block (if a backbone has any) go with the stem
        return groups

    def lr_scale(self, group: int, epoch: int) -> float:
        return self.plan.head_lr_scale(epoch) if group == 0 else self.plan.block_lr_scale(group - 1, epoch)

    def schedule_restarts(self) -> list[int]:
        return self.plan.schedule_restarts()

    def setup(self, stage: str) -> None:
        """The plan learns the run's length, which LP-FT's phases are fractions of."""
        if stage != "fit":
            return
        epochs = self.trainer.max_epochs
        if self.plan.strategy == "lp_ft" and (epochs is None or epochs < 1):
            raise UserError(f"strategy lp_ft splits max_epochs into phases: set --trainer.max_epochs (not {epochs})")
        self.plan = replace(self.plan, total_epochs=epochs)

    def train(self, mode: bool = True) -> "TransferClassifier":
        """Frozen blocks stay in eval mode whenever the model is put in train mode."""
        super().train(mode)
        if mode:
            self._freeze_batchnorm_of_frozen_blocks()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning 2.6 does not call train() when fit starts, and the frozen blocks change by epoch.
        self._freeze_batchnorm_of_frozen_blocks()

    def _freeze_batchnorm_of_frozen_blocks(self) -> None:
        """BatchNorm in train mode updates its running statistics even when its block is frozen (#15062)."""
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        for index, block in enumerate(self.backbone.blocks()):
            block.train(self.plan.block_trains(index, epoch))

    def on_fit_start(self) -> None:
        if self.provenance and isinstance(self.logger, TensorBoardLogger):
            text = json.dumps(self.provenance, indent=2, default=str)
            self.logger.experiment.add_text("provenance", "\n".join(f"    {line}" for line in text.splitlines()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["provenance"] = self.provenance


def reinitialize(blocks: list[nn.Module]) -> None:
    """Fresh weights (and BatchNorm statistics) for every layer in `blocks`, drawn as at construction."""
    for block in blocks:
        for module in block.modules():
            if hasattr(module, "reset_parameters"):  # convs, linears, norms: each knows its own init
                module.reset_parameters()


def check_plan(plan: FinetuningPlan) -> None:
    ratios_ok = plan.backbone_lr_ratio >= 0 and 0 < plan.layer_decay <= 1 and plan.ft_lr_ratio > 0
    if not ratios_ok or not 0 < plan.lp_fraction < 1:
        raise UserError(
            f"backbone_lr_ratio={plan.backbone_lr_ratio} must be >= 0, layer_decay={plan.layer_decay} in (0, 1], "
            f"ft_lr_ratio={plan.ft_lr_ratio} > 0 and lp_fraction={plan.lp_fraction} in (0, 1)"
        )
    if any(b < a for a, b in zip(plan.unfreeze_at, plan.unfreeze_at[1:], strict=False)) or min(plan.unfreeze_at) < 0:
        raise UserError(f"unfreeze_at={list(plan.unfreeze_at)} must be epochs >= 0 in increasing order")


def checked_sha256(path: str, expected: str | None) -> str:
    """The file's sha256; if `expected` is given the file must match it (the run being reproduced used it)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else ""
    if expected is not None and digest != expected:
        raise UserError(
            f"{path!r} has sha256 {digest[:12]}… but pretrained_sha256 asks for {expected[:12]}…: the pretrained "
            f"checkpoint changed; point --model.pretrained at the original file or drop --model.pretrained_sha256"
        )
    return digest


def provenance(path: str | None, sha256: str | None, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """Where the backbone came from: the file, its hash, and the pretraining run's config and hyperparameters."""
    if path is None or checkpoint is None:
        return {}
    config_file = Path(path).parent.parent / "config.yaml"  # <run>/checkpoints/x.ckpt -> <run>/config.yaml
    return {
        "pretrained_checkpoint": str(path),
        "sha256": sha256,
        "pretraining_hparams": dict(checkpoint.get("hyper_parameters", {})),
        "pretraining_config": config_file.read_text() if config_file.is_file() else None,
    }


def pretrained_architecture(
    checkpoint: dict[str, Any],
    path: str | Path,
    backbone: str | None,
    backbone_args: dict[str, Any] | None,
    input_shape: tuple[int, int, int],
) -> tuple[str, dict[str, Any] | None]:
    """The backbone name and arguments a checkpoint was trained with, checked against the config and the data."""
    hparams = checkpoint.get("hyper_parameters", {})
    if "backbone" not in hparams or "input_shape" not in hparams:
        raise UserError(f"{str(path)!r} is not a checkpoint of this project's models (no backbone hyperparameters)")
    saved, saved_args = hparams["backbone"], hparams.get("backbone_args")
    if (backbone is not None and backbone != saved) or (backbone_args is not None and backbone_args != saved_args):
        raise UserError(
            f"{str(path)!r} holds a {saved!r} backbone with args {saved_args} but the config asks for {backbone!r} "
            f"with {backbone_args}: drop --model.backbone (it is read from the checkpoint) or use a matching checkpoint"
        )
    if tuple(hparams["input_shape"]) != tuple(input_shape):
        channels, size, _ = hparams["input_shape"]
        raise UserError(
            f"{str(path)!r} was pretrained on {tuple(hparams['input_shape'])} (C, H, W) images but the data gives "
            f"{tuple(input_shape)}: set --data.channels={channels} --data.image_size={size}"
        )
    return saved, saved_args
