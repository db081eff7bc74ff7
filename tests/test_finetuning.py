"""Fine-tuning strategies: which blocks train in which epoch, each group's lr, frozen BatchNorm, resume, DDP."""

import subprocess
import sys

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from rank_weights import RANK_DUMP, ranks_weights
from tiny_settings import SCRIPTS, TINY_BACKBONE, TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.errors import UserError
from project.feature_probes.logistic import fit_logistic_probe
from project.models import ImageClassifier, TransferClassifier
from project.models.finetuning_plan import FinetuningPlan
from project.training.callbacks.defaults import default_callbacks
from project.training.run import run_experiment

PLAN_DEFAULTS = {
    "backbone_lr_ratio": 1.0, "layer_decay": 1.0, "unfreeze_at": (5,), "lp_fraction": 0.5, "ft_lr_ratio": 0.1,
}


def make_plan(strategy: str, **options) -> FinetuningPlan:
    return FinetuningPlan(strategy=strategy, num_blocks=3, **{**PLAN_DEFAULTS, **options})


@pytest.mark.parametrize(
    ("strategy", "options", "trainable_by_epoch"),
    [
        ("linear_probe", {}, [0, 0, 0, 0]),
        ("full", {}, [3, 3, 3, 3]),
        ("gradual", {"unfreeze_at": (2,)}, [0, 0, 3, 3]),
        ("gradual", {"unfreeze_at": (1, 2)}, [0, 1, 3, 3]),  # the last milestone unfreezes the rest
        ("gradual", {"unfreeze_at": (1, 2, 3)}, [0, 1, 2, 3]),
        ("lp_ft", {"lp_fraction": 0.5, "total_epochs": 4}, [0, 0, 3, 3]),
        ("lp_ft", {"lp_fraction": 0.25, "total_epochs": 4}, [0, 3, 3, 3]),  # the probe phase scales with the run
        ("lp_ft", {"lp_fraction": 0.0, "total_epochs": 4}, [3, 3, 3, 3]),  # the probe is fit before training
    ],
)
def test_plan_says_how_many_top_blocks_train_in_each_epoch(strategy, options, trainable_by_epoch):
    plan = make_plan(strategy, **options)
    assert [plan.trainable_blocks(epoch) for epoch in range(4)] == trainable_by_epoch


def test_plan_lr_scales_discriminative_layer_decay_and_lp_ft_drop():
    plan = make_plan("full", backbone_lr_ratio=0.1, layer_decay=0.5)
    assert [plan.block_lr_scale(block, 0) for block in range(3)] == pytest.approx([0.025, 0.05, 0.1])
    lp_ft = make_plan("lp_ft", lp_fraction=0.5, total_epochs=2, ft_lr_ratio=0.2)
    assert (lp_ft.head_lr_scale(0), lp_ft.block_lr_scale(2, 0)) == (1.0, 0.0)
    assert (lp_ft.head_lr_scale(1), lp_ft.block_lr_scale(2, 1)) == (0.2, 0.2)


def test_new_blocks_train_from_the_start_at_the_head_lr_and_the_strategy_plans_the_rest():
    probe = make_plan("linear_probe", new_blocks=1)
    assert [probe.trainable_blocks(epoch) for epoch in range(3)] == [1, 1, 1]
    assert [probe.block_lr_scale(block, 0) for block in range(3)] == [0.0, 0.0, 1.0]
    gradual = make_plan("gradual", new_blocks=1, unfreeze_at=(1, 2))
    assert [gradual.trainable_blocks(epoch) for epoch in range(3)] == [1, 2, 3]
    full = make_plan("full", new_blocks=1, backbone_lr_ratio=0.1, layer_decay=0.5)
    assert [full.block_lr_scale(block, 0) for block in range(3)] == pytest.approx([0.05, 0.1, 1.0])
    lp_ft = make_plan("lp_ft", new_blocks=1, lp_fraction=0.5, total_epochs=2, ft_lr_ratio=0.2)
    assert [lp_ft.block_lr_scale(block, 0) for block in range(3)] == [0.0, 0.0, 1.0]
    assert [lp_ft.block_lr_scale(block, 1) for block in range(3)] == pytest.approx([0.2, 0.2, 0.2])


class EpochRecorder(Callback):
    """Per epoch: which backbone blocks changed (weights or BatchNorm buffers) and every group's lr."""

    def __init__(self) -> None:
        self.changed: list[list[int]] = []
        self.lrs: list[dict[str, float]] = []

    def on_train_epoch_start(self, trainer, model) -> None:
        self.before = [{k: v.clone() for k, v in block.state_dict().items()} for block in model.backbone.blocks()]

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        if batch_idx == 0:  # the lr the epoch's first step uses
            self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    def on_train_epoch_end(self, trainer, model) -> None:
        self.changed.append([
            index for index, (block, before) in enumerate(zip(model.backbone.blocks(), self.before, strict=True))
            if any(not torch.equal(v, before[k]) for k, v in block.state_dict().items())
        ])


