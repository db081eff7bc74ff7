"""scripts/report.py on real tiny runs: the figure, a table equal to what the event files hold, user errors."""

from pathlib import Path

import pytest
from event_files import run_events, scalar_values
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tiny_settings import TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.evaluation.run_report import main
from project.models import ImageClassifier, TransferClassifier
from project.training.run import run_experiment


def pretrain(output_dir: Path, *args: str) -> None:
    # Every step logged: the config's log_every_n_steps=5 would log no train/loss in 3 steps.
    run_experiment(
        ImageClassifier, "digits_pretrain.yaml",
        [*TINY_RUN, TINY_CNN, f"--output_dir={output_dir}", "--trainer.log_every_n_steps=1", *args],
    )


def table_rows(markdown: str) -> list[dict[str, str]]:
    header, _, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines())
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_two_runs_give_a_figure_and_a_table_of_what_their_event_files_hold(tmp_path, capsys):
    pretrain(tmp_path)
    pretrain(tmp_path, "--trainer.max_epochs=2", "--seed_everything=7")
    runs = [tmp_path / "digits_pretrain" / f"version_{index}" for index in (0, 1)]
    assert all(len(list(run.glob("events.out.tfevents.*"))) == 2 for run in runs)  # fit and test write one each
    capsys.readouterr()

    main([*(str(run) for run in runs), "--output_dir", str(tmp_path / "report")])

    image = Image.open(tmp_path / "report" / "report.png")
    assert image.format == "PNG" and image.size == (1200, 450)
    colors = set(image.convert("RGB").getdata())
    assert {(31, 119, 180), (255, 127, 14)} <= colors  # matplotlib's first two line colours: one per run
    table = (tmp_path / "report" / "report.md").read_text()
    assert capsys.readouterr().out.startswith(table)
    rows = table_rows(table)
    assert [row["run"] for row in rows] == ["digits_pretrain/version_0", "digits_pretrain/version_1"]
    for run, row, epochs in zip(runs, rows, (1, 2), strict=True):
        events = run_events(run)
        val_acc = scalar_values(events, "val/acc")
        assert len(val_acc) == int(row["epochs"]) == epochs
        assert float(row["best val acc"]) == pytest.approx(max(val_acc), abs=5e-5)
        assert float(row["test acc"]) == pytest.approx(scalar_values(events, "test/acc")[-1], abs=5e-5)
        # The report's wall time: from the first event to the last scalar.
        scalars = [event for event in events if any(value.HasField("simple_value") for value in event.summary.value)]
        wall_time = scalars[-1].wall_time - events[0].wall_time
        assert row["wall time"].endswith(" s") and float(row["wall time"][:-2]) == pytest.approx(wall_time, abs=0.0501)
        trainable = int(row["parameters trained"].replace(",", ""))
        assert trainable == scalar_values(events, "params/trainable")[0]
        # Pretraining trains everything: the logged count is the model's own.
        model = ImageClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
        assert trainable == sum(parameter.numel() for parameter in model.parameters())

    first = {name: (tmp_path / "report" / name).read_bytes() for name in ("report.png", "report.md")}
    main([str(runs[0]), "--output_dir", str(tmp_path / "report")])  # a second report never replaces the first
    assert {name: (tmp_path / "report" / name).read_bytes() for name in first} == first
    assert table_rows((tmp_path / "report" / "report_2.md").read_text())[0]["run"] == "digits_pretrain/version_0"


@pytest.mark.parametrize("strategy", ["full", "linear_probe", "lp_ft"])
def test_parameters_trained_leave_out_the_blocks_a_strategy_freezes_in_the_first_epoch(tmp_path, strategy):
    model = TransferClassifier(strategy=strategy, backbone_args={"channels": [4, 8], "feature_size": 16}, num_classes=2)
    trainer = Trainer(
        max_epochs=1, limit_train_batches=1, limit_val_batches=0, accelerator="cpu", devices=1,
        logger=TensorBoardLogger(tmp_path, name="run", default_hp_metric=False), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=ImageDataModule(dataset="digits", classes=[0, 1], batch_size=16))
    (logged,) = scalar_values(run_events(tmp_path / "run" / "version_0"), "params/trainable")
    head = sum(parameter.numel() for parameter in model.head.parameters())
    everything = sum(parameter.numel() for parameter in model.parameters())
    # linear_probe turns the backbone's gradients off; lp_ft keeps them on but gives the backbone lr 0 at first.
    assert logged == (everything if strategy == "full" else head)
