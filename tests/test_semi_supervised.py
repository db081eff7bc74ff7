"""Semi-supervised fine-tuning: the unlabelled pool (never a validation or test image), FixMatch and pseudo-labelling
steps, BatchNorm policy, exact resume, and the refusals of settings that cannot work together."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from rank_weights import RANK_DUMP, ranks_weights
from tiny_settings import REPOSITORY, SCRIPTS, TINY_BACKBONE, TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.data.image_folder import UNLABELLED
from project.data.image_set import ImageSet
from project.data.unlabelled_pool import budget_remainder_pool, image_digests
from project.data.views import cutout, strong_view, weak_view
from project.errors import UserError
from project.models import ImageClassifier, TransferClassifier
from project.training.callbacks.defaults import default_callbacks
from project.training.callbacks.ema_weights import EMAWeights
from project.training.run import fit_and_test, run_experiment


def digits(**options) -> ImageDataModule:
    settings = {"classes": [5, 6, 7], "samples_per_class": 8, "batch_size": 8, "augment": True,
                "unlabelled_ratio": 2, **options}
    return ImageDataModule(**settings)


def tiny_model(**options) -> TransferClassifier:
    settings = {"scheduler": "none", "lr": 0.05, "backbone_args": TINY_BACKBONE, "semi_supervised": "fixmatch",
                "threshold": 0.0, "num_classes": 3, **options}  # threshold 0: every pseudo-label is used
    return TransferClassifier(backbone="cnn", **settings)


def fit(model, data, root, epochs=2, callbacks=(), ckpt_path=None, **trainer_args) -> Trainer:
    trainer = Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=1, limit_train_batches=4, num_sanity_val_steps=0,
        default_root_dir=root, deterministic=True, log_every_n_steps=1,
        callbacks=[*callbacks, *default_callbacks(with_lr_monitor=False)], **trainer_args,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_the_pool_is_the_training_split_beyond_the_budget_and_holds_no_validation_or_test_image():
    data = digits()
    data.setup()
    pool, labelled = data.unlabelled_set, data.train_set
    held_out = set(image_digests(data.val_set.images)) | set(image_digests(data.test_set.images))
    assert not held_out & set(image_digests(pool.images))
    assert not set(image_digests(labelled.images)) & set(image_digests(pool.images))
    everything = ImageDataModule(classes=[5, 6, 7], batch_size=8)  # the same splits, without a budget
    everything.setup()
    assert len(pool) + len(labelled) == len(everything.train_set)  # (the digits hold no duplicate images)
    assert torch.bincount(labelled.labels).tolist() == [8, 8, 8]


def test_a_training_image_that_is_a_copy_of_a_test_image_is_left_out_of_the_pool():
    # The same picture twice in one dataset (CIFAR-10 has such pairs): the training copy must not enter the pool.
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    test = ImageSet(images[8:], torch.tensor([0, 1]))
    val = ImageSet(images[6:8], torch.tensor([0, 1]))
    remainder = ImageSet(torch.cat([images[:6], images[9:10], images[6:7]]), torch.arange(8) % 2)
    pool = budget_remainder_pool(remainder, val, test)
    assert len(pool) == 6 and torch.equal(pool.images, images[:6])


def test_an_unlabelled_root_holding_a_test_image_is_refused(tmp_path, split_image_folder):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for index in range(3):
        shutil.copy(split_image_folder / "train" / "cat" / f"{index:03d}.png", unlabelled / f"extra{index}.png")
    shutil.copy(split_image_folder / "test" / "dog" / "001.png", unlabelled / "renamed.png")
    data = ImageDataModule("imagefolder", root=str(split_image_folder), unlabelled_root=str(unlabelled),
                           unlabelled_ratio=1, batch_size=4, cache_dir=None)
    with pytest.raises(UserError, match=r"1 of the 4 images under --data.unlabelled_root=.* are validation or test"):
        data.setup()
    (unlabelled / "renamed.png").unlink()
    data = ImageDataModule("imagefolder", root=str(split_image_folder), unlabelled_root=str(unlabelled),
                           unlabelled_ratio=1, batch_size=4, cache_dir=None)
    data.setup()
    assert len(data.unlabelled_set) == 3 and (data.unlabelled_set.labels == UNLABELLED).all()
    assert len(data.train_set) == 24  # the labelled images are all still labelled


def test_settings_that_do_not_go_together_are_refused(tmp_path):
    with pytest.raises(UserError, match="unlabelled_ratio=2 needs unlabelled images"):
        digits(samples_per_class=None).setup()
    with pytest.raises(UserError, match="unlabelled_ratio=-1 must be >= 0"):
        digits(unlabelled_ratio=-1)
    with pytest.raises(UserError, match="semi_supervised='fixmatch' learns from unlabelled images"):
        fit(tiny_model(), digits(unlabelled_ratio=0), tmp_path)
    with pytest.raises(UserError, match="only semi-supervised fine-tuning reads"):
        fit(tiny_model(semi_supervised="none"), digits(), tmp_path)
    with pytest.raises(UserError, match="strategy 'logistic_probe' trains nothing"):
        fit(tiny_model(strategy="logistic_probe"), digits(), tmp_path)
    with pytest.raises(UserError, match="threshold=1.5 must be in"):
        tiny_model(threshold=1.5)


class BatchRecorder(Callback):
    def __init__(self) -> None:
        self.shapes, self.logged = [], {}

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        self.shapes.append((tuple(batch["labelled"][0].shape), tuple(batch["unlabelled"][0].shape)))

    def on_train_epoch_end(self, trainer, model) -> None:
        self.logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.mark.parametrize("method", ["fixmatch", "pseudo_label"])
def test_a_semi_supervised_step_trains_on_ratio_times_as_many_unlabelled_images(tmp_path, method):
    seed_everything(0)
    recorder, model = BatchRecorder(), tiny_model(semi_supervised=method)
    trainer = fit(model, digits(), tmp_path, callbacks=[recorder])
    assert recorder.shapes[0] == ((8, 1, 28, 28), (16, 1, 28, 28))
    assert trainer.global_step == 8  # an epoch is the pool's length (limited here to 4 batches)
    assert recorder.logged["train/confident"] == 1.0  # threshold 0
    assert 0 <= recorder.logged["monitor/pseudo_label_acc"] <= 1
    assert recorder.logged["train/unlabelled_loss"] > 0


def test_frozen_batchnorm_keeps_the_starting_statistics_while_everything_else_trains(tmp_path):
    model = tiny_model(batchnorm="frozen")
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [norm.running_mean.clone() for norm in norms]
    conv_before = next(model.backbone.blocks()[0].parameters()).clone()
    fit(model, digits(), tmp_path, epochs=1)
    assert all(torch.equal(norm.running_mean, old) for norm, old in zip(norms, before, strict=True))
    assert not torch.equal(next(model.backbone.blocks()[0].parameters()), conv_before)


def test_resuming_gives_the_same_pseudo_labels_views_and_weights(tmp_path):
    # The pool's shuffle, the labelled loader's restarts, the views, distribution alignment and the EMA all continue.
    options = {"distribution_alignment": True, "threshold": 0.4}

    def ema():
        return EMAWeights(decay=0.9)

    seed_everything(3)
    straight = tiny_model(**options)
    fit(straight, digits(), tmp_path / "straight", epochs=3, callbacks=[ema()])

    class StopAfterFirstEpoch(Callback):
        def on_train_epoch_end(self, trainer, model) -> None:
            trainer.should_stop = True

    seed_everything(3)
    fit(tiny_model(**options), digits(), tmp_path / "cut", epochs=3, callbacks=[ema(), StopAfterFirstEpoch()])
    last = next((tmp_path / "cut").rglob("last.ckpt"))
    assert torch.load(last, weights_only=True)["epoch"] == 0
    seed_everything(3)
    resumed = tiny_model(**options)
    fit(resumed, digits(), tmp_path / "resumed", epochs=3, callbacks=[ema()], ckpt_path=str(last))
    assert torch.equal(straight.pool_prediction, resumed.pool_prediction)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_views_keep_the_shape_and_cutout_blanks_exactly_its_square():
    images = torch.rand(4, 3, 32, 32)
    generator = torch.Generator().manual_seed(0)
    assert weak_view(images, generator).shape == strong_view(images, generator).shape == images.shape
    ones = torch.ones(64, 1, 32, 32)
    cut = cutout(ones, generator, 8)
    blanked = (cut == 0.5).sum(dim=(1, 2, 3))
    assert blanked.max() == 64 and blanked.min() >= 16  # 8 × 8 inside the image, at least a quarter at a corner


def test_the_test_after_fit_measures_the_averaged_weights_the_best_epoch_was_chosen_by(tmp_path):
    seed_everything(0)
    model = tiny_model(threshold=0.5)
    trainer = fit(model, digits(), tmp_path, epochs=2, callbacks=[EMAWeights(decay=0.5)])
    trainer.test(model, datamodule=trainer.datamodule, ckpt_path="best", verbose=False)
    best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert not all(torch.equal(v, best["current_model_state"][k]) for k, v in best["state_dict"].items())
    for key, value in best["state_dict"].items():  # the averaged weights, not current_model_state
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.slow
def test_fixmatch_under_two_process_ddp_on_cpu_ends_with_identical_weights_on_both_ranks(tmp_path):
    # Each rank draws its own share of the pool and its own views; the gradients, the EMA and distribution
    # alignment's running mean (reduced over the ranks) keep the ranks' models one model.
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, f"--output_dir={tmp_path}"])
    (tmp_path / "rank_dump.py").write_text(RANK_DUMP)
    result = subprocess.run(
        [
            sys.executable, str(SCRIPTS / "finetune.py"), "--config", str(REPOSITORY / "configs/digits_finetune.yaml"),
            "--config", str(REPOSITORY / "configs/strategy/fixmatch.yaml"), *TINY_RUN, "--trainer.max_epochs=2",
            "--trainer.devices=2", "--trainer.strategy=ddp", "--model.distribution_alignment=true",
            f"--model.pretrained={tmp_path / 'digits_pretrain'}", f"--output_dir={tmp_path}",
            "--trainer.callbacks+=rank_dump.DumpWeights",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "RANK_DUMP_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = ranks_weights(tmp_path)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_fixmatch_from_scratch_trains_every_weight_from_random_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    configs = ["--config", str(REPOSITORY / "configs/digits_finetune.yaml"),
               "--config", str(REPOSITORY / "configs/strategy/fixmatch_scratch.yaml")]
    model = fit_and_test(TransferClassifier, [*configs, *TINY_RUN]).model
    assert model.hparams.pretrained is None and model.hparams.semi_supervised == "fixmatch"
    assert model.trainable_parameter_count(0) == sum(p.numel() for p in model.parameters())