def fit(
    model: TransferClassifier, epochs: int, callbacks=(), ckpt_path: str | None = None, augment: bool = False,
    **trainer_args,
) -> Trainer:
    data = ImageDataModule(classes=[5, 6, 7], samples_per_class=16, batch_size=16, augment=augment)
    trainer = Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=1, num_sanity_val_steps=0,
        callbacks=[*callbacks, *default_callbacks(with_lr_monitor=False)], **trainer_args,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def tiny_model(**options) -> TransferClassifier:
    options = {"scheduler": "none", "lr": 0.1, "backbone_args": TINY_BACKBONE, **options}
    return TransferClassifier(backbone="cnn", num_classes=3, **options)


@pytest.mark.parametrize(
    ("strategy", "options", "changed_by_epoch"),
    [
        ("linear_probe", {}, [[], [], []]),
        ("full", {}, [[0, 1, 2], [0, 1, 2], [0, 1, 2]]),
        ("gradual", {"unfreeze_at": [1, 2, 3]}, [[], [2], [1, 2]]),
        ("lp_ft", {"lp_fraction": 0.67}, [[], [], [0, 1, 2]]),
    ],
)
def test_each_strategy_trains_exactly_the_planned_blocks_in_each_epoch(tmp_path, strategy, options, changed_by_epoch):
    recorder = EpochRecorder()
    model = tiny_model(strategy=strategy, **options)
    head_before = model.head.weight.clone()
    fit(model, epochs=3, callbacks=[recorder], default_root_dir=tmp_path)
    assert recorder.changed == changed_by_epoch  # weights and BatchNorm statistics alike
    assert not torch.equal(model.head.weight, head_before)


def test_each_groups_lr_per_epoch_follows_the_plan(tmp_path):
    recorder = EpochRecorder()
    model = tiny_model(strategy="gradual", unfreeze_at=[1, 2], backbone_lr_ratio=0.5, layer_decay=0.5)
    fit(model, epochs=3, callbacks=[recorder], default_root_dir=tmp_path)
    names = ["head", "backbone.block0", "backbone.block1", "backbone.block2"]
    assert [[lrs[name] for name in names] for lrs in recorder.lrs] == [
        pytest.approx([0.1, 0.0, 0.0, 0.0]),
        pytest.approx([0.1, 0.0, 0.0, 0.05]),
        pytest.approx([0.1, 0.0125, 0.025, 0.05]),
    ]


def test_lp_ft_lowers_every_lr_when_fine_tuning_starts(tmp_path):
    recorder = EpochRecorder()
    fit(tiny_model(strategy="lp_ft", lp_fraction=0.5, ft_lr_ratio=0.1), epochs=2, callbacks=[recorder],
        default_root_dir=tmp_path)
    assert recorder.lrs[0]["head"] == pytest.approx(0.1) and recorder.lrs[0]["backbone.block2"] == 0
    assert recorder.lrs[1]["head"] == pytest.approx(0.01) and recorder.lrs[1]["backbone.block0"] == pytest.approx(0.01)


def test_lp_ft_gives_each_phase_a_cosine_schedule_of_its_own(tmp_path):
    """The fine-tuning phase starts from the (lowered) peak, not from the tail of the probe's decay."""
    recorder = EpochRecorder()
    fit(tiny_model(strategy="lp_ft", lp_fraction=0.5, ft_lr_ratio=0.1, scheduler="cosine"), epochs=4,
        callbacks=[recorder], default_root_dir=tmp_path)
    # Each epoch's first step: the probe phase at progress 0 and 0.5 of its cosine, then fine-tuning the same.
    assert [lrs["head"] for lrs in recorder.lrs] == pytest.approx([0.1, 0.05, 0.01, 0.005])
    assert [lrs["backbone.block0"] for lrs in recorder.lrs] == pytest.approx([0.0, 0.0, 0.01, 0.005])


class HeadAndFeaturesAtStart(Callback):
    """The head, and the backbone's features of every training image, when the first step is about to run."""

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        if trainer.global_step or hasattr(self, "head"):
            return
        self.head = model.head.weight.detach().clone()
        model.backbone.eval()
        with torch.no_grad():
            batches = list(trainer.datamodule.ordered_batches("train", "cpu"))
            self.features = torch.cat([model.backbone(images) for images, _ in batches])
            self.labels = torch.cat([labels for _, labels in batches])
        model.train()


