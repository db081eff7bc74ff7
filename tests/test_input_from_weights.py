"""The fine-tuning input comes from the pretrained weights: their mean/std reach the batches (timm, torchvision, a
pretraining run of this project used on another dataset), `--model.normalization=target` switches to the target
images' own, explicit --data.mean/--data.std win, the weights' size is the default, and resume keeps all of it."""

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from batch_recorder import FirstValidationBatch
from tiny_runs import best_checkpoint
from tiny_settings import TINY_RUN

from project.config.shipped import config_dir
from project.data import ImageDataModule
from project.data.batch_transforms import normalize
from project.models import TransferClassifier
from project.training.run import fit_and_test

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
RECORD = "--trainer.callbacks+=batch_recorder.FirstValidationBatch"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """State dicts saved from timm (trained under mean = std = 0.5, at 160 px) and torchvision (ImageNet's, 224)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet.r160_in1k").state_dict(), folder / "timm.pt")
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18.pt")
    return {"timm:test_resnet.r160_in1k": folder / "timm.pt", "resnet18": folder / "resnet18.pt"}


def library_finetune(root: Path, backbone: str, weights: Path, *more: str) -> list[str]:
    return ["--config", str(config_dir() / "resnet18_imagefolder.yaml"), f"--data.root={root}",
            f"--model.backbone={backbone}", f"--model.pretrained={weights}", "--data.cache_dir=null",
            "--data.batch_size=8", *TINY_RUN, "--trainer.max_epochs=2", RECORD, *more]


def first_validation_batch(result, mean: list[float], std: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(what the model received, the first validation images normalized with `mean` and `std`)."""
    received = FirstValidationBatch.images
    raw = result.datamodule.val_set.images[: len(received)]
    return received, normalize(raw, torch.tensor(mean), torch.tensor(std))


@pytest.mark.parametrize(("backbone", "mean", "std"), [
    ("timm:test_resnet.r160_in1k", [0.5] * 3, [0.5] * 3), ("resnet18", IMAGENET_MEAN, IMAGENET_STD)])
def test_the_weights_own_mean_and_std_reach_the_batches(image_folder, weights, backbone, mean, std):
    result = fit_and_test(TransferClassifier, library_finetune(image_folder, backbone, weights[backbone],
                                                               "--data.image_size=32"))
    received, expected = first_validation_batch(result, mean, std)
    torch.testing.assert_close(received, expected)
    assert result.model.preprocessing["mean"] == pytest.approx(mean)
    assert result.model.hparams.normalization == "pretrained"
    assert result.datamodule.hparams.mean == pytest.approx(mean)  # so config.yaml records what was used


def test_normalization_target_switches_to_the_target_images_own(image_folder, weights):
    backbone = "timm:test_resnet.r160_in1k"
    result = fit_and_test(TransferClassifier, library_finetune(
        image_folder, backbone, weights[backbone], "--data.image_size=32", "--model.normalization=target"))
    own_mean, own_std = own_statistics(result.datamodule)
    received, expected = first_validation_batch(result, own_mean, own_std)
    torch.testing.assert_close(received, expected)
    assert own_mean != pytest.approx([0.5] * 3, abs=1e-3)  # the target's statistics, not the weights'
    assert result.model.preprocessing["mean"] == pytest.approx(own_mean)


def test_explicit_mean_and_std_win_over_the_weights(image_folder, weights):
    backbone = "resnet18"
    result = fit_and_test(TransferClassifier, library_finetune(
        image_folder, backbone, weights[backbone], "--data.image_size=32", "--data.mean=[0.1, 0.2, 0.3]",
        "--data.std=[0.3, 0.3, 0.3]"))
    received, expected = first_validation_batch(result, [0.1, 0.2, 0.3], [0.3] * 3)
    torch.testing.assert_close(received, expected)


def test_the_weights_size_is_the_default_and_a_size_far_from_it_is_warned(image_folder, weights, capsys):
    backbone = "timm:test_resnet.r160_in1k"
    result = fit_and_test(TransferClassifier, library_finetune(image_folder, backbone, weights[backbone],
                                                               "--data.image_size=null"))
    assert tuple(result.model.hparams.input_shape) == (3, 160, 160)
    summary = capsys.readouterr().out
    assert "input:        3×160×160, mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]; size: the weights', normalized with " \
           "the pretrained weights' statistics (timm test_resnet.r160_in1k pretrained_cfg, the default for a " \
           "timm:test_resnet.r160_in1k state-dict file;" in summary
    with pytest.warns(UserWarning, match="--data.image_size=32 is far from the 160 px the pretrained weights"):
        fit_and_test(TransferClassifier, library_finetune(image_folder, backbone, weights[backbone],
                                                          "--data.image_size=32", "--experiment=small"))


def test_a_resumed_run_keeps_the_input_it_trained_under(image_folder, weights, tmp_path):
    backbone = "timm:test_resnet.r160_in1k"
    first = fit_and_test(TransferClassifier, library_finetune(image_folder, backbone, weights[backbone],
                                                              "--data.image_size=null", "--trainer.max_epochs=1"))
    moved = tmp_path / "weights_gone.pt"  # the source is not read again on resume: it may be gone
    resumed = fit_and_test(TransferClassifier, library_finetune(
        image_folder, backbone, moved, "--data.image_size=null", "--ckpt_path=last", "--trainer.max_epochs=2"))
    assert resumed.log_dir == first.log_dir and resumed.trainer.current_epoch == 2
    assert tuple(resumed.model.hparams.input_shape) == (3, 160, 160)
    received, expected = first_validation_batch(resumed, [0.5] * 3, [0.5] * 3)
    torch.testing.assert_close(received, expected)


def test_a_pretraining_run_used_on_another_dataset_normalizes_as_it_was_pretrained(pretrained_run, mnist_root):
    recorded = torch.load(best_checkpoint(pretrained_run), weights_only=True)["preprocessing"]
    mnist = ["--data.dataset=mnist", f"--data.root={mnist_root}", "--data.download=false", "--data.cache_dir=null",
             "--data.samples_per_class=2", f"--model.pretrained={pretrained_run}", *TINY_RUN, RECORD]
    result = fit_and_test(TransferClassifier, ["--config", str(config_dir() / "digits_finetune.yaml"), *mnist])
    received, expected = first_validation_batch(result, recorded["mean"], recorded["std"])
    torch.testing.assert_close(received, expected)

    target = fit_and_test(TransferClassifier, ["--config", str(config_dir() / "digits_finetune.yaml"), *mnist,
                                               "--model.normalization=target", "--experiment=target"])
    own_mean, own_std = own_statistics(target.datamodule)
    assert own_mean != pytest.approx(recorded["mean"], abs=1e-3)  # the tiny MNIST's are not the digits'
    received, expected = first_validation_batch(target, own_mean, own_std)
    torch.testing.assert_close(received, expected)


def own_statistics(data: ImageDataModule) -> tuple[list[float], list[float]]:
    """The mean and std a data module of the same settings computes of its own images, when none is given."""
    settings = {key: value for key, value in data.hparams.items() if not key.startswith("_")}
    fresh = ImageDataModule(**{**settings, "mean": None, "std": None})
    fresh.setup("fit")
    return fresh.mean.tolist(), fresh.std.tolist()
