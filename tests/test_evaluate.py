"""scripts/evaluate.py on tiny checkpoints: numbers equal to a direct test run, files written, other data, errors."""

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from tiny_runs import best_checkpoint

from project.data import ImageDataModule
from project.evaluation.evaluate import main as evaluate_main
from project.evaluation.loading import load_trained_model
from project.models import ImageClassifier, TransferClassifier


@pytest.fixture
def runs(pretrained_run: Path, finetuned_run: Path) -> dict[str, Path]:
    return {"pretrained": pretrained_run, "finetuned": finetuned_run}


def only(paths) -> Path:
    found = list(paths)
    assert len(found) == 1, found
    return found[0]


def test_numbers_match_a_direct_test_run_and_the_matrix_counts_every_test_image(runs, tmp_path, capsys):
    evaluate_main(["--ckpt_path", str(runs["pretrained"]), "--device=cpu", f"--output_dir={tmp_path / 'out'}"])
    results = json.loads(only((tmp_path / "out").glob("*.json")).read_text())

    # Independently: Lightning's own test loop over the DataModule the checkpoint was trained with.
    checkpoint_path = best_checkpoint(runs["pretrained"])
    settings = torch.load(checkpoint_path, weights_only=True)["datamodule_hyper_parameters"]
    data = ImageDataModule(**{key: value for key, value in settings.items() if not key.startswith("_")})
    model = ImageClassifier.load_from_checkpoint(checkpoint_path, map_location="cpu", weights_only=True)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    expected = trainer.test(model, datamodule=data, verbose=False)[0]

    assert results["accuracy"] == pytest.approx(expected["test/acc"], abs=1e-6)
    assert results["loss"] == pytest.approx(expected["test/loss"], rel=1e-5)
    assert 0.3 < results["accuracy"] < 1  # a model that learned something, or the comparison proves little
    matrix = torch.tensor(results["confusion_matrix"])
    assert matrix.shape == (5, 5)
    assert int(matrix.sum()) == results["samples"] == len(data.test_set)
    assert matrix.sum(dim=1).tolist() == torch.bincount(data.test_set.labels, minlength=5).tolist()
    assert int(matrix.diag().sum()) / int(matrix.sum()) == pytest.approx(results["accuracy"], abs=1e-6)
    assert [row["class"] for row in results["per_class"]] == ["0", "1", "2", "3", "4"]
    assert [row["accuracy"] for row in results["per_class"]] == pytest.approx((matrix.diag() / matrix.sum(1)).tolist())
    printed = capsys.readouterr().out
    assert f"accuracy:   {results['accuracy']:.4f}" in printed and f"test loss:  {results['loss']:.4f}" in printed
    figure = only((tmp_path / "out").glob("*_confusion.png"))
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_output_is_in_the_run_folder_and_a_second_evaluation_overwrites_nothing(runs, tmp_path):
    run = shutil.copytree(runs["pretrained"], tmp_path / "run")
    evaluate_main(["--ckpt_path", str(run), "--device=cpu"])
    first = {path.name: path.read_bytes() for path in (run / "evaluation").iterdir()}
    assert sorted(first) == ["best-epoch=000_digits_test.json", "best-epoch=000_digits_test_confusion.png"]
    evaluate_main(["--ckpt_path", str(run), "--device=cpu"])
    names = sorted(path.name for path in (run / "evaluation").iterdir())
    assert names == sorted([*first, "best-epoch=000_digits_test_2.json", "best-epoch=000_digits_test_2_confusion.png"])
    assert all((run / "evaluation" / name).read_bytes() == content for name, content in first.items())


def test_data_settings_on_the_command_line_replace_the_checkpoints(runs, tmp_path, mnist_root):
    args = ["--data.dataset=mnist", f"--data.root={mnist_root}", "--data.download=false", "--data.cache_dir=null"]
    evaluate_main(["--ckpt_path", str(runs["pretrained"]), "--device=cpu", f"--output_dir={tmp_path}", *args])
    results = json.loads(only(tmp_path.glob("*_mnist_test.json")).read_text())
    assert results["data"]["dataset"] == "mnist" and results["data"]["classes"] == [0, 1, 2, 3, 4]  # kept
    assert results["samples"] == 15  # the tiny MNIST's 30 test images cycle through 10 labels: 0-4 are half


def test_other_classes_of_other_data_are_matched_by_position_with_a_note(runs, tmp_path, mnist_root, capsys):
    args = ["--device=cpu", f"--output_dir={tmp_path}", "--data.classes=[5, 6, 7, 8, 9]", "--data.dataset=mnist",
            f"--data.root={mnist_root}", "--data.download=false", "--data.cache_dir=null"]
    evaluate_main(["--ckpt_path", str(runs["pretrained"]), *args])
    results = json.loads(only(tmp_path.glob("*.json")).read_text())
    assert results["data"]["classes"] == [5, 6, 7, 8, 9]
    assert [row["class"] for row in results["per_class"]] == ["0", "1", "2", "3", "4"]  # the model's names
    assert "are not named like the model's ['0', '1', '2', '3', '4']; they are matched by position" in (
        capsys.readouterr().err
    )


