"""scripts/export.py on a tiny checkpoint: TorchScript and ONNX give the LightningModule's logits; the JSON is right."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from tiny_runs import best_checkpoint

from project.evaluation.export import main as export_main
from project.models import ImageClassifier

STEM = "best-epoch=000"


@pytest.fixture(scope="module")
def run(pretrained_run: Path) -> Path:
    return pretrained_run


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `export.py --ckpt_path <run> --output_dir <folder>` wrote."""
    folder = tmp_path_factory.mktemp("export")
    export_main(["--ckpt_path", str(run), "--output_dir", str(folder)])
    return folder


@pytest.fixture(scope="module")
def reference(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of normalized-looking images (5: not the traced batch size) and the LightningModule's logits."""
    model = ImageClassifier.load_from_checkpoint(best_checkpoint(run), map_location="cpu", weights_only=True).eval()
    images = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return images, model(images)


def test_torchscript_gives_the_lightning_modules_logits(exported, reference):
    images, logits = reference
    scripted = torch.jit.load(str(exported / f"{STEM}.torchscript.pt"))
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), logits, atol=1e-5, rtol=0)


def test_onnx_gives_the_lightning_modules_logits(exported, reference):
    pytest.importorskip("onnx")  # what export.py needs to write the file
    onnxruntime = pytest.importorskip("onnxruntime")
    images, logits = reference
    session = onnxruntime.InferenceSession(str(exported / f"{STEM}.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.run(["logits"], {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(output), logits, atol=1e-5, rtol=0)


def test_the_json_records_the_preprocessing_of_the_checkpoint(run, exported):
    checkpoint = torch.load(best_checkpoint(run), weights_only=True)
    recorded = json.loads((exported / f"{STEM}.preprocessing.json").read_text())
    assert recorded["mean"] == pytest.approx(checkpoint["preprocessing"]["mean"])
    assert recorded["std"] == pytest.approx(checkpoint["preprocessing"]["std"])
    assert recorded["input_shape"] == [1, 28, 28] and recorded["color"] == "gray"
    assert recorded["class_names"] == ["0", "1", "2", "3", "4"]
    onnx_name = f"{STEM}.onnx" if importlib.util.find_spec("onnx") else None
    assert recorded["files"] == {"torchscript": f"{STEM}.torchscript.pt", "onnx": onnx_name}
    assert all((exported / name).is_file() for name in recorded["files"].values() if name)


def test_default_output_is_in_the_run_folder_and_a_second_export_overwrites_nothing(run, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec  # as if onnx were not installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    copy = tmp_path / "run"
    (copy / "checkpoints").mkdir(parents=True)
    (copy / "checkpoints" / f"{STEM}.ckpt").write_bytes(best_checkpoint(run).read_bytes())
    export_main(["--ckpt_path", str(copy)])
    first = {path.name: path.read_bytes() for path in (copy / "export").iterdir()}
    assert sorted(first) == [f"{STEM}.preprocessing.json", f"{STEM}.torchscript.pt"]  # no ONNX without onnx
    export_main(["--ckpt_path", str(copy)])
    names = sorted(path.name for path in (copy / "export").iterdir())
    assert names == sorted([*first, f"{STEM}_2.preprocessing.json", f"{STEM}_2.torchscript.pt"])
    assert all((copy / "export" / name).read_bytes() == content for name, content in first.items())


def test_a_missing_checkpoint_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--ckpt_path", "missing.ckpt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint 'missing.ckpt' does not exist") and err.count("\n") == 1
