"""The fine-tuning LightningModule: a pretrained backbone under a new head sized for the target task."""

from pathlib import Path
from typing import Any, Literal

from project.checkpoints import find_checkpoint, load_backbone_weights, load_checkpoint
from project.errors import UserError
from project.models import BackboneName
from project.modules.classifier import ImageClassifier

Strategy = Literal["linear_probe", "full"]


class TransferClassifier(ImageClassifier):
    """An ImageClassifier whose backbone starts from a pretraining checkpoint of this project.

    The architecture (backbone name and arguments) is read from the checkpoint, so the fine-tuning
    config need not repeat it; the head is always new, sized by the target data's `num_classes`.

    Args:
        pretrained: a .ckpt file, a run folder or an experiment folder (its newest best checkpoint);
            null trains the same model from scratch, the baseline a transfer must beat.
        strategy: `linear_probe` freezes the backbone (BatchNorm statistics included) and trains the head;
            `full` trains everything.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        strategy: Strategy = "full",
        backbone: BackboneName | None = None,
        backbone_args: dict[str, Any] | None = None,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        **kwargs: Any,
    ) -> None:
        checkpoint = None
        if pretrained is not None:
            pretrained = str(find_checkpoint(pretrained, "best"))
            checkpoint = load_checkpoint(pretrained)
            backbone, backbone_args = pretrained_architecture(
                checkpoint, pretrained, backbone, backbone_args, input_shape
            )
        backbone = backbone or "cnn"
        super().__init__(backbone=backbone, backbone_args=backbone_args, input_shape=input_shape, **kwargs)
        # Record what was resolved, not what was asked for (LightningCLI saves the config as given), so the
        # checkpoint names its architecture and the exact pretrained file even when the config left them open.
        self.hparams.update(pretrained=pretrained, backbone=backbone, backbone_args=backbone_args)
        if checkpoint is not None:
            load_backbone_weights(self.backbone, checkpoint, pretrained)
        if strategy == "linear_probe":
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TransferClassifier":
        """A frozen backbone stays in eval mode whenever the model is put in train mode."""
        super().train(mode)
        self._keep_frozen_backbone_in_eval()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning 2.6 no longer calls train() when fit starts, so enforce the policy here too.
        self._keep_frozen_backbone_in_eval()

    def _keep_frozen_backbone_in_eval(self) -> None:
        """BatchNorm in train mode updates its running statistics even with requires_grad off (Lightning #15062)."""
        if self.hparams.strategy == "linear_probe":
            self.backbone.eval()

    def parameter_groups(self) -> list[dict[str, Any]]:
        groups = [{"name": "head", "params": list(self.head.parameters())}]
        if self.hparams.strategy == "full":
            groups.append({"name": "backbone", "params": list(self.backbone.parameters())})
        return groups


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
