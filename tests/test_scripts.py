"""Both scripts end to end through the real config files, with tiny settings: outputs, resume, errors."""

from pathlib import Path
from typing import get_args

import pytest
import torch
from event_files import run_events, scalar_values
from tiny_settings import TINY_CNN, TINY_RUN

from project.checkpoints.files import find_checkpoint
from project.config.shipped import config_dir
from project.errors import UserError
from project.lab.study.main import main as study_main
from project.lab.tune.main import main as tune_main
from project.models import BackboneModule, ImageClassifier, TransferClassifier
from project.models.consistency import SemiSupervised
from project.training.run import fit_and_test, run_experiment

CONFIGS = config_dir()


def pretrain(*args: str) -> dict:
    return run_experiment(ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, *args])


def finetune(*args: str) -> dict:
    return run_experiment(TransferClassifier, "digits_finetune.yaml", [*TINY_RUN, *args])


def run_folder_files(run: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run)): path.read_bytes() for path in run.rglob("*") if path.is_file()}


def test_pretrain_then_finetune_with_the_default_configs(tmp_path):
    pretrain_metrics = pretrain()
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    assert (run / "config.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    best = list((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (run / "checkpoints" / "last.ckpt").is_file()
    logged = [event for event in run_events(run) if any(v.tag == "test/acc" for v in event.summary.value)]
    assert pretrain_metrics["test/acc"] == pytest.approx(scalar_values(logged, "test/acc")[-1])  # what TensorBoard has

    finetune_metrics = finetune()  # finds the pretraining checkpoint by itself
    fine_run = tmp_path / "lightning_logs" / "digits_finetune" / "version_0"
    checkpoint = torch.load(next((fine_run / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    expected = Path("lightning_logs/digits_pretrain/version_0/checkpoints") / best[0].name
    assert checkpoint["hyper_parameters"]["pretrained"] == str(expected)
    assert checkpoint["hyper_parameters"]["class_names"] == ["5", "6", "7", "8", "9"]
    assert checkpoint["state_dict"]["head.weight"].shape == (5, 16)
    assert set(finetune_metrics) == {"test/acc", "test/loss"}


def test_an_explicit_checkpoint_path_and_a_second_run_that_overwrites_nothing(tmp_path):
    pretrain()
    first = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    before = run_folder_files(first)
    pretrain("--seed_everything=7")
    assert (first.parent / "version_1" / "checkpoints" / "last.ckpt").is_file()
    assert run_folder_files(first) == before
    finetune(f"--model.pretrained={first / 'checkpoints' / 'last.ckpt'}", "--model.strategy=linear_probe")
    hparams = torch.load(
        tmp_path / "lightning_logs" / "digits_finetune" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )["hyper_parameters"]
    assert hparams["pretrained"].endswith("version_0/checkpoints/last.ckpt") and hparams["strategy"] == "linear_probe"


def test_resume_from_last_continues_the_epoch_count_and_steps(tmp_path):
    # Cosine, not the config's one-cycle: a one-cycle schedule is fixed to the first run's length.
    pretrain("--trainer.max_epochs=1", "--model.scheduler=cosine", "--trainer.log_every_n_steps=1")
    pretrain("--ckpt_path=last", "--trainer.max_epochs=2", "--model.scheduler=cosine", "--trainer.log_every_n_steps=1")
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    assert [p.name for p in run.parent.iterdir()] == ["version_0"]  # the resumed run continues its own folder
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * 3
    assert (run / "config.yaml").is_file() and (run / "config-resume-1.yaml").is_file()
    assert "max_epochs: 1" in (run / "config.yaml").read_text()  # the first run's config is kept as it was
    steps = sorted(step for events in run.glob("events.out.tfevents.*") for step in train_loss_steps(events))
    assert steps == sorted(set(steps)) and max(steps) >= 3  # one curve, continued after step 3


def test_resuming_a_finished_run_tests_it_and_changes_nothing_in_it(tmp_path, capsys):
    first = pretrain("--trainer.max_epochs=1")
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    again = pretrain("--ckpt_path=last", "--trainer.max_epochs=1")
    assert again == first  # the same selected checkpoint, tested on the same split
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
    assert "had trained its max_epochs=1 already: nothing is trained or written" in capsys.readouterr().out


def test_the_last_epoch_can_be_selected_and_needs_no_validation_split(tmp_path, capsys):
    metrics = pretrain("--model_selection=last_epoch", "--data.val_fraction=0")
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert find_checkpoint(run.parent, "best") == run / "checkpoints" / "last.ckpt"  # what fine-tuning takes
    assert "model_selection: last_epoch" in (run / "config.yaml").read_text()
    assert set(metrics) == {"test/acc", "test/loss"}
    assert "best ckpt" not in capsys.readouterr().out


def test_no_validation_split_with_best_val_selection_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="the validation split is empty .* --model_selection=last_epoch"):
        fit_and_test(ImageClassifier, ["--config", str(CONFIGS / "digits_pretrain.yaml"), *TINY_RUN,
                                       "--data.val_fraction=0"])
    assert not (tmp_path / "lightning_logs").exists()


def test_a_run_without_test_images_says_it_was_not_tested(tmp_path, capsys):
    assert pretrain("--data.test_fraction=0") == {}
    assert "test metrics: none: the test split is empty" in capsys.readouterr().out


def test_a_run_that_would_train_nothing_is_refused(tmp_path):
    with pytest.raises(UserError, match="max_epochs=0.*would train nothing"):
        fit_and_test(ImageClassifier, ["--config", str(CONFIGS / "digits_pretrain.yaml"), *TINY_RUN,
                                       "--trainer.max_epochs=0"])
    assert not (tmp_path / "lightning_logs").exists()


def train_loss_steps(events: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return [e.step for e in accumulator.Scalars("train/loss")] if "train/loss" in accumulator.Tags()["scalars"] else []


def test_imagefolder_data_runs_end_to_end(tmp_path, image_folder):
    metrics = pretrain("--data.dataset=imagefolder", f"--data.root={image_folder}", "--data.classes=null")
    checkpoint = torch.load(
        next((tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints").glob("best-*.ckpt")),
        weights_only=True,
    )
    assert checkpoint["hyper_parameters"]["input_shape"] == (3, 16, 16)
    assert checkpoint["hyper_parameters"]["class_names"] == sorted(p.name for p in Path(image_folder).iterdir())
    assert set(metrics) == {"test/acc", "test/loss"}


PAIR_FINETUNE_CONFIGS = [
    "digits_finetune.yaml", "cifar10_distant_finetune.yaml", "cifar10_related_finetune.yaml",
    "cifar10_simclr_finetune.yaml",
]
FINETUNE_CONFIGS = {*PAIR_FINETUNE_CONFIGS, "resnet18_imagefolder.yaml", "timm_convnext_imagefolder.yaml"}
STUDY_CONFIGS = {
    "study_digits.yaml", "study_cifar10_related.yaml", "study_cifar10_simclr.yaml", "study_cifar10_fixmatch.yaml",
}
TUNE_CONFIGS = {"tune_digits.yaml"}


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_config_file_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        if config in STUDY_CONFIGS:
            study_main(["--config", str(CONFIGS / config), "--print_config"])
        elif config in TUNE_CONFIGS:
            tune_main(["--config", str(CONFIGS / config), "--print_config"])
        else:
            model_class = TransferClassifier if config in FINETUNE_CONFIGS else BackboneModule
            run_experiment(model_class, config, ["--print_config"])
    assert exit_info.value.code == 0
    expected = "methods:" if config in STUDY_CONFIGS else "search_space:" if config in TUNE_CONFIGS else "experiment:"
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize("overlay", sorted(p.name for p in (CONFIGS / "strategy").glob("*.yaml")))
@pytest.mark.parametrize("base", PAIR_FINETUNE_CONFIGS)
def test_every_strategy_overlay_parses_after_each_finetune_config(base, overlay, capsys):
    args = ["--config", str(CONFIGS / base), "--config", str(CONFIGS / "strategy" / overlay), "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(TransferClassifier, base, args)
    assert exit_info.value.code == 0
    name = overlay.removesuffix(".yaml")  # a strategy, or a semi-supervised method (on a strategy of its own)
    method = next((method for method in get_args(SemiSupervised) if name.startswith(method)), None)
    assert (f"semi_supervised: {method}" if method else f"strategy: {name}") in capsys.readouterr().out


def test_a_shipped_config_is_found_as_configs_name_from_any_folder(tmp_path, capsys):
    assert not (tmp_path / "configs").exists()  # the test runs in an empty folder, not the repository
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(TransferClassifier, "digits_finetune.yaml",
                       ["--config", "configs/timm_convnext_imagefolder.yaml", "--print_config"])
    assert exit_info.value.code == 0 and "experiment: timm_convnext_imagefolder" in capsys.readouterr().out


def test_a_resume_asking_for_fewer_epochs_than_trained_is_refused_before_writing(tmp_path, capsys):
    pretrain("--trainer.max_epochs=2")
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        pretrain("--ckpt_path=last", "--trainer.max_epochs=1")
    assert exit_info.value.code == 2
    assert "with --trainer.max_epochs=1: it has trained 2 epochs already" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
