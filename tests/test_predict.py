"""scripts/predict.py on a tiny checkpoint: a CSV row per image, probabilities, images adapted, bad files skipped."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from project.data.batch_transforms import normalize
from project.evaluation.loading import load_trained_model
from project.evaluation.predict import main as predict_main

CLASSES = ["0", "1", "2", "3", "4"]


@pytest.fixture(scope="module")
def run(pretrained_run: Path) -> Path:
    return pretrained_run


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of PNGs and a JPEG in several sizes and modes, a nested folder, a corrupt PNG and a text file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(folder / "gray28.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), mode="RGB").save(folder / "rgb16.png")
    Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), mode="RGBA").save(folder / "nested/rgba.png")
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8), mode="RGB").save(folder / "nested/photo.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing an image needs")
    (folder / "notes.txt").write_text("not an image, and not named like one")
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_folder_gives_one_csv_row_per_readable_image_and_the_corrupt_one_is_named(run, images, tmp_path, capsys):
    csv_file = tmp_path / "out" / "predictions.csv"
    predict_main(["--ckpt_path", str(run), str(images), "--top_k=10", f"--output_csv={csv_file}"])
    rows = read_rows(tmp_path / "out" / "predictions.csv")
    expected = ["gray28.png", "nested/photo.jpg", "nested/rgba.png", "rgb16.png"]
    assert [str(Path(row["path"]).relative_to(images)) for row in rows] == expected
    for row in rows:
        assert list(row) == ["path", *(f"{c}_{k}" for k in range(1, 6) for c in ("class", "prob"))]  # top_k capped
        probabilities = [float(row[f"prob_{k}"]) for k in range(1, 6)]
        assert sum(probabilities) == pytest.approx(1, abs=1e-5)
        assert probabilities == sorted(probabilities, reverse=True)
        assert sorted(row[f"class_{k}"] for k in range(1, 6)) == CLASSES
    captured = capsys.readouterr()
    assert f"skipped: cannot read image {str(images / 'corrupt.png')!r}" in captured.err
    assert "notes.txt" not in captured.err + captured.out
    assert len(captured.out.splitlines()) == 5  # one line per image, then where the CSV went


def test_probabilities_are_the_models_on_the_normalized_image(run, images, capsys):
    predict_main(["--ckpt_path", str(run), str(images / "gray28.png"), "--top_k=2"])
    line = capsys.readouterr().out.splitlines()[0]
    model, _ = load_trained_model(run)
    pixels = torch.from_numpy(np.array(Image.open(images / "gray28.png")))[None, None]
    mean, std = (torch.tensor(model.preprocessing[key]) for key in ("mean", "std"))
    with torch.no_grad():
        probabilities = torch.softmax(model(normalize(pixels, mean, std)), dim=1)[0]
    top = probabilities.topk(2)
    names = [model.preprocessing["class_names"][i] for i in top.indices.tolist()]
    assert line == f"{images / 'gray28.png'}: {names[0]} {top.values[0]:.3f}, {names[1]} {top.values[1]:.3f}"


def test_only_unreadable_files_exit_2(run, images, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--ckpt_path", str(run), str(images / "corrupt.png"), str(images / "notes.txt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "notes.txt" in err  # named on the command line: tried, whatever its name
    assert err.splitlines()[-1] == "error: none of the 2 files could be read as an image: see the messages above"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top_k=0"], "error: --top_k 0 must be at least 1"),
        (["no_such_image.png"], "error: 'no_such_image.png' does not exist: give image files or folders of images"),
    ],
    ids=["top_k_0", "missing_image"],
)
def test_bad_arguments_exit_2_with_one_line(run, images, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--ckpt_path", str(run), str(images / "gray28.png"), *args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_a_missing_checkpoint_exits_2_with_one_line(images, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--ckpt_path", "missing.ckpt", str(images)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint 'missing.ckpt' does not exist") and err.count("\n") == 1


HOSTILE_NAMES = ["=cmd|' /C calc'!A0", "a\nforged: line", "+1", "@SUM(A1)", "-2"]


@pytest.fixture(scope="module")
def hostile_checkpoint(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's checkpoint with class names a hostile sender could store in one (checkpoints are exchanged)."""
    from tiny_runs import best_checkpoint

    checkpoint = torch.load(best_checkpoint(run), weights_only=True)
    checkpoint["preprocessing"]["class_names"] = HOSTILE_NAMES
    checkpoint["hyper_parameters"]["class_names"] = HOSTILE_NAMES
    path = tmp_path_factory.mktemp("hostile") / "hostile_names.ckpt"
    torch.save(checkpoint, path)
    return path


def test_class_names_are_data_never_formulas_or_extra_lines(hostile_checkpoint, images, tmp_path, capsys):
    csv_file = tmp_path / "predictions.csv"
    predict_main(["--ckpt_path", str(hostile_checkpoint), str(images / "gray28.png"), "--top_k=5",
                  f"--output_csv={csv_file}"])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith(str(images / "gray28.png")) and "a\\nforged: line" in out[0]
    (row,) = read_rows(csv_file)
    names = [row[f"class_{k}"] for k in range(1, 6)]
    assert sorted(names) == sorted(["'=cmd|' /C calc'!A0", "a\nforged: line", "'+1", "'@SUM(A1)", "'-2"])


@pytest.mark.slow
def test_the_trained_model_guides_commands_run_word_for_word(finetuned_run, tmp_path):
    import re
    import shutil
    import subprocess

    from tiny_settings import REPOSITORY

    guide = (REPOSITORY / "docs" / "trained_models.md").read_text()
    block = re.search(r"```bash\n(.*?)```", guide, re.S).group(1)
    shutil.copytree(finetuned_run.parent, tmp_path / "lightning_logs" / "digits_finetune")
    (tmp_path / "scripts").symlink_to(REPOSITORY / "scripts")  # the commands run from the repository's root
    for command in block.strip().splitlines():
        result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-2000:])
    rows = read_rows(tmp_path / "predictions.csv")
    assert len(rows) == 7 and all(row["class_1"] in "56789" for row in rows)  # the model's classes: digits 5-9


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["preprocessing"].update(class_names=["a"]), "its class_names are not 5 names, one per output"),
    (lambda c: c["preprocessing"].update(mean="abc"), "its mean 'abc'"),
    (lambda c: c["preprocessing"].update(input_shape=[1, 100000, 100000]), "its input_shape [1, 100000, 100000]"),
    (lambda c: c["preprocessing"].update(std=[0.0]), "std above 0"),
    (lambda c: c.update(preprocessing="x"), "its preprocessing or hyperparameters are not a mapping"),
])
def test_a_checkpoint_with_damaged_preprocessing_is_one_line(run, images, tmp_path, edit, message, capsys):
    from tiny_runs import best_checkpoint

    checkpoint = torch.load(best_checkpoint(run), weights_only=True)
    edit(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--ckpt_path", str(path), str(images / "gray28.png")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err


def test_a_formula_after_leading_whitespace_is_neutralised_too():
    from project.shown_text import spreadsheet_cell

    assert spreadsheet_cell("\n=1+1") == "'\n=1+1" and spreadsheet_cell("  @SUM(A1)") == "'  @SUM(A1)"
    assert spreadsheet_cell("cat") == "cat"