def test_lp_ft_with_lp_fraction_0_starts_from_the_logistic_probe_and_fine_tunes_everything(tmp_path):
    seed_everything(3)
    start, recorder = HeadAndFeaturesAtStart(), EpochRecorder()
    model = tiny_model(strategy="lp_ft", lp_fraction=0.0, ft_lr_ratio=0.5)
    fit(model, epochs=2, callbacks=[start, recorder], default_root_dir=tmp_path)
    probe = fit_logistic_probe(start.features, start.labels, seed=3)
    torch.testing.assert_close(start.head, probe.weight)  # the probe phase: the logistic probe, before any step
    assert recorder.changed == [[0, 1, 2], [0, 1, 2]]  # then everything trains, from the first epoch
    assert recorder.lrs[0]["head"] == pytest.approx(0.05) and recorder.lrs[0]["backbone.block0"] == pytest.approx(0.05)


def test_probe_views_without_a_logistic_probe_are_named_as_having_no_effect(tmp_path):
    with pytest.warns(UserWarning, match="probe_views=2 has no effect: strategy 'full' fits no logistic probe"):
        fit(tiny_model(strategy="full", probe_views=2), epochs=1, default_root_dir=tmp_path)


def test_the_logistic_probe_without_a_data_module_is_a_clear_error(tmp_path):
    data = ImageDataModule(classes=[5, 6, 7], samples_per_class=4, batch_size=4)
    data.setup()
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)
    with pytest.raises(UserError, match="the logistic probe reads its training images from the data module"):
        trainer.fit(tiny_model(strategy="logistic_probe"), train_dataloaders=data.train_dataloader())


class StopAfterEpoch(Callback):
    """Ends the run after `epoch` as an interruption would (the last checkpoint is written first)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, model) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_resuming_in_the_middle_of_a_gradual_schedule_ends_with_the_same_weights(tmp_path):
    # Shuffling, crop/flip augmentation and dropout all draw random numbers: each must continue exactly.
    options = {
        "strategy": "gradual", "unfreeze_at": [1, 2], "scheduler": "cosine",
        "backbone_args": {**TINY_BACKBONE, "dropout": 0.3},
    }
    seed_everything(3)
    straight = tiny_model(**options)
    fit(straight, epochs=4, augment=True, default_root_dir=tmp_path / "straight", deterministic=True)

    seed_everything(3)
    fit(tiny_model(**options), epochs=4, callbacks=[StopAfterEpoch(1)], augment=True,
        default_root_dir=tmp_path / "cut", deterministic=True)
    last = next((tmp_path / "cut").rglob("last.ckpt"))
    assert torch.load(last, weights_only=True)["epoch"] == 1
    seed_everything(3)
    resumed = tiny_model(**options)
    fit(resumed, epochs=4, augment=True, default_root_dir=tmp_path / "resumed", deterministic=True,
        ckpt_path=str(last))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_bad_plan_values_are_refused():
    with pytest.raises(UserError, match="unfreeze_at"):
        tiny_model(strategy="gradual", unfreeze_at=[3, 1])
    with pytest.raises(UserError) as refused:  # only the wrong values are named
        tiny_model(layer_decay=0)
    assert str(refused.value) == "layer_decay=0 must be in (0, 1]"
    with pytest.raises(UserError) as refused:
        tiny_model(layer_decay=2, lp_fraction=1.0)
    assert str(refused.value) == "layer_decay=2 must be in (0, 1]; lp_fraction=1.0 must be in [0, 1)"


@pytest.mark.slow
def test_gradual_under_two_process_ddp_on_cpu_ends_with_identical_weights_on_both_ranks(tmp_path):
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, f"--output_dir={tmp_path}"])
    (tmp_path / "rank_dump.py").write_text(RANK_DUMP)
    result = subprocess.run(
        [
            sys.executable, str(SCRIPTS / "finetune.py"), *TINY_RUN,
            "--trainer.max_epochs=3", "--trainer.devices=2", "--trainer.strategy=ddp",
            "--model.strategy=gradual", "--model.unfreeze_at=[1, 2]",
            f"--model.pretrained={tmp_path / 'digits_pretrain'}", f"--output_dir={tmp_path}",
            "--trainer.callbacks+=rank_dump.DumpWeights",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path), "RANK_DUMP_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = ranks_weights(tmp_path)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    checkpoints = sorted(path.name for path in (tmp_path / "digits_finetune").rglob("*.ckpt"))
    assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt"  # written once, by rank 0
