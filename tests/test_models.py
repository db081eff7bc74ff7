"""Backbones: feature shapes, layer sizes for each input shape, and the registry's errors."""

import pytest
import torch
from torch import nn

from project.backbones import BACKBONES, Backbone, CNNBackbone, MLPBackbone, TorchvisionBackbone, build_backbone
from project.errors import UserError


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]


def test_mlp_is_the_articles_784_128_64_stack():
    model = MLPBackbone((1, 28, 28))
    sizes = [(layer.in_features, layer.out_features) for layer in linear_layers(model)]
    assert sizes == [(784, 128), (128, 64)]
    assert model.out_features == 64
    features = model(torch.rand(5, 1, 28, 28))
    assert features.shape == (5, 64)
    assert (features >= 0).all()  # ends in ReLU: pooled features, not logits


def test_mlp_custom_hidden_sizes_and_input_shape():
    model = MLPBackbone((3, 8, 8), hidden_sizes=(32, 16, 8))
    sizes = [(layer.in_features, layer.out_features) for layer in linear_layers(model)]
    assert sizes == [(192, 32), (32, 16), (16, 8)]
    assert model.out_features == 8
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 8)


@pytest.mark.parametrize(
    ("input_shape", "flat_size"), [((1, 28, 28), 64 * 7 * 7), ((3, 32, 32), 64 * 8 * 8)], ids=["mnist", "cifar"]
)
def test_cnn_flatten_size_follows_the_input_shape(input_shape, flat_size):
    model = CNNBackbone(input_shape)
    first_linear = linear_layers(model)[0]
    assert (first_linear.in_features, first_linear.out_features) == (flat_size, 512)
    assert model.out_features == 512
    assert model.features[0][0].in_channels == input_shape[0]
    model.eval()
    assert model(torch.rand(4, *input_shape)).shape == (4, 512)


def test_cnn_custom_channels_feature_size_and_no_batch_norm():
    model = CNNBackbone((3, 32, 32), channels=(8, 16, 32), feature_size=100, batch_norm=False, dropout=0.5)
    convs = [layer for layer in model.modules() if isinstance(layer, nn.Conv2d)]
    assert [(conv.in_channels, conv.out_channels) for conv in convs] == [(3, 8), (8, 16), (16, 32)]
    assert all(conv.bias is not None for conv in convs)  # no BatchNorm to absorb the bias
    assert not any(isinstance(layer, nn.BatchNorm2d) for layer in model.modules())
    first_linear = linear_layers(model)[0]
    assert first_linear.in_features == 32 * 4 * 4  # three 2×2 pools: 32 -> 4
    assert model.out_features == 100
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 100)


def test_cnn_batch_norm_blocks_have_bias_free_convs():
    model = CNNBackbone((1, 28, 28))
    convs = [layer for layer in model.modules() if isinstance(layer, nn.Conv2d)]
    norms = [layer for layer in model.modules() if isinstance(layer, nn.BatchNorm2d)]
    assert [norm.num_features for norm in norms] == [32, 64]
    assert all(conv.bias is None for conv in convs)


def test_cnn_construction_leaves_batch_norm_statistics_at_their_defaults():
    """Building the model (its flatten-size dry run included) must not feed data into BatchNorm's running stats."""
    model = CNNBackbone((1, 28, 28))
    norms = [layer for layer in model.modules() if isinstance(layer, nn.BatchNorm2d)]
    assert [int(norm.num_batches_tracked) for norm in norms] == [0, 0]
    assert [norm.running_mean.abs().max().item() for norm in norms] == [0.0, 0.0]
    assert [norm.running_var.unique().tolist() for norm in norms] == [[1.0], [1.0]]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_build_backbone_by_name_accepts_a_list_shape_from_a_config(name):
    model = build_backbone(name, [1, 28, 28])
    expected = {"mlp": MLPBackbone, "cnn": CNNBackbone}.get(name, TorchvisionBackbone)
    assert isinstance(model, expected) and isinstance(model, Backbone)  # the written contract
    assert tuple(model.input_shape) == (1, 28, 28)
    model.eval()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, model.out_features)


def test_build_backbone_passes_args():
    model = build_backbone("mlp", (1, 28, 28), {"hidden_sizes": [32]})
    assert model.out_features == 32
    assert [(layer.in_features, layer.out_features) for layer in linear_layers(model)] == [(784, 32)]


def test_build_backbone_unknown_name_raises_user_error_listing_choices():
    with pytest.raises(UserError, match="resnet") as error:
        build_backbone("resnet", (1, 28, 28))
    assert "cnn" in str(error.value) and "mlp" in str(error.value)


def test_build_backbone_bad_args_raise_user_error_naming_them():
    with pytest.raises(UserError, match="depth") as error:
        build_backbone("cnn", (1, 28, 28), {"depth": 3})
    assert "cnn" in str(error.value)


def test_build_backbone_rejects_images_too_small_for_the_conv_stack():
    """Too many 2×2 pools for the image size is a config mistake: a UserError, not a torch traceback."""
    with pytest.raises(UserError):
        build_backbone("cnn", (1, 4, 4), {"channels": [8, 8, 8]})
