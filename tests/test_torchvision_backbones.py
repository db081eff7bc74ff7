"""torchvision zoo backbones: local weights, grayscale stems, offline errors, and fine-tuning through the script."""

import pytest
import torch
import torchvision
from tiny_settings import TINY_RUN

from project.backbones import LibraryBackbone, TorchvisionBackbone, build_backbone
from project.backbones.torchvision_zoo import weights_input as torchvision_weights_input
from project.checkpoints.pretrained import PretrainedBackbone
from project.config.shipped import config_dir
from project.errors import UserError
from project.models import TransferClassifier
from project.training.run import run_experiment


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A resnet18 state dict on disk, as a user would save ImageNet weights for an offline machine."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("arch", "features"),
    [("resnet18", 512), ("resnet50", 2048), ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280)],
)
def test_zoo_backbones_return_pooled_features_without_their_classifier(arch, features):
    backbone = build_backbone(arch, (3, 32, 32))
    assert isinstance(backbone, LibraryBackbone) and backbone.any_input_size
    assert backbone.out_features == features
    assert backbone.eval()(torch.rand(2, 3, 32, 32)).shape == (2, features)
    in_blocks = [id(p) for block in backbone.blocks() for p in block.parameters()]
    assert len(in_blocks) == len(set(in_blocks))  # no weight in two blocks
    assert all(id(p) in in_blocks for p in backbone.parameters())  # blocks cover every weight


@pytest.mark.parametrize(("weights", "size"), [("IMAGENET1K_V1", 224), ("DEFAULT", 224)])
def test_torchvision_weights_say_the_input_they_were_trained_under(weights, size):
    expected = torchvision.models.ResNet50_Weights.IMAGENET1K_V2 if weights == "DEFAULT" else \
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    spec = torchvision_weights_input("resnet50", weights)
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225) and spec.image_size == size
    assert spec.origin == f"torchvision ResNet50_Weights.{expected.name}"


def test_torchvision_weights_without_a_torchvision_backbone_name_the_choices():
    with pytest.raises(UserError, match="names torchvision weights but --model.backbone is None: set it to the "
                                        "torchvision architecture they are for, one of \\['resnet18'"):
        PretrainedBackbone.open("torchvision:IMAGENET1K_V1", None)


def test_weights_from_a_local_file_are_loaded_exactly(resnet18_file):
    saved = torch.load(resnet18_file, weights_only=True)
    source = PretrainedBackbone.open(str(resnet18_file), "resnet18")
    backbone = TorchvisionBackbone((3, 32, 32), "resnet18")
    report = source.copy_into(backbone)
    state = backbone.model.state_dict()
    assert state.keys() == {key for key in saved if not key.startswith("fc.")}
    assert all(torch.equal(state[key], saved[key]) for key in state)
    assert f"{len(state)} pretrained tensors reused" in report and str(resnet18_file) in report


def test_grayscale_stem_gives_the_output_of_the_image_replicated_to_three_channels(resnet18_file):
    source = PretrainedBackbone.open(str(resnet18_file), "resnet18")
    rgb, gray = TorchvisionBackbone((3, 32, 32), "resnet18"), TorchvisionBackbone((1, 32, 32), "resnet18")
    source.copy_into(rgb)
    assert "summing its filters" in source.copy_into(gray) and gray.model.conv1.in_channels == 1
    images = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gray.eval()(images), rgb.eval()(images.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(UserError, match="unknown weights 'NOPE' for resnet18: choose one of \\['IMAGENET1K_V1'"):
        PretrainedBackbone.open("torchvision:NOPE", "resnet18")


def test_torchvision_weights_need_a_torchvision_backbone(resnet18_file):
    with pytest.raises(UserError, match="not a checkpoint of this project .* set --model.backbone to its architecture"):
        PretrainedBackbone.open(str(resnet18_file), "cnn")


def test_a_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache, so the weights must be downloaded
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there: the connection is refused
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with pytest.raises(UserError, match="could not download resnet18 weights IMAGENET1K_V1.*--model.pretrained=file"):
        PretrainedBackbone.open("torchvision:IMAGENET1K_V1", "resnet18")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        PretrainedBackbone.open(str(tmp_path / "none.pt"), "resnet18")


def test_the_resnet18_config_fine_tunes_on_an_image_folder_offline(tmp_path, image_folder, resnet18_file):
    metrics = run_experiment(
        TransferClassifier, "unused",
        ["--config", str(config_dir() / "resnet18_imagefolder.yaml"), *TINY_RUN, f"--data.root={image_folder}",
         "--data.image_size=32", f"--model.pretrained={resnet18_file}"],
    )
    run = tmp_path / "lightning_logs" / "resnet18_imagefolder" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["state_dict"]["head.weight"].shape == (3, 512)
    assert checkpoint["provenance"]["pretrained_checkpoint"] == str(resnet18_file)
    saved = torch.load(resnet18_file, weights_only=True)
    # LP-FT's first epoch is a linear probe: the ImageNet backbone (and its BatchNorm statistics) is untouched.
    key = "layer4.1.bn2.running_var"
    assert torch.equal(checkpoint["state_dict"][f"backbone.model.{key}"], saved[key])
    assert set(metrics) == {"test/acc", "test/loss"}
