"""`--model.test_time_flip`: evaluation predicts from each image and its mirror image, wherever the model is used."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import best_checkpoint
from tiny_settings import TINY_BACKBONE, TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.evaluation.evaluate import main as evaluate_main
from project.evaluation.export import main as export_main
from project.models import ImageClassifier
from project.training.run import run_experiment


def unflipped_logits(model: ImageClassifier, images: torch.Tensor) -> torch.Tensor:
    return model.head(model.backbone(images))


def test_evaluation_logits_are_the_mean_of_the_image_and_its_mirror_and_training_sees_the_image_alone():
    torch.manual_seed(0)
    model = ImageClassifier(backbone="cnn", backbone_args=TINY_BACKBONE, input_shape=(3, 16, 16), num_classes=3,
                            test_time_flip=True)
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        model.eval()
        expected = (unflipped_logits(model, images) + unflipped_logits(model, images.flip(-1))) / 2
        torch.testing.assert_close(model(images), expected)
        assert not torch.allclose(model(images), unflipped_logits(model, images))  # the mirror changed something
        model.train()
        torch.testing.assert_close(model(images), unflipped_logits(model, images))


@pytest.fixture
def flip_run(tmp_path: Path, make_image_folder) -> Path:
    """A tiny colour run trained with crops and flips and `test_time_flip=true`: its run folder."""
    root = make_image_folder(tmp_path / "images", per_class=20)
    run_experiment(ImageClassifier, "cifar10_cnn.yaml", [
        *TINY_RUN, TINY_CNN, "--data.dataset=imagefolder", f"--data.root={root}", "--data.val_fraction=0.2",
        "--data.test_fraction=0.25", "--data.batch_size=8", "--model.test_time_flip=true",
        f"--output_dir={tmp_path / 'logs'}",
    ])
    return tmp_path / "logs" / "cifar10_cnn" / "version_0"


def test_evaluate_and_the_exported_files_predict_from_both_images(flip_run, tmp_path):
    checkpoint = best_checkpoint(flip_run)
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    assert model.hparams.test_time_flip
    settings = torch.load(checkpoint, weights_only=True)["datamodule_hyper_parameters"]
    data = ImageDataModule(**{key: value for key, value in settings.items() if not key.startswith("_")})
    data.setup("test")
    images, labels = map(torch.cat, zip(*data.ordered_batches("test", "cpu"), strict=True))
    with torch.no_grad():
        mirrored = (unflipped_logits(model, images) + unflipped_logits(model, images.flip(-1))) / 2

    evaluate_main(["--ckpt_path", str(flip_run), "--device=cpu", f"--output_dir={tmp_path / 'evaluation'}"])
    results = json.loads(next((tmp_path / "evaluation").glob("*.json")).read_text())
    assert results["samples"] == len(labels)
    assert results["accuracy"] == pytest.approx(float((mirrored.argmax(1) == labels).float().mean()), abs=1e-6)
    assert results["loss"] == pytest.approx(float(F.cross_entropy(mirrored, labels)), rel=1e-5)

    export_main(["--ckpt_path", str(checkpoint), "--output_dir", str(tmp_path / "export")])
    scripted = torch.jit.load(str(next((tmp_path / "export").glob("*.torchscript.pt"))))
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), mirrored, atol=1e-5, rtol=0)
    onnxruntime = pytest.importorskip("onnxruntime")  # the [dev] extra has it: a skip, never a silent pass
    session = onnxruntime.InferenceSession(str(next((tmp_path / "export").glob("*.onnx"))),
                                           providers=["CPUExecutionProvider"])
    (output,) = session.run(["logits"], {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(output), mirrored, atol=1e-5, rtol=0)
