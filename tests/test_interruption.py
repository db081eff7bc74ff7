"""Runs that stop on their own: a NaN loss with the step named, a GPU asked for where there is none; a damaged
last.ckpt; the periodic mid-epoch checkpoint. (Runs stopped by signals: test_fault_injection.py.)"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from code_payload import save_code_carrying_checkpoint
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tiny_settings import TINY_CNN

from project.callbacks.interruption import StopOnSignal
from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.cli.training import run_experiment
from project.errors import UserError
from project.lightning_modules import ImageClassifier

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


def test_a_damaged_last_checkpoint_falls_back_to_its_runs_newest_complete_one(tmp_path, capsys):
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*QUIET, TINY_CNN, "--trainer.max_epochs=1"])
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*QUIET, TINY_CNN, "--trainer.max_epochs=1"])
    experiment = tmp_path / "lightning_logs" / "digits_pretrain"
    checkpoints = experiment / "version_1" / "checkpoints"
    damaged = checkpoints / "last.ckpt"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # as if cut off by a full disk
    capsys.readouterr()
    best = next(checkpoints.glob("best-*.ckpt"))
    assert find_checkpoint(experiment, "last") == best  # the same run goes on: never an older run's
    note = f"note: '{damaged}' is damaged (not a complete checkpoint); resuming from '{best}'"
    assert note in capsys.readouterr().out
    best.write_bytes(best.read_bytes()[:1000])
    with pytest.raises(UserError, match="is damaged .* and its run holds no other complete checkpoint"):
        find_checkpoint(experiment, "last")


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoints(tmp_path):
    # lr 20 diverges after some steps (measured: 16 to 40); a checkpoint every step is written until then.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pretrain.py"), *QUIET, TINY_CNN, "--trainer.max_epochs=50",
         "--model.lr=20", "--model.scheduler=none", "--checkpoint_every_n_steps=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # Caught at a checkpoint save (weights) or at the next forward pass (loss), whichever comes first.
    assert re.search(r"error: the (training loss became (nan|inf) at|weights became NaN or infinite by) step \d+",
                     result.stderr), result.stderr[-1000:]
    checkpoints = list((tmp_path / "lightning_logs").rglob("*.ckpt"))
    assert checkpoints  # the run got far enough to write some: they must all be usable
    for path in checkpoints:
        state = load_checkpoint(path)["state_dict"]
        assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


def test_a_gpu_asked_for_where_there_is_none_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        return
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pretrain.py"), "--trainer.accelerator=gpu"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: No supported gpu backend found! Check the --trainer settings" in result.stderr


@pytest.mark.parametrize(("stage", "saves"), [(TrainerFn.FITTING, True), (TrainerFn.TESTING, False)])
def test_sigterm_saves_last_ckpt_while_fitting_only(tmp_path, monkeypatch, stage, saves):
    # In the test after fit the model holds the best epoch's weights: saved as last.ckpt they would replace
    # the finished fit's last weights.
    trainer = Trainer(callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="last")], logger=False)
    trainer.state.fn = stage
    written = []
    monkeypatch.setattr(trainer, "save_checkpoint", written.append)
    StopOnSignal().on_exception(trainer, None, SIGTERMException())
    assert written == ([tmp_path / "last.ckpt"] if saves else [])


def test_checkpoint_every_n_steps_writes_last_ckpt_mid_epoch(tmp_path, monkeypatch):
    saved_steps = []
    save = Trainer.save_checkpoint

    def record(trainer, filepath, *args, **kwargs):
        if Path(filepath).name == "last.ckpt":
            saved_steps.append(trainer.global_step)
        return save(trainer, filepath, *args, **kwargs)

    monkeypatch.setattr(Trainer, "save_checkpoint", record)
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [
        *QUIET, TINY_CNN, "--trainer.max_epochs=1", "--trainer.limit_train_batches=7",
        "--trainer.limit_val_batches=0", "--model_selection=last_epoch", "--checkpoint_every_n_steps=3",
    ])
    assert saved_steps == [3, 6, 7]  # every 3 steps, then the end-of-epoch save
    last = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == 7


def test_resuming_from_a_checkpoint_that_carries_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    save_code_carrying_checkpoint(tmp_path / "evil.ckpt", marker)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pretrain.py"), *QUIET, "--ckpt_path=evil.ckpt"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "error: refused to load 'evil.ckpt'" in result.stderr
    assert not marker.exists() and not (tmp_path / "lightning_logs").exists()
