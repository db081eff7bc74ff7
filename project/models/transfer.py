"""The fine-tuning LightningModule: a pretrained backbone under a new head sized for the target task."""

import json
from dataclasses import replace
from typing import Any, Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor, nn

from project.backbones import BackboneName
from project.checkpoints.pretrained import PretrainedBackbone
from project.data.model_input import ModelInput
from project.data.views import strong_view, weak_view
from project.errors import UserError, refuse_wrong
from project.feature_probes.logistic import fit_logistic_probe
from project.models.classifier import ImageClassifier
from project.models.consistency import (
    SemiSupervised,
    pseudo_labels,
    uniform_prediction,
    updated_running_mean,
)
from project.models.finetuning_plan import FROZEN_BACKBONE, FinetuningPlan, Strategy
from project.seeding import Stream, derived_seed, epoch_seed, run_seed

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class TransferClassifier(ImageClassifier):
    """An ImageClassifier whose backbone starts from pretrained weights, trained by a fine-tuning strategy.

    The module does no file I/O: `pretrained` names the source (recorded, and the fine-tuning plan depends on
    whether there is one) and `load_pretrained` receives its weights. scripts/finetune.py reads the source,
    takes the architecture from it (the config need not repeat it) and loads it; in Python,
    `TransferClassifier.from_pretrained(location, ...)` does the same. The head is always new, sized by the
    target data's `num_classes`.

    Args:
        pretrained: a pretraining run's checkpoint (a .ckpt file, a run folder or an experiment folder: its
            selected checkpoint), a torchvision state dict file, or `torchvision:<WEIGHTS>` (e.g.
            `torchvision:IMAGENET1K_V1`); null trains the same model from scratch, the baseline to beat.
        strategy: `linear_probe` (frozen backbone, BatchNorm statistics included), `logistic_probe` (the same, its
            head fit to convergence before the first step: L2-regularized logistic regression by L-BFGS, the
            penalty chosen by cross-validated log-loss on the training labels; Kornblith et al. 2019), `full`
            (everything trains), `gradual` (blocks unfreeze from the top at `unfreeze_at` epochs), `lp_ft` (linear
            probe for `lp_fraction` of the epochs, then everything at `ft_lr_ratio` × the lr, each phase under
            a schedule of its own; with `lp_fraction` 0 the probe is the logistic one, fit before the first step,
            and everything fine-tunes from there; Kumar et al. 2022).
        backbone_lr_ratio: backbone lr = lr × this; `layer_decay` multiplies it once more per block down.
        reinit_blocks: start this many top backbone blocks from fresh weights instead of the pretrained ones
            (1 on the CNN: keep the conv trunk, re-initialize fc512 — the article's transfer model). The top
            block is the one most specific to the source classes. Fresh blocks belong to the new head: they
            train from the first epoch at the head's lr under every strategy (with pretrained weights only).
        probe_views: the logistic probe (of `logistic_probe`, or of `lp_ft` with `lp_fraction` 0) is fit on each
            labelled image and this many random views of it (the training augmentation's crops and flips), the
            views of one image always in the same cross-validation fold. 0: the images alone.
        pretrained_sha256: if set, the pretrained file must have this hash; recorded after every run.
        normalization: the mean/std the fine-tuning images are normalized with: `pretrained`, those the weights
            were trained under (timm's `pretrained_cfg`, torchvision's `weights.transforms()`, a pretraining run's
            recorded preprocessing), or `target`, the fine-tuning images' own. Explicit --data.mean/--data.std win
            over both. The weights' input size is --data.image_size's default either way.
        semi_supervised: also learn from the unlabelled pool (`--data.unlabelled_ratio` unlabelled images per
            labelled one in every batch): `fixmatch` (pseudo-labels from a weak view train the prediction on a
            strong view; Sohn et al. 2020) or `pseudo_label` (on the weak view itself: half the compute); `none`.
            Any strategy and source combine with it: the logistic probe first (`lp_ft` with `lp_fraction` 0), or
            from scratch (the classic baseline). The callback EMAWeights (Lightning's EMA) gives FixMatch's EMA
            of the weights for evaluation (configs/strategy/fixmatch.yaml).
        threshold: a pseudo-label is used where the model's confidence (max probability) reaches it.
        unlabelled_weight: the unlabelled loss's weight against the labelled one (FixMatch's λ).
        distribution_alignment: rescale predictions on the pool by the model's running mean prediction, so
            pseudo-labels follow the (balanced) class prior (ReMixMatch).
        batchnorm: `train` updates BatchNorm statistics in every training block (as usual); `frozen` keeps the
            pretrained statistics everywhere: a few labelled images and strongly augmented ones move batch
            statistics away from what the features were learnt under (a FixMatch try collapsed without it).
        strong_crop_scale, strong_jitter, cutout_size: the strong view's SimCLR crop, colour strength and cutout.
    """

    plans_lr = True  # the strategy gates and scales each group's lr by epoch

    def __init__(
        self,
        pretrained: str | None = None,
        pretrained_sha256: str | None = None,
        strategy: Strategy = "full",
        reinit_blocks: int = 0,
        backbone_lr_ratio: float = 1.0,
        layer_decay: float = 1.0,
        unfreeze_at: list[int] | None = None,
        lp_fraction: float = 0.5,
        ft_lr_ratio: float = 0.1,
        probe_views: int = 0,
        normalization: Literal["pretrained", "target"] = "pretrained",
        semi_supervised: SemiSupervised = "none",
        threshold: float = 0.95,
        unlabelled_weight: float = 1.0,
        distribution_alignment: bool = False,
        batchnorm: Literal["train", "frozen"] = "train",
        strong_crop_scale: float = 0.2,
        strong_jitter: float = 0.5,
        cutout_size: int = 16,
        backbone: BackboneName | None = None,
        backbone_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        backbone = backbone or "cnn"  # null: the source's (filled in by the script), or else the article's CNN
        super().__init__(backbone=backbone, backbone_args=backbone_args, **kwargs)
        blocks = self.backbone.blocks()
        if probe_views < 0:
            raise UserError(f"probe_views={probe_views} must be >= 0 (0: the labelled images alone)")
        refuse_wrong((f"threshold={threshold} must be in [0, 1]", 0 <= threshold <= 1),
                     (f"unlabelled_weight={unlabelled_weight} must be >= 0", unlabelled_weight >= 0),
                     (f"strong_crop_scale={strong_crop_scale} must be in (0, 1]", 0 < strong_crop_scale <= 1),
                     (f"strong_jitter={strong_jitter} must be >= 0", strong_jitter >= 0),
                     (f"cutout_size={cutout_size} must be >= 0", cutout_size >= 0))
        if not 0 <= reinit_blocks <= len(blocks):
            raise UserError(f"reinit_blocks={reinit_blocks} must be between 0 and the backbone's {len(blocks)} blocks")
        self.provenance: dict[str, Any] = {}
        self.pretrained_weights_loaded = False
        self.head_fit = False  # logistic_probe: fit once, before the first step (and kept by its checkpoints)
        self.pool_prediction = uniform_prediction(self.hparams.num_classes)  # distribution alignment's running mean
        self._views_rng: tuple[tuple, torch.Generator] | None = None
        self.plan = FinetuningPlan(
            strategy=strategy, num_blocks=len(blocks), backbone_lr_ratio=backbone_lr_ratio, layer_decay=layer_decay,
            unfreeze_at=tuple(unfreeze_at or (5,)), lp_fraction=lp_fraction, ft_lr_ratio=ft_lr_ratio,
            new_blocks=reinit_blocks if pretrained is not None else 0,
        )
        if self.plan.fits_logistic_head and self.plan.new_blocks:
            raise UserError(f"reinit_blocks must be 0 when the head starts as the logistic probe (strategy "
                            f"{strategy!r}{' with lp_fraction 0' if strategy == 'lp_ft' else ''}): the probe would be "
                            f"fit on the fresh blocks' random features")
        if strategy in FROZEN_BACKBONE:  # the pretrained blocks never train: skip their gradients altogether
            self.backbone.requires_grad_(False)
            for block in blocks[self.plan.pretrained_blocks :]:
                block.requires_grad_(True)

    @classmethod
    def from_pretrained(
        cls, pretrained: str, pretrained_sha256: str | None = None, **kwargs: Any
    ) -> "TransferClassifier":
        """The model on the pretrained source `pretrained`, its architecture read from the source."""
        backbone, backbone_args = kwargs.pop("backbone", None), kwargs.pop("backbone_args", None)
        source = PretrainedBackbone.open(pretrained, backbone, backbone_args, pretrained_sha256)
        model = cls(pretrained=source.source, pretrained_sha256=source.sha256, backbone=source.backbone,
                    backbone_args=source.backbone_args, **kwargs)
        model.load_pretrained(source)
        return model

    def load_pretrained(self, source: PretrainedBackbone) -> None:
        """Start from `source`'s weights: the backbone copied strictly, the top `reinit_blocks` drawn afresh."""
        if self.hparams.pretrained is None:
            raise ValueError("load_pretrained on a model built with pretrained=None (the scratch baseline)")
        source.check_input_shape(self.hparams.input_shape, self.backbone.any_input_size)
        rank_zero_info(f"backbone {source.copy_into(self.backbone)}")
        blocks = self.backbone.blocks()
        reinitialize(blocks[len(blocks) - self.hparams.reinit_blocks :])
        self.provenance = source.provenance
        self.pretrained_weights_loaded = True

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
        super().setup(stage)
        if stage != "fit":
            return
        epochs = self.trainer.max_epochs
        if self.plan.strategy == "lp_ft" and (epochs is None or epochs < 1):
            raise UserError(f"strategy lp_ft splits max_epochs into phases: set --trainer.max_epochs (not {epochs})")
        self.plan = replace(self.plan, total_epochs=epochs)
        views = self.hparams.probe_views
        if self.plan.fits_logistic_head and self.trainer.datamodule is None:
            raise UserError("the logistic probe reads its training images from the data module: fit with "
                            "trainer.fit(model, datamodule=ImageDataModule(...))")
        if views and not self.plan.fits_logistic_head:  # kept, not refused: a study's other methods share the config
            rank_zero_warn(f"probe_views={views} has no effect: strategy {self.plan.strategy!r} fits no logistic probe "
                           f"(logistic_probe, or lp_ft with lp_fraction 0, do)")
        if self.data_input is None:  # no data handed over: no pool either
            self._check_semi_supervised(unlabelled_ratio=0)

    def check_input(self, given: ModelInput) -> None:
        super().check_input(given)
        if self.hparams.probe_views and self.plan.fits_logistic_head and not given.augment:
            raise UserError(f"probe_views={self.hparams.probe_views} needs the training augmentation, whose crops and "
                            f"flips the views are: set --data.augment=true, or --model.probe_views=0")
        self._check_semi_supervised(given.unlabelled_ratio)

    def _check_semi_supervised(self, unlabelled_ratio: int) -> None:
        """The model's semi_supervised and the data's unlabelled pool go together, or neither is set."""
        method = self.hparams.semi_supervised
        if method != "none" and not unlabelled_ratio:
            raise UserError(f"semi_supervised={method!r} learns from unlabelled images: set --data.unlabelled_ratio "
                            f"(e.g. 4 unlabelled images per labelled one in every batch)")
        if method != "none" and self.plan.strategy == "logistic_probe":
            raise UserError(f"semi_supervised={method!r} trains on the pool, but strategy 'logistic_probe' trains "
                            f"nothing after its fit: use lp_ft with lp_fraction 0 (the same probe, then fine-tuning)")

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
        """BatchNorm in train mode updates its running statistics even when its block is frozen (#15062); with
        `batchnorm: frozen`, in every block."""
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        for index, block in enumerate(self.backbone.blocks()):
            block.train(self.plan.block_trains(index, epoch))
        if self.hparams.batchnorm == "frozen":
            for module in self.backbone.modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        if self.plan.strategy == "logistic_probe":  # fit before the first step: nothing left to train
            return None
        if self.hparams.semi_supervised == "none":
            return super().training_step(batch, batch_idx)
        labelled_loss, _ = self._step(batch["labelled"], "train")
        return labelled_loss + self.hparams.unlabelled_weight * self._unlabelled_loss(*batch["unlabelled"])

    def _unlabelled_loss(self, images: Tensor, hidden_labels: Tensor) -> Tensor:
        """FixMatch's (or pseudo-labelling's) loss on a normalized, unaugmented unlabelled batch."""
        hp = self.hparams
        mean = torch.tensor(self.preprocessing["mean"], device=images.device)[None, :, None, None]
        std = torch.tensor(self.preprocessing["std"], device=images.device)[None, :, None, None]
        unit, generator = (images * std + mean).clamp(0, 1), self._views_generator(images.device)
        data = self.data_input  # mirror images only where the data's own augmentation flips (not digits)
        weak = (weak_view(unit, generator, data.crop_padding, data.augment) - mean) / std
        if hp.semi_supervised == "fixmatch":
            view = strong_view(unit, generator, hp.strong_crop_scale, hp.strong_jitter, hp.cutout_size, data.augment)
            strong = (view - mean) / std
            with torch.no_grad():  # the targets: no gradient flows through them
                weak_logits = self(weak)
            trained_logits = self(strong)
        else:  # pseudo-labelling: the weak view is both the target's and the trained prediction's
            weak_logits = trained_logits = self(weak)
        aligned = self.pool_prediction if hp.distribution_alignment else None
        labels = pseudo_labels(weak_logits, hp.threshold, aligned)
        if hp.distribution_alignment:
            self.pool_prediction = updated_running_mean(self.pool_prediction, weak_logits, self.trainer.strategy)
        loss = labels.loss(trained_logits)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # the steps Lightning's logger writes
            self.log("train/unlabelled_loss", loss)
            self.log("train/confident", labels.confident.float().mean())
            accuracy = labels.accuracy(hidden_labels)
            if accuracy is not None:
                self.log("monitor/pseudo_label_acc", accuracy)
        return loss

    def _views_generator(self, device: torch.device) -> torch.Generator:
        """One generator of weak and strong views per epoch and rank, seeded from both: a resumed run draws the
        same views (and so the same pseudo-labels) as an uninterrupted one."""
        key = (self.current_epoch, self.global_rank, device)
        if self._views_rng is None or self._views_rng[0] != key:
            generator = torch.Generator(device).manual_seed(epoch_seed(*key[:2], Stream.CONSISTENCY_VIEWS))
            self._views_rng = (key, generator)
        return self._views_rng[1]

    def on_train_start(self) -> None:
        # Here, not in on_fit_start: Lightning registers its SIGTERM handler (and resets the stop flag a first
        # Ctrl-C sets) between the two, and a probe fit can take minutes, which a signal must be able to stop.
        super().on_train_start()
        if self.plan.fits_logistic_head and self.trainer.global_step == 0 and not self.head_fit:
            self.fit_logistic_head()

    def on_fit_start(self) -> None:
        if self.hparams.pretrained is not None and not self.pretrained_weights_loaded:
            raise UserError(
                f"pretrained={self.hparams.pretrained!r} was given but its weights were never loaded: build the "
                f"model with TransferClassifier.from_pretrained(...), or run scripts/finetune.py"
            )
        if self.provenance and isinstance(self.logger, TensorBoardLogger):
            text = json.dumps(self.provenance, indent=2, default=str)
            self.logger.experiment.add_text("provenance", "\n".join(f"    {line}" for line in text.splitlines()))

    @torch.no_grad()
    def fit_logistic_head(self) -> None:
        """The head as the logistic probe of the frozen features of every training image, and of `probe_views`
        augmented views of each."""
        data, views = self.trainer.datamodule, self.hparams.probe_views
        self.backbone.eval()
        rng = torch.Generator(self.device).manual_seed(derived_seed(run_seed(), Stream.PROBE_VIEWS))
        features, labels = [], []
        for view in range(views + 1):  # the images as they are, then their augmented views
            for images, batch_labels in data.ordered_batches("train", self.device, rng if view else None):
                self.stop_if_signalled()
                features.append(self.backbone(self.as_input(images)).float().cpu())
                labels.append(batch_labels.cpu())
        images = torch.arange(len(data.train_set)).repeat(views + 1) if views else None  # the image of each row
        probe = fit_logistic_probe(torch.cat(features), torch.cat(labels), seed=run_seed(), images=images,
                                   between_fits=self.stop_if_signalled)
        self.head.weight.copy_(probe.weight)
        self.head.bias.copy_(probe.bias)
        self.head_fit = True
        cross_validated = ("not cross-validated (a class has one image)" if probe.cv_accuracy is None else
                           f"cross-validated log-loss {probe.cv_log_loss:.3f}, accuracy {probe.cv_accuracy:.3f}")
        rank_zero_info(f"logistic probe: L2 penalty C={probe.penalty_c:g}, {cross_validated} on the training labels")
        if probe.edge_note():
            rank_zero_warn(probe.edge_note())

    def stop_if_signalled(self) -> None:
        """SIGTERM or a first Ctrl-C stop the run where Lightning would at a batch boundary (last.ckpt saved, the
        head refit on resume); the probe's feature passes and fits have no batch boundaries of Lightning's."""
        if self.trainer.received_sigterm:
            raise SIGTERMException

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["provenance"] = self.provenance
        checkpoint["logistic_head_fit"] = self.head_fit  # False: stopped during the probe's fit, refit on resume
        if self.hparams.distribution_alignment:
            checkpoint["pool_prediction"] = self.pool_prediction.cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint holds the whole trained model: the pretrained file is not read again."""
        super().on_load_checkpoint(checkpoint)
        self.provenance = checkpoint.get("provenance", {})
        self.pretrained_weights_loaded = True
        self.head_fit = checkpoint.get("logistic_head_fit", True)
        if "pool_prediction" in checkpoint:
            self.pool_prediction = checkpoint["pool_prediction"]


def reinitialize(blocks: list[nn.Module]) -> None:
    """Fresh weights (and BatchNorm statistics) for every layer in `blocks`, drawn as at construction."""
    for block in blocks:
        for module in block.modules():
            if hasattr(module, "reset_parameters"):  # convs, linears, norms: each knows its own init
                module.reset_parameters()

