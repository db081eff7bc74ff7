"""The checkpoint handoff from pretraining to fine-tuning, and what each strategy trains."""

import re
from pathlib import Path

import pytest
import torch
from code_payload import save_code_carrying_checkpoint
from lightning.pytorch import Trainer
from tiny_settings import TINY_BACKBONE

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.data import ImageDataModule
from project.errors import UserError
from project.models import TransferClassifier


@pytest.fixture
def pretrained(pretrained_run: Path) -> Path:
    """The best checkpoint of the session's tiny pretraining run (digits 0-4)."""
    return find_checkpoint(pretrained_run, "best")


def target_data(**overrides) -> ImageDataModule:
    data = ImageDataModule(classes=[5, 6, 7], samples_per_class=8, batch_size=8, **overrides)
    data.setup()
    return data


def transfer_model(pretrained: Path, **overrides) -> TransferClassifier:
    return TransferClassifier.from_pretrained(str(pretrained), num_classes=3, input_shape=(1, 28, 28), **overrides)


def train_steps(model: TransferClassifier, steps: int = 3) -> None:
    trainer = Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )
    trainer.fit(model, datamodule=target_data())


def clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_backbone_starts_as_the_pretrained_one_under_a_new_head(pretrained):
    checkpoint = load_checkpoint(pretrained)
    model = transfer_model(pretrained)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][f"backbone.{key}"]), key
    assert model.head.out_features == 3 and checkpoint["state_dict"]["head.weight"].shape[0] == 5
    assert model.hparams.backbone == "cnn"
    assert model.hparams.backbone_args == checkpoint["hyper_parameters"]["backbone_args"]
    assert model.hparams.pretrained == str(pretrained)


def test_linear_probe_changes_the_head_only_and_keeps_batchnorm_statistics(pretrained):
    model = transfer_model(pretrained, strategy="linear_probe")
    backbone_before, head_before = clone_state(model.backbone), clone_state(model.head)
    train_steps(model)
    for key, value in model.backbone.state_dict().items():  # weights and BatchNorm running stats alike
        assert torch.equal(value, backbone_before[key]), key
    assert not torch.equal(model.head.weight, head_before["weight"])


def test_full_fine_tuning_changes_the_backbone(pretrained):
    model = transfer_model(pretrained, strategy="full")
    before = clone_state(model.backbone)
    train_steps(model)
    changed = [key for key, value in model.backbone.state_dict().items() if not torch.equal(value, before[key])]
    assert "features.0.0.weight" in changed and "fc.2.weight" in changed


def test_scratch_baseline_has_the_same_architecture_but_fresh_weights(pretrained):
    checkpoint = load_checkpoint(pretrained)
    args = checkpoint["hyper_parameters"]["backbone_args"]
    scratch = TransferClassifier(pretrained=None, backbone="cnn", backbone_args=args, num_classes=3)
    assert scratch.backbone.state_dict().keys() == transfer_model(pretrained).backbone.state_dict().keys()
    pretrained_stem = checkpoint["state_dict"]["backbone.features.0.0.weight"]
    assert not torch.equal(scratch.backbone.features[0][0].weight, pretrained_stem)


def test_reinit_blocks_keeps_the_lower_blocks_and_starts_the_top_ones_afresh(pretrained):
    saved = load_checkpoint(pretrained)["state_dict"]
    keep_trunk = transfer_model(pretrained, reinit_blocks=1).backbone.state_dict()
    for key, value in keep_trunk.items():  # the conv trunk is the pretrained one, fc512 is not
        assert torch.equal(value, saved[f"backbone.{key}"]) == key.startswith("features."), key
    keep_stem = transfer_model(pretrained, reinit_blocks=2).backbone
    assert torch.equal(keep_stem.features[0][0].weight, saved["backbone.features.0.0.weight"])
    second_bn = keep_stem.features[1][1]  # its running statistics are reset too, not only the weights
    assert saved["backbone.features.1.1.running_mean"].abs().sum() > 0
    assert not second_bn.running_mean.any() and (second_bn.running_var == 1).all()


