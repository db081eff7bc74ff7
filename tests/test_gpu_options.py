"""channels_last and compile: the same outputs and the same checkpoint keys as the plain model (checked on CPU)."""

import torch

from project.models import ImageClassifier


def model(**options) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(backbone="cnn", input_shape=(3, 32, 32), num_classes=4, **options).eval()


def test_channels_last_gives_the_same_logits_and_state_dict_keys():
    plain, nhwc = model(), model(channels_last=True)
    nhwc.configure_model()
    conv = nhwc.backbone.features[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(images), plain(images), atol=1e-5, rtol=1e-5)
    assert nhwc.state_dict().keys() == plain.state_dict().keys()


def test_compile_keeps_the_checkpoint_keys_a_fine_tuning_run_reads():
    compiled = model(compile=True)
    compiled.configure_model()
    compiled.configure_model()  # Lightning may call it again (e.g. fit then test): compiled once
    assert compiled.state_dict().keys() == model().state_dict().keys()
    assert all(key.startswith(("backbone.", "head.")) for key in compiled.state_dict())
