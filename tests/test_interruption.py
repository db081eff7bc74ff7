"""Runs that stop on their own: a NaN loss with the step named, a GPU asked for where there is none; a damaged
last.ckpt; the periodic mid-epoch checkpoint. (Runs stopped by signals: test_fault_injection.py.)"""

import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tiny_settings import TINY_CNN

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.errors import UserError
from project.models import ImageClassifier
from project.training.callbacks.interruption import StopOnSignal
from project.training.run import run_experiment

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


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoints(tmp_path, capsys):
    # lr 20 diverges after some steps (measured: 16 to 40); a checkpoint every step is written until then.
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(ImageClassifier, "digits_pretrain.yaml", [
            *QUIET, TINY_CNN, "--trainer.max_epochs=50", "--model.lr=20", "--model.scheduler=none",
            "--checkpoint_every_n_steps=1",
        ])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    # Caught at a checkpoint save (weights) or at the next forward pass (loss), whichever comes first.
    assert re.match(r"error: the (training loss became (nan|inf) at|weights became NaN or infinite by) step \d+", err)
    checkpoints = list((tmp_path / "lightning_logs").rglob("*.ckpt"))
    assert checkpoints  # the run got far enough to write some: they must all be usable
    for path in checkpoints:
        state = load_checkpoint(path)["state_dict"]
        assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


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


def test_slurms_requeue_signal_is_handled_at_the_next_batch_end_not_inside_the_handler(tmp_path, monkeypatch):
    """The signal only marks the request (Lightning's own handler, which saves and flushes inside the signal
    handler, is kept out); the requeue checkpoint and `scontrol requeue` come at the next training batch end."""
    import os
    import signal

    from lightning.pytorch import Callback
    from torch.utils.data import DataLoader, TensorDataset

    from project.training.callbacks.slurm_requeue import RequeueBetweenSteps

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'requeued'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for name, value in {"SLURM_JOB_ID": "77", "SLURM_JOB_NAME": "pretrain", "SLURM_NTASKS": "1", "SLURM_NODEID": "0",
                        "SLURM_LOCALID": "0", "SLURM_PROCID": "0", "SLURM_NODELIST": "localhost"}.items():
        monkeypatch.setenv(name, value)
    seen = {}

    class SignalAtStep(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGUSR1)  # handled at once: only noted
                seen["files right after the signal"] = sorted(p.name for p in tmp_path.glob("hpc_ckpt_*.ckpt"))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 3:  # after RequeueBetweenSteps's own batch end of this step
                seen["files at the batch end"] = sorted(p.name for p in tmp_path.glob("hpc_ckpt_*.ckpt"))

    model = ImageClassifier(input_shape=(1, 8, 8), num_classes=2, backbone="mlp", backbone_args={"hidden_sizes": [4]})
    data = DataLoader(TensorDataset(torch.randn(20, 1, 8, 8), torch.tensor([0, 1] * 10)), batch_size=4)  # 5 steps
    trainer = Trainer(default_root_dir=tmp_path, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                      callbacks=[RequeueBetweenSteps(), SignalAtStep()])
    trainer.fit(model, train_dataloaders=data)
    assert seen == {"files right after the signal": [], "files at the batch end": ["hpc_ckpt_1.ckpt"]}
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "77"]  # once
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)  # the handler is gone with the fit