def test_a_linear_probe_trains_the_reinitialized_block_with_the_head_and_nothing_below(pretrained):
    model = transfer_model(pretrained, strategy="linear_probe", reinit_blocks=1)
    before = clone_state(model.backbone)
    train_steps(model)
    after = model.backbone.state_dict()
    changed = {key.split(".")[0] for key, value in after.items() if not torch.equal(value, before[key])}
    assert changed == {"fc"}  # the conv trunk's weights and BatchNorm statistics are untouched


def test_reinit_blocks_leaves_the_scratch_baseline_alone_and_is_range_checked(pretrained):
    args = load_checkpoint(pretrained)["hyper_parameters"]["backbone_args"]
    torch.manual_seed(0)
    plain = TransferClassifier(pretrained=None, backbone="cnn", backbone_args=args, num_classes=3)
    torch.manual_seed(0)
    reinit = TransferClassifier(pretrained=None, backbone="cnn", backbone_args=args, num_classes=3, reinit_blocks=1)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, reinit.state_dict()[key]), key
    for bad in (-1, 4):  # the CNN has 3 blocks: two conv blocks and fc512
        with pytest.raises(UserError, match=f"reinit_blocks={bad} must be between 0 and the backbone's 3 blocks"):
            transfer_model(pretrained, reinit_blocks=bad)


def test_run_and_experiment_folders_resolve_to_the_newest_best_checkpoint(pretrained):
    run_folder = pretrained.parent.parent
    assert find_checkpoint(run_folder, "best") == pretrained
    assert find_checkpoint(run_folder / "checkpoints", "best") == pretrained
    assert find_checkpoint(run_folder.parent, "best") == pretrained
    assert find_checkpoint(run_folder.parent, "last").name == "last.ckpt"


def test_checkpoint_of_another_architecture_is_refused(pretrained):
    with pytest.raises(UserError, match="holds a 'cnn' backbone.*asks for 'mlp'"):
        transfer_model(pretrained, backbone="mlp")


def test_data_of_another_shape_is_refused_with_the_fix(pretrained):
    with pytest.raises(UserError, match="--data.channels=1 --data.image_size=28"):
        TransferClassifier.from_pretrained(str(pretrained), num_classes=3, input_shape=(3, 32, 32))


def test_missing_checkpoint_and_empty_experiment_folder_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TransferClassifier.from_pretrained(str(tmp_path / "nope.ckpt"), num_classes=3)
    (tmp_path / "experiment" / "version_0").mkdir(parents=True)
    with pytest.raises(UserError, match="no best checkpoint.*scripts/pretrain.py"):
        TransferClassifier.from_pretrained(str(tmp_path / "experiment"), num_classes=3)


def test_a_model_that_names_a_source_but_never_received_its_weights_refuses_to_train(pretrained):
    """The module does no file I/O, so `pretrained=` alone would silently train random weights: refused."""
    model = TransferClassifier(pretrained=str(pretrained), backbone_args=TINY_BACKBONE, num_classes=3)
    with pytest.raises(UserError, match="its weights were never loaded.*from_pretrained"):
        train_steps(model)


def test_a_file_that_is_not_a_checkpoint_is_named_in_the_error(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.ckpt.*not a readable checkpoint"):
        load_checkpoint(path)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(UserError, match="truncated.ckpt"):
        load_checkpoint(truncated)


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    save_code_carrying_checkpoint(path, marker)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(("strategy", "named"), [
    ({"strategy": "logistic_probe"}, "strategy 'logistic_probe')"),
    ({"strategy": "lp_ft", "lp_fraction": 0.0}, "strategy 'lp_ft' with lp_fraction 0)"),
])
def test_a_head_fit_as_the_logistic_probe_refuses_fresh_blocks_under_it(pretrained, strategy, named):
    with pytest.raises(UserError, match=re.escape(f"reinit_blocks must be 0 when the head starts as the logistic "
                                                  f"probe ({named}: the probe would be fit on the fresh blocks'")):
        transfer_model(pretrained, reinit_blocks=1, **strategy)
    transfer_model(pretrained, reinit_blocks=1, strategy="lp_ft", lp_fraction=0.3)  # an SGD probe phase trains them
