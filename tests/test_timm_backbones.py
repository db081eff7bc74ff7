"""timm backbones (the [timm] extra) on a tiny timm model saved to a file, as a user of an offline machine would:
fine-tuned through the shipped timm config, then evaluated, predicted from and exported with the model's outputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny_settings import SCRIPTS, TINY_RUN

from project.backbones import Backbone, LibraryBackbone, TimmBackbone, build_backbone
from project.checkpoints.pretrained import PretrainedBackbone
from project.config.shipped import config_dir
from project.data.batch_transforms import normalize
from project.errors import UserError
from project.evaluation.evaluate import main as evaluate_main
from project.evaluation.export import main as export_main
from project.evaluation.loading import load_trained_model
from project.evaluation.predict import main as predict_main
from project.models import TransferClassifier
from project.training.run import fit_and_test

TINY_TIMM = "timm:test_resnet.r160_in1k"  # 0.37M parameters; its pretrained_cfg: mean = std = 0.5, 160 px


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory) -> Path:
    """A state dict saved from timm (random weights: nothing can be downloaded here), with its classifier."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pt"
    torch.save(timm.create_model(TINY_TIMM.removeprefix("timm:")).state_dict(), path)
    return path


def timm_finetune(root: Path, weights: Path, *more: str) -> list[str]:
    """The shipped timm config on `root`, from `weights`, shrunk to a tiny run."""
    return ["--config", str(config_dir() / "timm_convnext_imagefolder.yaml"), f"--data.root={root}",
            f"--model.pretrained={weights}", f"--model.backbone={TINY_TIMM}", "--data.cache_dir=null",
            "--data.batch_size=8", *TINY_RUN, "--trainer.max_epochs=2", *more]


def test_timm_backbones_meet_the_contract_and_their_blocks_hold_each_weight_once():
    for name in (TINY_TIMM, "timm:test_convnext", "timm:test_efficientnet"):
        backbone = build_backbone(name, (3, 32, 32))
        assert isinstance(backbone, Backbone) and isinstance(backbone, LibraryBackbone)
        assert backbone.eval()(torch.rand(2, 3, 32, 32)).shape == (2, backbone.out_features)
        in_blocks = [id(p) for block in backbone.blocks() for p in block.parameters()]
        assert len(in_blocks) == len(set(in_blocks))  # no weight in two blocks (the optimizer would refuse it)
        assert set(in_blocks) == {id(p) for p in backbone.parameters()}
        assert len(backbone.blocks()) >= 4  # stem, stages: what gradual unfreezing and layer decay work on


def test_a_saved_timm_state_dict_is_loaded_exactly_without_its_classifier(timm_file):
    saved = torch.load(timm_file, weights_only=True)
    source = PretrainedBackbone.open(str(timm_file), TINY_TIMM)
    backbone = build_backbone(TINY_TIMM, (3, 32, 32))
    assert "pretrained tensors reused" in source.copy_into(backbone)
    state = backbone.model.state_dict()
    assert state.keys() == {key for key in saved if not key.startswith("fc.")}
    assert all(torch.equal(state[key], saved[key]) for key in state)
    assert (source.weights_input.mean, source.weights_input.image_size) == ((0.5, 0.5, 0.5), 160)