def test_other_classes_of_the_data_the_model_was_trained_on_are_refused(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # a 0-4 model scored on digits 5-9 (audit E21): meaningless
        evaluate_main(["--ckpt_path", str(runs["pretrained"]), "--device=cpu", f"--output_dir={tmp_path}",
                       "--data.classes=[5, 6, 7, 8, 9]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "the model predicts ['0', '1', '2', '3', '4'] but these are ['5', '6', '7', '8', '9'] of the data" in err
    assert not list(tmp_path.iterdir())


def test_a_finetuned_checkpoint_loads_after_its_pretrained_run_is_gone(runs):
    checkpoint_path = best_checkpoint(runs["finetuned"])
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert not Path(checkpoint["hyper_parameters"]["pretrained"]).exists()
    model, _ = load_trained_model(runs["finetuned"])
    assert isinstance(model, TransferClassifier) and not model.training
    assert model.preprocessing["class_names"] == ["5", "6", "7", "8", "9"]
    assert model.preprocessing["input_shape"] == [1, 28, 28]
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in checkpoint["state_dict"].items())


def saved_as_if_on_a_gpu(source: Path, target: Path) -> Path:
    """A copy of a checkpoint whose tensors say they live on cuda:0, as torch.save writes them on a GPU.

    torch.save (pickle protocol 2) names each storage's device once, as a BINUNICODE string, memoized after.
    """
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for entry in original.infolist():
            content = original.read(entry.filename)
            if entry.filename.endswith("/data.pkl"):
                content = content.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            copy.writestr(entry.filename, content)
    return target


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_checkpoint_written_on_a_gpu_evaluates_on_the_cpu(runs, tmp_path):
    checkpoint = saved_as_if_on_a_gpu(best_checkpoint(runs["pretrained"]), tmp_path / "gpu.ckpt")
    with pytest.raises(RuntimeError, match="CUDA"):  # proof the copy really asks for a GPU
        torch.load(checkpoint, weights_only=True)
    evaluate_main(["--ckpt_path", str(checkpoint), "--output_dir", str(tmp_path / "out")])
    assert 0 < json.loads(only((tmp_path / "out").glob("*.json")).read_text())["samples"]


def test_data_with_other_classes_than_the_model_exits_2_naming_the_fix(runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--ckpt_path", str(runs["pretrained"]), "--device=cpu", "--data.classes=[0, 1, 2]"])
    assert exit_info.value.code == 2
    assert "the data has 3 classes ['0', '1', '2'] but the model predicts 5" in capsys.readouterr().err


def test_weights_that_do_not_fit_their_architecture_exit_2_naming_the_file(runs, tmp_path, capsys):
    checkpoint = torch.load(best_checkpoint(runs["finetuned"]), weights_only=True)
    checkpoint["state_dict"]["head.weight"] = torch.zeros(7, 3)  # not the head its hyperparameters describe
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--ckpt_path", str(tmp_path / "edited.ckpt")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "edited.ckpt' holds weights that do not fit" in error
    assert error.count("\n") == 1


def test_a_class_name_with_a_newline_stays_on_its_own_line_of_the_table():
    from project.evaluation.evaluate import report

    per_class = [{"class": "a\nforged", "samples": 2, "accuracy": 0.5}, {"class": "b", "samples": 1, "accuracy": 1.0}]
    results = {"checkpoint": "x.ckpt", "data": {"dataset": "imagefolder"}, "samples": 3, "loss": 0.1,
               "accuracy": 0.66, "per_class": per_class}
    table = report(results).splitlines()[6:]
    assert table == ["a\\nforged    0.5000       2", "b            1.0000       1"]


def test_an_evaluation_reads_its_checkpoint_file_once(runs, tmp_path, monkeypatch):
    checkpoint_path = best_checkpoint(runs["pretrained"]).resolve()
    reads, loads_from_disk = [], []
    real_read_bytes, real_load = Path.read_bytes, torch.load

    def read_bytes(path: Path) -> bytes:
        reads.append(path.resolve())
        return real_read_bytes(path)

    def load(source, *args, **kwargs):
        if isinstance(source, str | Path):  # torch.load given a file name reads the file again
            loads_from_disk.append(Path(source).resolve())
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(torch, "load", load)
    evaluate_main(["--ckpt_path", str(checkpoint_path), "--device=cpu", f"--output_dir={tmp_path / 'out'}"])
    assert reads.count(checkpoint_path) == 1 and checkpoint_path not in loads_from_disk
