"""One LightningDataModule for MNIST-style and CIFAR-style data, held in memory as uint8 tensors.

Its steps, each in a module of its own: the source (sources.py) gives classes, shape and splits; splits.py holds
out validation and test images and draws label budgets; batch_transforms.py normalizes and augments whole
batches on the model's device; resumable_shuffle.py and the seeded generators make every epoch a function
of (seed, epoch), so a resumed run continues exactly. The class itself stays one file of ~280 lines, a third of
them its settings' documentation: LightningCLI reads its constructor as the `data:` section of every config.
"""

import os
from collections.abc import Iterator
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader

from project.data.batch_transforms import (
    adapt_channels,
    channel_mean_std,
    normalize,
    random_crop,
    random_horizontal_flip,
    resize,
)
from project.data.image_folder import UNLABELLED, unlabelled_images
from project.data.image_set import FileImages, FileImageSet, ImageSet, InMemoryImages, keep_batch
from project.data.model_input import ModelInput
from project.data.resumable_shuffle import ResumableShuffle
from project.data.settings import check_settings, resolve_classes
from project.data.sources import DatasetName, open_source
from project.data.splits import complement, per_class_indices, select_classes, stratified_split, take_per_class
from project.data.unlabelled_pool import budget_remainder_pool, refuse_held_out_images
from project.errors import UserError
from project.seeding import Stream, derived_seed, epoch_seed, run_seed

Split = ImageSet | FileImageSet


