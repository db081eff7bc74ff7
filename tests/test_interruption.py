"""Jobs that are stopped: SIGTERM saves and exits cleanly, SIGKILL never leaves a checkpoint that blocks resume,
a NaN loss stops with the step named; and the periodic mid-epoch checkpoint."""

import math
import re
import signal
import subprocess
import sys
import time
import zipfile
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
from project.data import ImageDataModule
from project.lightning_modules import ImageClassifier

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


def start_long_pretraining(cwd: Path, *args: str) -> subprocess.Popen:
    """The real script, long enough to be interrupted: many epochs, a checkpoint every step."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "pretrain.py"), *QUIET, TINY_CNN, "--trainer.max_epochs=500",
         "--checkpoint_every_n_steps=1", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_steps(checkpoints: Path, steps: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = checkpoints / "last.ckpt"
        if last.is_file() and zipfile.is_zipfile(last):
            try:
                if torch.load(last, weights_only=True)["global_step"] >= steps:
                    return
            except Exception:  # being replaced right now
                pass
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint of step {steps} in {checkpoints}")


def test_sigterm_saves_a_checkpoint_and_exits_cleanly_then_resume_continues(tmp_path):
    process = start_long_pretraining(tmp_path)
    checkpoints = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints"
    wait_for_steps(checkpoints, 15)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert f"stopped by SIGTERM: {Path('lightning_logs/digits_pretrain/version_0/checkpoints/last.ckpt')} saved; " \
        "continue with the same command and --ckpt_path last" in stderr and "Traceback" not in stderr
    stopped_at = load_checkpoint(checkpoints / "last.ckpt")["global_step"]
    assert stopped_at >= 15

    resume = [*QUIET, TINY_CNN, "--ckpt_path=last", "--trainer.max_epochs=3"]
    run_experiment(ImageClassifier, "digits_pretrain.yaml", resume)
    resumed = load_checkpoint(checkpoints / "last.ckpt")  # the same run folder, continued to the end
    data = ImageDataModule(classes=[0, 1, 2, 3, 4], batch_size=64)
    data.setup()
    assert resumed["global_step"] == 3 * math.ceil(len(data.train_set) / 64) > stopped_at
    assert [p.name for p in checkpoints.parent.parent.iterdir()] == ["version_0"]


def test_sigkill_while_checkpointing_every_step_leaves_a_loadable_newest_checkpoint(tmp_path):
    process = start_long_pretraining(tmp_path)
    checkpoints = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints"
    wait_for_steps(checkpoints, 5)
    for _ in range(20):  # kill while checkpoints are being written every step
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    last = find_checkpoint(tmp_path / "lightning_logs" / "digits_pretrain", "last")
    assert load_checkpoint(last)["global_step"] >= 5
    assert not [p for p in checkpoints.iterdir() if not p.name.endswith(".ckpt")]  # no temporary leftovers


def test_resume_skips_a_damaged_last_checkpoint_for_the_newest_good_one(tmp_path):
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*QUIET, TINY_CNN, "--trainer.max_epochs=1"])
    run_experiment(ImageClassifier, "digits_pretrain.yaml", [*QUIET, TINY_CNN, "--trainer.max_epochs=1"])
    experiment = tmp_path / "lightning_logs" / "digits_pretrain"
    damaged = experiment / "version_1" / "checkpoints" / "last.ckpt"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # as if cut off by a full disk
    assert find_checkpoint(experiment, "last") == experiment / "version_0" / "checkpoints" / "last.ckpt"


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
