"""Pretraining a backbone without labels: SimCLR (Chen et al. 2020), for the case of many images and few labels.

Two random views of every image (data/views.py) go through the backbone and a projection MLP; NT-Xent pulls each
pair together and pushes the rest of the global batch apart (contrastive.py). The training labels are never read.
Whether it learns is read off a k-NN classifier on the backbone's features of the validation split, whose labels
serve this monitor only (`val/knn_acc`, which also selects the best checkpoint). The checkpoint is a backbone like
any other: scripts/finetune.py, study.py and transferability.py take it unchanged.
"""

from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from project.data.model_input import ModelInput
from project.data.views import simclr_view
from project.errors import UserError, refuse_wrong
from project.feature_probes.knn import knn_accuracy, usable_k
from project.models.backbone_module import BackboneModule
from project.models.contrastive import nt_xent
from project.seeding import Stream, derived_seed, epoch_seed, run_seed


class SimCLRPretraining(BackboneModule):
    """`backbone` → `projection` (Linear, BatchNorm, ReLU, Linear), NT-Xent on two views per image.

    Args:
        The backbone, data and optimizer arguments are BackboneModule's (AdamW with a warm-up here, as SimCLR;
            the data's classes are recorded, never trained on).
        projection_dims: widths of the projection MLP after the backbone's features (SimCLR: 512, then 128).
        temperature: NT-Xent's τ (0.2 suits CIFAR-sized batches of a few hundred).
        crop_scale: the smallest area a random crop keeps; jitter_strength: SimCLR's colour strength s.
        knn_k: neighbours of the k-NN monitor.
    """

    selection_metric = "val/knn_acc"

    def __init__(
        self,
        projection_dims: tuple[int, int] = (512, 128),
        temperature: float = 0.2,
        crop_scale: float = 0.2,
        jitter_strength: float = 0.5,
        knn_k: int = 20,
        optimizer: Literal["sgd", "adamw"] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        scheduler: Literal["cosine", "onecycle", "warmup_cosine", "none"] = "warmup_cosine",
        **kwargs: Any,
    ) -> None:
        refuse_wrong((f"temperature={temperature} must be > 0", temperature > 0),
                     (f"crop_scale={crop_scale} must be in (0, 1]", 0 < crop_scale <= 1),
                     (f"jitter_strength={jitter_strength} must be >= 0", jitter_strength >= 0),
                     (f"knn_k={knn_k} must be >= 1", knn_k >= 1))
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        hidden, out = projection_dims
        self.projection = nn.Sequential(
            nn.Linear(self.backbone.out_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out),
        )
        self._views_rng: tuple[tuple, torch.Generator] | None = None
        self._monitor: dict[str, list[Tensor]] = {"features": [], "labels": []}
        self._said_fewer_neighbours: set[str] = set()

    def check_input(self, given: ModelInput) -> None:
        super().check_input(given)
        if given.augment:
            raise UserError("SimCLR makes its own views of every image: set --data.augment=false")

    def _views(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two views of a normalized batch: made on images in [0, 1], normalized again as the data was."""
        mean = torch.tensor(self.preprocessing["mean"], device=images.device)[None, :, None, None]
        std = torch.tensor(self.preprocessing["std"], device=images.device)[None, :, None, None]
        unit = (images * std + mean).clamp(0, 1)
        hp = self.hparams
        first, second = (simclr_view(unit, generator, hp.crop_scale, hp.jitter_strength) for _ in range(2))
        return ((view - mean) / std for view in (first, second))

    def _contrast(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        first, second = self._views(images, generator)
        projected = [self.projection(self.backbone(self.as_input(view))) for view in (first, second)]
        gather = None
        if self.trainer.world_size > 1:  # negatives from every process, their gradients flowing back
            def gather(rows: Tensor) -> Tensor:
                return self.all_gather(rows, sync_grads=True).reshape(-1, rows.shape[-1])
        return nt_xent(*projected, self.hparams.temperature, gather, self.global_rank)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, _ = batch  # the labels are never read
        key = (self.current_epoch, self.global_rank, images.device)
        if self._views_rng is None or self._views_rng[0] != key:  # one generator per epoch and rank: exact resume
            generator = torch.Generator(images.device).manual_seed(epoch_seed(*key[:2], Stream.VIEWS))
            self._views_rng = (key, generator)
        loss, pair_accuracy = self._contrast(images, self._views_rng[1])
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # the steps Lightning's logger writes
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/pair_acc", pair_accuracy)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        # The same views every epoch, so the curve compares epochs, not draws.
        generator = torch.Generator(images.device).manual_seed(derived_seed(run_seed(), Stream.VIEWS, 2**20, batch_idx))
        loss, pair_accuracy = self._contrast(images, generator)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True)
        self.log("val/pair_acc", pair_accuracy, on_epoch=True, sync_dist=True)
        self._collect(images, labels)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._collect(*batch)

    def _collect(self, images: Tensor, labels: Tensor) -> None:
        self._monitor["features"].append(self.backbone(self.as_input(images)).float())
        self._monitor["labels"].append(labels)

    def log_epoch_metrics(self, stage: str) -> None:
        """Leave-one-out k-NN accuracy of the split's backbone features (every process's, gathered)."""
        if stage == "train":  # the loss and pair accuracy are logged by the step
            return
        features, labels = (torch.cat(self._monitor[key]) for key in ("features", "labels"))
        self._monitor = {"features": [], "labels": []}
        if self.trainer.world_size > 1:
            features = self.all_gather(features).reshape(-1, features.shape[-1])
            labels = self.all_gather(labels).reshape(-1)
        if len(labels) > 1:
            k = usable_k(labels.cpu(), self.hparams.knn_k)
            # Not during Lightning's sanity check: its two batches have few images per class by design.
            if k < self.hparams.knn_k and stage not in self._said_fewer_neighbours and not self.trainer.sanity_checking:
                self._said_fewer_neighbours.add(stage)
                rank_zero_warn(f"the {stage} split's smallest class has too few images for the k-NN monitor's "
                               f"knn_k={self.hparams.knn_k}: it uses k={k}; more {stage} images per class make "
                               f"it a steadier read")
            self.log(f"{stage}/knn_acc", knn_accuracy(features.cpu(), labels.cpu(), k), prog_bar=True)

    def forward(self, images: Tensor) -> Tensor:
        """The backbone's features (what fine-tuning starts from)."""
        return self.backbone(self.as_input(images))