def test_a_safetensors_file_loads_as_the_same_weights(timm_file, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(torch.load(timm_file, weights_only=True), str(path))
    from_torch, from_safetensors = build_backbone(TINY_TIMM, (3, 32, 32)), build_backbone(TINY_TIMM, (3, 32, 32))
    PretrainedBackbone.open(str(timm_file), TINY_TIMM).copy_into(from_torch)
    PretrainedBackbone.open(str(path), TINY_TIMM).copy_into(from_safetensors)
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(from_torch.eval()(images), from_safetensors.eval()(images), atol=0, rtol=0)


def test_a_gray_stem_adapted_by_timm_sees_the_gray_image_in_all_three_channels(timm_file):
    source = PretrainedBackbone.open(str(timm_file), TINY_TIMM)
    rgb, gray = build_backbone(TINY_TIMM, (3, 32, 32)), build_backbone(TINY_TIMM, (1, 32, 32))
    source.copy_into(rgb)
    assert "adapted to 1 channels" in source.copy_into(gray)
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gray.eval()(images), rgb.eval()(images.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    path = tmp_path / "convnext.pt"
    torch.save(timm.create_model("test_convnext").state_dict(), path)
    with pytest.raises(UserError, match="timm's test_resnet.r160_in1k do not fit: .* missing .*same architecture"):
        PretrainedBackbone.open(str(path), TINY_TIMM).copy_into(build_backbone(TINY_TIMM, (3, 32, 32)))


def test_timm_weights_named_for_another_backbone_are_refused():
    with pytest.raises(UserError, match="holds a timm:resnet18 backbone but --model.backbone is 'cnn'"):
        PretrainedBackbone.open("timm:resnet18", "cnn")


def test_a_fixed_size_timm_model_names_the_size_it_takes_unless_its_args_change_it():
    with pytest.raises(UserError, match="timm:test_vit3 cannot take 32×32 images .*: it was made for 160×160; set "
                                        "--data.image_size=160"):
        build_backbone("timm:test_vit3", (3, 32, 32))
    assert build_backbone("timm:test_vit3", (3, 64, 64), {"img_size": 64}).out_features == 96


def test_the_feature_count_is_what_the_model_returns_not_timms_num_features():
    backbone = build_backbone("timm:mobilenetv3_small_050", (3, 32, 32))  # a 1024-wide hidden head layer
    assert backbone.model.num_features != backbone.out_features == 1024
    assert backbone.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 1024)


@pytest.mark.parametrize(("name", "args", "message"), [
    ("timm:test_resnet", {"global_pool": ""}, "returns features of shape \\(96, 1, 1\\) per image, not pooled ones"),
    ("timm:test_resnet.bogustag", None, "timm has no pretrained tag 'bogustag' for test_resnet: choose one of "
                                        "\\['test_resnet.r160_in1k'\\]"),
])
def test_timm_settings_that_cannot_give_pooled_features_are_one_line(name, args, message):
    with pytest.raises(UserError, match=message):
        build_backbone(name, (3, 32, 32), args)


def test_timm_finetune_from_a_file_tests_and_evaluate_predict_export_give_the_models_outputs(
    image_folder, timm_file, tmp_path
):
    result = fit_and_test(TransferClassifier, timm_finetune(image_folder, timm_file, "--data.image_size=32"))
    assert set(result.metrics) == {"test/acc", "test/loss"}
    run = Path(result.log_dir)
    model, checkpoint = load_trained_model(run)
    assert isinstance(model.backbone, TimmBackbone) and model.preprocessing["mean"] == [0.5, 0.5, 0.5]

    evaluate_main(["--ckpt_path", str(run), f"--data.root={image_folder}"])
    evaluated = json.loads(next((run / "evaluation").glob("*.json")).read_text())
    assert evaluated["accuracy"] == pytest.approx(result.metrics["test/acc"])  # the same test split and weights

    image = image_folder / "cat" / "000.png"
    predict_main(["--ckpt_path", str(run), str(image), "--top_k=1", f"--output_csv={tmp_path / 'p.csv'}"])
    pixels = torch.from_numpy(np.array(Image.open(image).resize((32, 32), Image.BILINEAR))).permute(2, 0, 1)[None]
    with torch.no_grad():  # the weights' own normalization (0.5), not the target images'
        expected = torch.softmax(model(normalize(pixels, torch.full((3,), 0.5), torch.full((3,), 0.5))), 1)
    written = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")
    assert float(written[2]) == pytest.approx(float(expected.max()), abs=0.02)  # resize rounding differs a little

    export_main(["--ckpt_path", str(run), "--output_dir", str(tmp_path / "export")])
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(images)
    scripted = torch.jit.load(str(tmp_path / "export" / f"{checkpoint.stem}.torchscript.pt"))
    torch.testing.assert_close(scripted(images), logits, atol=1e-5, rtol=0)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / f"{checkpoint.stem}.onnx"),
                                           providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(output), logits, atol=1e-4, rtol=0)
    exported = json.loads((tmp_path / "export" / f"{checkpoint.stem}.preprocessing.json").read_text())
    assert exported["mean"] == exported["std"] == [0.5, 0.5, 0.5]


def test_a_linear_probe_leaves_every_timm_weight_and_batchnorm_statistic_as_loaded(image_folder, timm_file):
    result = fit_and_test(TransferClassifier, timm_finetune(image_folder, timm_file, "--data.image_size=32",
                                                           "--model.strategy=linear_probe"))
    source = PretrainedBackbone.open(str(timm_file), TINY_TIMM)
    loaded = build_backbone(TINY_TIMM, (3, 32, 32))
    source.copy_into(loaded)
    trained = result.model.backbone.state_dict()
    assert any("running_mean" in key for key in trained)
    assert all(torch.equal(trained[key], value) for key, value in loaded.state_dict().items())


