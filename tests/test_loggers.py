"""Any Lightning logger through --trainer.logger: the run folder, the handoff, resume and the report are the same
with CSV, with W&B offline and with several loggers at once; a logger's own place is refused, a missing package
is one line naming the extra."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_settings import SCRIPTS, TINY_CNN, TINY_RUN

from project.evaluation.run_events import read_run
from project.models import ImageClassifier, TransferClassifier
from project.training.run import run_experiment

CSV = ["--trainer.logger=CSVLogger"]
WANDB = ["--trainer.logger=WandbLogger", "--trainer.logger.offline=true"]


def pretrain(*args: str) -> None:
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, "--output_dir=runs", *args])


def finetune(*args: str) -> None:
    run_experiment(TransferClassifier, "digits_finetune.yaml",
                   [*TINY_RUN, "--output_dir=runs", "--model.pretrained=runs/digits_pretrain", *args])


def test_the_csv_logger_keeps_the_run_folder_the_handoff_resume_and_report(capsys: pytest.CaptureFixture) -> None:
    pretrain(*CSV)
    run = Path("runs/digits_pretrain/version_0")
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file() and (run / "checkpoints/last.ckpt")
    assert not list(run.glob("events.out.tfevents.*"))  # CSV only: no TensorBoard files
    assert {path.name for path in (run / "figures").iterdir()} == {"test_confusion_matrix.png",
                                                                    "test_predictions.png"}
    assert f"curves:       {run / 'metrics.csv'}" in capsys.readouterr().out
    first_rows = (run / "metrics.csv").read_text()

    pretrain(*CSV, "--trainer.max_epochs=2", "--ckpt_path=last")  # resumes in the same folder
    assert not Path("runs/digits_pretrain/version_1").exists()
    assert (run / "metrics-before-resume-1.csv").read_text() == first_rows  # the first start's rows, kept
    report = read_run(run)  # both starts' validations, in order
    assert [epoch for epoch, _ in report.val_acc] == [0, 1]
    assert report.test_acc is not None and report.trainable_params is not None

    finetune(*CSV)  # the handoff finds the CSV run's checkpoint
    assert (Path("runs/digits_finetune/version_0") / "metrics.csv").is_file()


def test_several_loggers_write_into_one_run_folder() -> None:
    pretrain("--trainer.logger=[TensorBoardLogger, CSVLogger]")
    run = Path("runs/digits_pretrain/version_0")
    assert list(run.glob("events.out.tfevents.*")) and (run / "metrics.csv").is_file()
    assert read_run(run).val_acc  # the TensorBoard events are read first
    assert len(list((run / "figures").glob("*.png"))) == 2  # TensorBoard takes them; for CSV, files in the folder


def test_wandb_offline_runs_resumes_the_same_tracked_run_and_keeps_the_folder(monkeypatch) -> None:
    import wandb  # the dev extra installs it: a wandb that cannot import fails here, not skips
    monkeypatch.setenv("WANDB_SILENT", "true")
    pretrain()
    finetune(*WANDB)
    assert wandb.run is None  # ended with the run: the next run in this process starts its own
    run = Path("runs/digits_finetune/version_0")
    tracked = json.loads((run / "tracking_runs.json").read_text())
    (run_id,) = tracked.values()
    assert list((run / "wandb").glob(f"offline-run-*-{run_id}"))  # W&B's files beside the checkpoints
    assert (run / "metrics.csv").is_file() and (run / "checkpoints/last.ckpt").is_file()  # the folder as always

    finetune(*WANDB, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert json.loads((run / "tracking_runs.json").read_text()) == tracked  # the same tracked run continues
    runs = list((run / "wandb").glob("offline-run-*"))
    assert runs and all(path.name.endswith(run_id) for path in runs)  # no second tracked run was started


def test_a_folder_loggers_own_place_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pretrain(*CSV, "--trainer.logger.save_dir=elsewhere")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == ("error: CSVLogger's save_dir='elsewhere': the run folder is <output_dir>/<experiment>/version_N "
                   "whatever the logger; set --output_dir and --experiment instead\n")
    assert not Path("runs").exists() and not Path("elsewhere").exists()


@pytest.mark.parametrize(("logger", "package", "extra"), [("WandbLogger", "wandb", "wandb"),
                                                          ("MLFlowLogger", "mlflow", "mlflow")])
def test_a_logger_whose_package_is_missing_is_one_line_naming_the_extra(logger: str, package: str,
                                                                        extra: str) -> None:
    # The package made unimportable for this process only, as on a machine without it.
    code = (f"import sys; sys.modules[{package!r}] = None; sys.argv = ['pretrain.py', *sys.argv[1:]]; "
            f"exec(open({str(SCRIPTS / 'pretrain.py')!r}).read())")
    done = subprocess.run([sys.executable, "-c", code, *TINY_RUN, TINY_CNN, f"--trainer.logger={logger}",
                           "--output_dir=runs"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: --trainer.logger={logger} needs a package that is not installed")
    assert f"pip install 'lightning-transfer-lab[{extra}]'" in done.stderr
    assert not Path("runs").exists() or not any(Path("runs").rglob("*.ckpt"))  # nothing trained, no folder left


@pytest.mark.parametrize(("args", "message"), [
    (["--trainer.logger=[CSVLogger, CSVLogger]"], "error: --trainer.logger names CSVLogger twice: both would write "
     "the same run folder's files; name it once\n"),
    ([*WANDB, "--trainer.logger.save_dir=elsewhere"], "error: WandbLogger's save_dir='elsewhere': the run folder is "
     "<output_dir>/<experiment>/version_N whatever the logger; its files go in the run folder, "
     "<output_dir>/<experiment>/version_N\n"),
])
def test_a_logger_setting_that_would_be_ignored_or_doubled_is_refused(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pretrain(*args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message
    assert not Path("runs").exists()


def test_a_tracking_logger_that_cannot_start_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    """W&B online without an account (what a first try looks like): its reason and the offline hint, exit 2."""
    import wandb  # noqa: F401 (the dev extra installs it: a wandb that cannot import fails here, not skips)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    environment.update(HOME=str(tmp_path), WANDB_SILENT="true")  # no ~/.netrc key either
    done = subprocess.run([sys.executable, str(SCRIPTS / "pretrain.py"), *TINY_RUN, TINY_CNN, "--output_dir=runs",
                           "--trainer.logger=WandbLogger"], capture_output=True, text=True, timeout=300,
                          env=environment)
    assert done.returncode == 2, done.stderr
    *before, last = done.stderr.splitlines()
    assert "Traceback" not in done.stderr and all(line.startswith("wandb: ") for line in before)  # W&B's own notes
    assert last.startswith("error: --trainer.logger=WandbLogger could not start: ")
    assert "--trainer.logger.offline=true" in last
    assert not Path("runs/digits_pretrain/version_0").exists()


def test_a_resume_that_trains_nothing_keeps_the_csv_report_readable() -> None:
    pretrain(*CSV)
    run = Path("runs/digits_pretrain/version_0")
    pretrain(*CSV, "--ckpt_path=last")  # max_epochs reached already: tested again, nothing written
    assert (run / "metrics.csv").is_file() and not (run / "metrics-before-resume-1.csv").exists()
    assert read_run(run).val_acc