class ImageDataModule(LightningDataModule):
    """Loads a dataset, splits it (seeded), selects classes and a label budget, and serves normalized batches.

    Args:
        dataset: `digits` is scikit-learn's embedded 8×8 digits at 28×28 (offline); `imagefolder` reads `root`.
        root: where torchvision keeps (or downloads) its datasets, or the image folder.
        classes: class indices or names to keep, relabelled 0..k-1 in this order (e.g. a source or target task).
        samples_per_class: label budget: this many training samples of each class (null: all).
        val_samples_per_class: labelled validation samples of each class, drawn from the held-out validation
            split (so never among the training ones). null: as many as `samples_per_class` when that is set
            (a user with N labels per class has no hundreds more to select epochs with; Oliver et al. 2018),
            else the whole split; `all`: the whole split even with a label budget.
        val_fraction: share of each training class held out for validation (checkpoint selection).
        test_fraction: share held out for testing, only for data without a test split of its own.
        split_seed: seed of the held-out splits (and of the label budget, unless `budget_seed` is set); keep it fixed
            across runs that compare.
        budget_seed: seed of the labelled images a budget draws, when it should vary without the held-out splits
            (e.g. against a self-supervised backbone that saw every image but split_seed's validation and test).
        channels: convert to this many channels (1 or 3), so any dataset can feed any backbone.
        image_size: resize images to image_size × image_size.
        augment: random crop with padding and horizontal flip while training (null: on for colour data).
        num_workers: DataLoader worker processes (null: none in memory, where they only take cores from the
            model; up to 8 when an image folder is decoded from disk).
        cache_dir: where decoded image folders are cached (rebuilt when a file changes); null: no cache.
        unlabelled_root: a folder of images without labels (in sub-folders or not, names ignored) that join the
            training split, for `--model=SimCLRPretraining`, or the unlabelled pool (with `unlabelled_ratio`);
            validation and test stay the labelled `root`'s.
        unlabelled_ratio: semi-supervised fine-tuning (`--model.semi_supervised`): every training batch comes with
            this many unlabelled images per labelled one (FixMatch's μ), drawn from the pool: the training images
            beyond `samples_per_class` and those under `unlabelled_root`, never a validation or test image. An
            epoch is one pass over the pool; the labelled images cycle. 0: no pool.
        in_memory: decode an image folder into memory once (true) or per batch from disk in workers (false);
            null: in memory unless its decoded size would exceed `memory_limit_gb`.
        mean, std: per-channel normalization of uint8/255 images (timm's --mean/--std). null: the training images'
            own; scripts/finetune.py fills them from the pretrained weights (see --model.normalization).
    """

    def __init__(
        self,
        dataset: DatasetName = "digits",
        root: str = "data",
        download: bool = True,
        classes: list[int | str] | None = None,
        samples_per_class: int | None = None,
        val_samples_per_class: int | Literal["all"] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        budget_seed: int | None = None,
        channels: Literal[1, 3] | None = None,
        image_size: int | None = None,
        augment: bool | None = None,
        crop_padding: int = 4,
        batch_size: int = 128,
        num_workers: int | None = None,
        cache_dir: str | None = "data/cache",
        in_memory: bool | None = None,
        memory_limit_gb: float = 8.0,
        unlabelled_root: str | None = None,
        unlabelled_ratio: int = 0,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self.hparams)
        self.source = open_source(dataset, root, download, image_size, cache_dir, in_memory, memory_limit_gb)
        self.class_ids = resolve_classes(classes, self.source.class_names)
        self.class_names = [self.source.class_names[i] for i in self.class_ids]
        self.mean = self.std = None
        self.train_set: ImageSet | None = None
        self.val_set: ImageSet | None = None
        self.test_set: ImageSet | None = None
        self.unlabelled_set: ImageSet | None = None  # the pool of semi-supervised fine-tuning
        self.train_sampler: ResumableShuffle | None = None
        self.unlabelled_sampler: ResumableShuffle | None = None
        self.unlabelled_passes = 0
        self._augmentation_epoch: tuple | None = None
        self._augmentation_rng: torch.Generator | None = None
        self.train_passes = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def budget_seed(self) -> int:
        return self.hparams.split_seed if self.hparams.budget_seed is None else self.hparams.budget_seed

    @property
    def val_budget(self) -> int | None:
        """Labelled validation images per class, or None for the whole validation split."""
        budget = self.hparams.val_samples_per_class
        if budget == "all":
            return None
        return self.hparams.samples_per_class if budget is None else budget

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the model gets. An image folder is read here, on first use (when LightningCLI links the shape
        into the model, or at setup), after its classes were checked."""
        native = self.source.shape
        channels, size = self.hparams.channels, self.hparams.image_size
        return (channels or native[0], size or native[1], size or native[2])

    @property
    def augment(self) -> bool:
        """Crop and flip while training: as set, or by default for colour data."""
        return self.source.shape[0] == 3 if self.hparams.augment is None else self.hparams.augment

    @property
    def has_unlabelled(self) -> bool:
        return self.train_set is not None and bool((self.train_set.labels == UNLABELLED).any())

    @property
    def from_disk(self) -> bool:
        return self.source.from_disk

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # fit then test reuse what is in memory
            return
        hp = self.hparams
        if hp.unlabelled_ratio and self.from_disk:
            raise UserError(f"unlabelled_ratio={hp.unlabelled_ratio}: the unlabelled pool is held in memory, but this "
                            f"image folder is read from disk (its decoded size is over memory_limit_gb="
                            f"{hp.memory_limit_gb}): raise --data.memory_limit_gb or set --data.in_memory=true")
        train, val, test = self.source.load()
        # Held out of train where the data has no such split of its own: the test images, then validation.
        if test is None:
            train, test = self._hold_out(train, hp.test_fraction, Stream.TEST_SPLIT)
        if val is None:
            train, val = self._hold_out(train, hp.val_fraction, Stream.VAL_SPLIT)
        if not self.from_disk:
            train, val, test = (self._adapt(image_set) for image_set in (train, val, test))
        if self.mean is None and hp.mean is not None:  # set, e.g. to the pretrained weights' (timm's --mean/--std)
            self.mean, self.std = given_mean_std(hp.mean, hp.std, self.input_shape[0])
        if self.mean is None:  # unless set, or a trained model's were given (normalize_like)
            # Statistics of all training classes, so a source and a target task of one dataset share them; from
            # disk, of a sample: decoding every image is what that path avoids.
            sample = FileImages(train, self.input_shape, hp.image_size).sample(2000, hp.split_seed) if self.from_disk \
                else train.images
            self.mean, self.std = channel_mean_std(sample)
        train, val, test = (select_classes(image_set, self.class_ids) for image_set in (train, val, test))
        counts = torch.bincount(train.labels, minlength=self.num_classes)
        if (counts == 0).any():
            missing = [name for name, count in zip(self.class_names, counts.tolist(), strict=True) if count == 0]
            raise UserError(
                f"classes {missing} have no training images once val and test are held out: add images, or "
                f"lower --data.val_fraction / --data.test_fraction"
            )
        pool = None
        if hp.samples_per_class is not None:
            seed = derived_seed(self.budget_seed, Stream.TRAIN_BUDGET)
            labelled = per_class_indices(train, hp.samples_per_class, seed, self.class_names)
            if hp.unlabelled_ratio:  # their labels stay in memory, read only by the pseudo-labels' accuracy monitor
                pool = train.subset(complement(labelled, len(train)))
            train = train.subset(labelled)
        if self.val_budget is not None:
            seed = derived_seed(self.budget_seed, Stream.VAL_BUDGET)
            # A budget that only follows samples_per_class takes what the validation split has, up to it.
            implicit = hp.val_samples_per_class is None
            val = take_per_class(val, self.val_budget, seed, self.class_names, "val_samples_per_class", implicit)
        if hp.unlabelled_root is not None:  # more images: SimCLR's training images, or the semi-supervised pool
            extra = unlabelled_images(hp.unlabelled_root, hp.image_size, hp.cache_dir, self.from_disk)
            extra = extra if self.from_disk else self._adapt(extra)
            if not self.from_disk and len(train) and extra.images.shape[1:] != train.images.shape[1:]:
                raise UserError(
                    f"the images under --data.unlabelled_root are {tuple(extra.images.shape[1:])} (C, H, W) but the "
                    f"labelled ones are {tuple(train.images.shape[1:])}: set --data.image_size to resize both alike"
                )
            if hp.unlabelled_ratio:
                refuse_held_out_images(extra, val, test, hp.unlabelled_root)
                pool = extra if pool is None else pool.joined(extra)
            else:
                train = train.joined(extra)
        if hp.unlabelled_ratio:
            if pool is None:
                raise UserError(f"unlabelled_ratio={hp.unlabelled_ratio} needs unlabelled images: set "
                                f"--data.samples_per_class (the training images beyond it form the pool) or "
                                f"--data.unlabelled_root, with --model.semi_supervised to learn from them")
            self.unlabelled_set = budget_remainder_pool(pool, val, test)
        for split, image_set in (("train", train), ("val", val), ("test", test)):
            if self.from_disk or not len(image_set):  # from disk, each image's size is checked as it is read
                continue
            if tuple(image_set.images.shape[1:]) != self.input_shape:
                raise UserError(
                    f"the {split} images are {tuple(image_set.images.shape[1:])} (C, H, W) but {self.input_shape} "
                    f"was expected (the first training image's): set --data.image_size to resize every split"
                )
        self.train_set, self.val_set, self.test_set = train, val, test

    def _hold_out(self, train: Split, fraction: float, stream: Stream) -> tuple[Split, Split]:
        """(kept, held out): `fraction` of every class, drawn by split_seed for `stream`."""
        kept, taken = stratified_split(train.labels, fraction, derived_seed(self.hparams.split_seed, stream))
        return train.subset(kept), train.subset(taken)

    def _adapt(self, image_set: ImageSet) -> ImageSet:
        """The configured channel count and size, applied once to the uint8 images in memory."""
        images = adapt_channels(image_set.images, self.input_shape[0])
        if self.hparams.image_size is not None:  # otherwise as they are: a non-square image is never squashed
            images = resize(images, self.hparams.image_size)
        return ImageSet(images, image_set.labels)

    def _loader(
        self, image_set: ImageSet | FileImageSet | None, sampler: ResumableShuffle | None = None, batch_size: int = 0,
    ) -> DataLoader:
        if image_set is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        workers = self.hparams.num_workers
        if isinstance(image_set, FileImageSet):
            dataset, collate = FileImages(image_set, self.input_shape, self.hparams.image_size), None
            workers = min(8, os.cpu_count() or 1) if workers is None else workers
        else:
            dataset, collate, workers = InMemoryImages(image_set), keep_batch, workers or 0
        return DataLoader(
            dataset,
            batch_size=batch_size or self.hparams.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def ordered_batches(
        self, split: str, device: torch.device | str, augmentation_rng: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """A split's batches in order on `device`, normalized, augmented only when given a generator: for a frozen
        model's features."""
        for images, labels in self._loader(getattr(self, f"{split}_set")):
            yield self.batch_transform(images.to(device), labels.to(device), augmentation_rng)

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        if self.train_set is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        self.train_sampler = ResumableShuffle(len(self.train_set), run_seed(), passes=self.train_passes)
        # A new loader is a new fit: its epochs crop and flip from their own seeds, not on from an earlier fit's
        # generator (the benchmark fits one datamodule many times, and compares their losses).
        self._augmentation_epoch = None
        labelled = self._loader(self.train_set, self.train_sampler)
        if self.unlabelled_set is None:
            return labelled
        self.unlabelled_sampler = ResumableShuffle(
            len(self.unlabelled_set), run_seed(), passes=self.unlabelled_passes, stream=Stream.UNLABELLED_SHUFFLE
        )
        unlabelled = self._loader(
            self.unlabelled_set, self.unlabelled_sampler, self.hparams.unlabelled_ratio * self.hparams.batch_size
        )
        # Lightning's own pairing of loaders: an epoch is one pass over the (larger) pool, the labelled loader
        # starts again whenever it runs out, each start a new pass of its sampler (so a resume continues it).
        return CombinedLoader({"labelled": labelled, "unlabelled": unlabelled}, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (training only) and normalize the uint8 batch where it now is, e.g. on the GPU. A semi-supervised
        batch's unlabelled images are normalized only: the model makes their weak and strong views itself."""
        if isinstance(batch, dict):
            return {"labelled": self.on_after_batch_transfer(batch["labelled"], dataloader_idx),
                    "unlabelled": self.batch_transform(*batch["unlabelled"])}
        images, labels = batch
        if not (self.augment and self.trainer is not None and self.trainer.training):
            return self.batch_transform(images, labels)
        epoch, rank = self.trainer.current_epoch, self.trainer.global_rank
        if self._augmentation_epoch != (epoch, rank, images.device):  # a new epoch: a generator seeded for it
            self._augmentation_epoch = (epoch, rank, images.device)
            self._augmentation_rng = augmentation_generator(epoch, rank, images.device)
        return self.batch_transform(images, labels, self._augmentation_rng)

    def batch_transform(
        self, images: Tensor, labels: Tensor, augmentation_rng: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """uint8 batch → normalized float batch, augmented when given a generator, on whatever device it is."""
        if augmentation_rng is not None:
            crop_padding = self.hparams.crop_padding
            images = random_horizontal_flip(random_crop(images, crop_padding, augmentation_rng), augmentation_rng)
        if self.mean.device != images.device:  # once per device, not a host-to-GPU copy every batch
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        return normalize(images, self.mean, self.std), labels

    def model_input(self) -> ModelInput:
        """What a model trained on this data must know of it, once set up: the run hands it to the model."""
        hp = self.hparams
        return ModelInput(self.mean.tolist(), self.std.tolist(), list(self.input_shape), list(self.class_names),
                          self.augment, hp.crop_padding, hp.unlabelled_ratio, self.has_unlabelled)

    def normalize_like(self, preprocessing: dict[str, Any]) -> None:
        """Normalize with a trained model's statistics (its `preprocessing`) instead of this data's own."""
        self.mean = torch.tensor(preprocessing["mean"], dtype=torch.float32)
        self.std = torch.tensor(preprocessing["std"], dtype=torch.float32)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the shuffles' positions. (The normalization is the model's: `preprocessing`.)"""
        return {"train_passes": self.train_sampler.passes if self.train_sampler else 0,
                "unlabelled_passes": self.unlabelled_sampler.passes if self.unlabelled_sampler else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """On resume, Lightning restores this before it makes the train dataloader."""
        self.train_passes = state.get("train_passes", 0)
        self.unlabelled_passes = state.get("unlabelled_passes", 0)
        if self.train_sampler is not None:
            self.train_sampler.passes = self.train_passes
        if self.unlabelled_sampler is not None:
            self.unlabelled_sampler.passes = self.unlabelled_passes


def given_mean_std(mean: list[float], std: list[float], channels: int) -> tuple[Tensor, Tensor]:
    """The configured mean and std for images of `channels` channels (one value for every channel, or 3 values for
    1-channel images: then their mean, as an RGB stem adapted to gray sees the gray image in all three)."""
    if len(mean) == 3 and channels == 1:  # the channels' statistics differ little (ImageNet's std: 0.224-0.229)
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    if len(mean) != channels:
        raise UserError(f"mean={mean} and std={std} have {len(mean)} values but the images have {channels} channels: "
                        f"give one value per channel")
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def augmentation_generator(epoch: int, rank: int, device: torch.device | str) -> torch.Generator:
    """The generator of one epoch's crops and flips on one rank: a function of (run seed, epoch, rank) only."""
    return torch.Generator(device).manual_seed(epoch_seed(epoch, rank, Stream.AUGMENT))