def test_channels_last_trains_a_timm_backbone_with_the_same_checkpoint_keys(image_folder, timm_file):
    plain = fit_and_test(TransferClassifier, timm_finetune(image_folder, timm_file, "--data.image_size=32"))
    nhwc = fit_and_test(TransferClassifier, timm_finetune(image_folder, timm_file, "--data.image_size=32",
                                                          "--model.channels_last=true", "--experiment=nhwc"))
    assert plain.model.state_dict().keys() == nhwc.model.state_dict().keys()
    assert nhwc.metrics["test/acc"] >= 0


def test_a_study_runs_scratch_and_the_timm_weights(image_folder, timm_file, tmp_path, capsys):
    from project.lab.study.main import main as study_main

    config = tmp_path / "finetune.yaml"
    config.write_text((config_dir() / "timm_convnext_imagefolder.yaml").read_text())
    extra = [f"--data.root={image_folder}", f"--model.backbone={TINY_TIMM}", "--data.cache_dir=null",
             "--data.batch_size=8", "--data.image_size=32", *TINY_RUN, "--trainer.max_epochs=2"]
    study_main([f"--finetune_config={config}", f"--pretrained={timm_file}", "--methods=[scratch, lp_ft]",
                "--budgets=[4]", "--seeds=[1]", f"--output_dir={tmp_path / 'study'}", f"--extra_args={extra}"])
    rows = (tmp_path / "study" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[0] != rows[2].split(",")[0]  # a header, then scratch and lp_ft


@pytest.mark.slow
def test_without_timm_a_timm_backbone_is_one_line_naming_the_extra(tmp_path):
    blocked = "import sys, runpy; sys.modules['timm'] = None; sys.argv = sys.argv[1:]; " \
              "runpy.run_path(sys.argv[0], run_name='__main__')"
    command = [sys.executable, "-c", blocked, str(SCRIPTS / "pretrain.py"), f"--model.backbone={TINY_TIMM}", *TINY_RUN]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == ("error: timm backbones need timm, which is not installed: pip install -e '.[timm]' "
                             "(or pip install timm)\n")


@pytest.mark.slow
def test_downloading_timm_weights_offline_is_one_line_saying_how_to_bring_them(tmp_path, image_folder):
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "finetune.py"), "--config", str(config_dir() / "timm_convnext_imagefolder.yaml"),
         f"--data.root={image_folder}", *TINY_RUN], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: could not get timm's pretrained weights for convnext_atto.d2_in1k")
    assert "--model.pretrained=file.pt --model.backbone=timm:convnext_atto.d2_in1k" in result.stderr
    assert not (tmp_path / "lightning_logs").exists()  # refused before anything was written


@pytest.mark.slow
def test_timm_fine_tuning_under_two_process_ddp_on_cpu(tmp_path, image_folder, timm_file):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "finetune.py"), *timm_finetune(image_folder, timm_file, "--data.image_size=32"),
         "--trainer.devices=2", "--trainer.strategy=ddp"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs" / "timm_convnext_imagefolder"
    assert [p.name for p in run.iterdir()] == ["version_0"]
    assert result.stdout.count("test metrics:") == 1
    assert "3×32×32, mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]; size as set (the weights': 160 px), normalized with " \
           "the pretrained weights' statistics" in result.stdout


def test_transferability_scores_timm_weights_on_the_input_fine_tuning_would_give_them(
    image_folder, timm_file, tmp_path, monkeypatch, capsys
):
    import project.lab.transferability.main as transferability

    config = tmp_path / "finetune.yaml"
    config.write_text(f"model:\n  backbone: {TINY_TIMM}\ndata:\n  dataset: imagefolder\n  root: {image_folder}\n"
                      f"  image_size: 32\n  cache_dir: null\n  samples_per_class: 4\n")
    means = []
    score = transferability.score_features
    monkeypatch.setattr(transferability, "score_features",
                        lambda backbone, data, seed: means.append(data.mean.tolist()) or score(backbone, data, seed))
    transferability.main([f"--finetune_config={config}", f"--sources=[{timm_file}]", "--random_inits=2"])
    out = capsys.readouterr().out
    assert f"| {timm_file} | pretrained |" in out and f"| {TINY_TIMM}, same architecture | random ×2 |" in out
    assert means == [[0.5, 0.5, 0.5]] * 3  # the weights' normalization, for them and for the random baselines
