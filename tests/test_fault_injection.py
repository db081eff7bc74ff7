"""Runs stopped every way a job is stopped, then resumed: each ends in its own folder, as long as the uninterrupted
run, with no debris and no curve point missing.

SIGKILL (in training, in a checkpoint write with $TMPDIR on another filesystem) and a SLURM requeue are real
processes; SIGTERM and Ctrl-C are sent by the run to itself at a chosen step, so the moment is exact.
"""

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from event_files import run_events
from lightning.pytorch import Callback
from tiny_settings import SCRIPTS, TINY_CNN, TINY_RUN

import project.models.transfer as transfer_module
import project.training.run_trainer as run_trainer
from project.checkpoints.atomic_io import TEMPORARY_PREFIX
from project.checkpoints.files import load_checkpoint
from project.config.shipped import config_dir
from project.lab.study.main import main as study_main
from project.models import ImageClassifier, TransferClassifier
from project.training.run import run_experiment

STEPS_PER_EPOCH, EPOCHS = 4, 3
SHORT_RUN = [
    TINY_CNN, f"--trainer.max_epochs={EPOCHS}", f"--trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--trainer.log_every_n_steps=1",
    "--model.scheduler=cosine", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]


def pretrain(*args: str) -> dict:
    return run_experiment(ImageClassifier, "digits_pretrain.yaml", [*SHORT_RUN, *args])


def curve_steps(run: Path) -> dict[str, list[int]]:
    """The steps each training curve has a point at (a resumed run may log a step twice: its set is what counts)."""
    steps: dict[str, set[int]] = {}
    for event in run_events(run):
        for value in event.summary.value:
            if value.tag in ("train/loss", "val/acc", "val/loss"):
                steps.setdefault(value.tag, set()).add(event.step)
    return {tag: sorted(values) for tag, values in steps.items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same short run, never stopped: what every interrupted one must end up as."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        pretrain()
    run = folder / "lightning_logs" / "digits_pretrain" / "version_0"
    return {"curves": curve_steps(run), "last": load_checkpoint(run / "checkpoints" / "last.ckpt")}


def assert_finished_like(run: Path, uninterrupted: dict) -> None:
    """`run` is the only run of its experiment, finished, its curves complete, no temporary file left."""
    assert [path.name for path in run.parent.iterdir()] == ["version_0"]
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (uninterrupted["last"]["epoch"], EPOCHS * STEPS_PER_EPOCH)
    assert curve_steps(run) == uninterrupted["curves"]  # every point of every curve
    test_steps = [event.step for event in run_events(run) for value in event.summary.value if value.tag == "test/acc"]
    assert EPOCHS * STEPS_PER_EPOCH in test_steps  # and the final test
    assert not list(run.rglob(f"{TEMPORARY_PREFIX}*")) and not list(run.glob("hpc_ckpt_*"))


class SendSignal(Callback):
    """Sends `signum` to this very process when training (or testing) reaches batch `at` of `stage`."""

    def __init__(self, signum: int, stage: str, at: int) -> None:
        self.signum, self.stage, self.at, self.sent = signum, stage, at, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.stage == "fit" and trainer.global_step == self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.stage == "test" and batch_idx == self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def signal_at():
    """`signal_at(signum, stage, at)`: the next runs get a SendSignal among their callbacks, until `.undo()` on what
    it returns."""
    patch = pytest.MonkeyPatch()

    def install(signum: int, stage: str, at: int) -> pytest.MonkeyPatch:
        sender = SendSignal(signum, stage, at)
        defaults = run_trainer.default_callbacks
        patch.setattr(run_trainer, "default_callbacks", lambda *args, **kwargs: [*defaults(*args, **kwargs), sender])
        return patch

    yield install
    patch.undo()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_training_saves_last_ckpt_and_the_resume_ends_like_the_uninterrupted_run(
    tmp_path, signal_at, uninterrupted, capsys, signum, status
):
    signalling = signal_at(signum, "fit", at=5)
    with pytest.raises(SystemExit) as exit_info:
        pretrain()
    assert exit_info.value.code == status
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    last = Path("lightning_logs/digits_pretrain/version_0/checkpoints/last.ckpt")
    assert capsys.readouterr().err == (
        f"stopped by {signal.Signals(signum).name}: {last} saved; continue with the same command and --ckpt_path last\n"
    )
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6  # the batch in progress finished
    signalling.undo()  # the resumed run is not signalled
    pretrain("--ckpt_path=last")
    assert_finished_like(run, uninterrupted)


def test_a_signal_in_the_final_test_leaves_training_complete_and_the_rerun_tests(tmp_path, signal_at, uninterrupted,
                                                                                  capsys):
    signalling = signal_at(signal.SIGTERM, "test", at=0)  # Lightning stops after the batch, unless it was the last one
    with pytest.raises(SystemExit) as exit_info:
        pretrain()
    assert exit_info.value.code == 143 and "stopped by SIGTERM in the final test" in capsys.readouterr().err
    signalling.undo()
    metrics = pretrain("--ckpt_path=last")
    out = capsys.readouterr().out
    assert "had finished max_epochs=3 already: nothing was trained, its selected checkpoint is tested" in out
    assert set(metrics) == {"test/acc", "test/loss"}
    assert_finished_like(tmp_path / "lightning_logs" / "digits_pretrain" / "version_0", uninterrupted)


def test_a_signal_during_a_study_exits_143_and_the_rerun_resumes_the_stopped_run(
    tmp_path, pretrained_run, signal_at, capsys
):
    args = [f"--pretrained={pretrained_run}", "--methods=[scratch, linear_probe]", "--budgets=[2]", "--seeds=[1]",
            f"--output_dir={tmp_path / 'study'}", f"--extra_args={SHORT_RUN}"]
    signalling = signal_at(signal.SIGTERM, "fit", at=2)  # in the first run, scratch (10 images: one batch an epoch)
    with pytest.raises(SystemExit) as exit_info:
        study_main(args)
    assert exit_info.value.code == 143
    assert capsys.readouterr().err.startswith("study stopped by SIGTERM while training: the finished runs are in ")
    assert not (tmp_path / "study" / "results.csv").exists()
    signalling.undo()
    study_main(args)
    rows = (tmp_path / "study" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("scratch,2,1,")
    stopped = tmp_path / "study" / "runs" / "scratch_2_seed1" / "version_0"
    assert (stopped / "config-resume-1.yaml").is_file()  # resumed from its last.ckpt, not started again
    assert [path.name for path in stopped.parent.iterdir()] == ["version_0"]


def test_resuming_by_path_continues_in_the_checkpoints_own_folder(tmp_path, uninterrupted):
    pretrain("--output_dir=out", "--experiment=a", "--trainer.max_epochs=1")
    pretrain("--output_dir=out")  # another experiment in the same output folder, at version_0 too
    other = tmp_path / "out" / "digits_pretrain" / "version_0"
    before = {path: path.read_bytes() for path in other.rglob("*") if path.is_file()}
    pretrain("--output_dir=out", "--ckpt_path", "out/a/version_0/checkpoints/last.ckpt")
    assert {path: path.read_bytes() for path in other.rglob("*") if path.is_file()} == before
    assert_finished_like(tmp_path / "out" / "a" / "version_0", uninterrupted)


def start(cwd: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "pretrain.py"), *SHORT_RUN, *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.001)


@pytest.mark.slow
def test_sigkill_in_a_checkpoint_write_with_tmpdir_elsewhere_keeps_a_complete_checkpoint(tmp_path, uninterrupted):
    other_filesystem = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    env = {**os.environ, "TMPDIR": str(other_filesystem)}
    # A wide feature layer, so each write takes long enough to be caught in the act.
    wide = "--model.backbone_args={channels: [4, 8], feature_size: 2048, batch_norm: true}"
    process = start(tmp_path, wide, "--trainer.max_epochs=20", "--checkpoint_every_n_steps=1", env=env)
    checkpoints = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints"
    wait_for(lambda: (checkpoints / "last.ckpt").is_file(), "a first checkpoint")
    wait_for(lambda: any(checkpoints.glob(f"{TEMPORARY_PREFIX}*")), "a checkpoint being written")
    process.kill()
    process.communicate(timeout=60)
    assert list(checkpoints.glob(f"{TEMPORARY_PREFIX}*")), "the kill came after the write: nothing was tested"
    assert zipfile.is_zipfile(checkpoints / "last.ckpt")  # the previous complete checkpoint, never a half one
    stopped_at = load_checkpoint(checkpoints / "last.ckpt")["global_step"]
    resumed = subprocess.run(
        [sys.executable, str(SCRIPTS / "pretrain.py"), *SHORT_RUN, wide, "--trainer.max_epochs=20",
         "--ckpt_path=last"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last = load_checkpoint(checkpoints / "last.ckpt")
    assert last["global_step"] == 20 * STEPS_PER_EPOCH > stopped_at
    assert not list(checkpoints.glob(f"{TEMPORARY_PREFIX}*"))  # the killed write's leftover is gone


@pytest.mark.slow
def test_sigkill_during_training_resumes_to_the_end_with_every_curve_point(tmp_path, uninterrupted):
    process = start(tmp_path, "--trainer.max_epochs=3")
    checkpoints = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints"
    wait_for(lambda: (checkpoints / "last.ckpt").is_file(), "the first epoch's checkpoint")
    process.kill()
    process.communicate(timeout=60)
    pretrain("--ckpt_path=last")
    assert_finished_like(checkpoints.parent, uninterrupted)


@pytest.mark.slow
def test_a_requeued_slurm_job_continues_in_its_own_run_folder(tmp_path, uninterrupted):
    """Simulated: SLURM's variables set, a stand-in `scontrol` on the PATH, the requeue signal sent, then the job
    killed and started again with the same job id, as the scheduler would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'requeued'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "pretrain",
        "SLURM_NTASKS": "1", "SLURM_NODEID": "0", "SLURM_LOCALID": "0", "SLURM_PROCID": "0",
        "SLURM_NODELIST": "localhost",
    }
    process = start(tmp_path, "--trainer.max_epochs=60", env=env)
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    wait_for(lambda: (run / "checkpoints" / "last.ckpt").is_file(), "a first checkpoint")
    process.send_signal(signal.SIGUSR1)  # what SLURM sends before the end of the job's time
    wait_for(lambda: (tmp_path / "requeued").is_file() and list(run.glob("hpc_ckpt_*.ckpt")), "the requeue")
    time.sleep(1)  # the checkpoint's rename is done before scontrol is called; let the process go on briefly
    process.kill()  # the scheduler ends the job, then starts it again with the same id
    process.communicate(timeout=60)
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]
    saved = torch.load(next(run.glob("hpc_ckpt_*.ckpt")), weights_only=True)["global_step"]
    again = subprocess.run(
        [sys.executable, str(SCRIPTS / "pretrain.py"), *SHORT_RUN, "--trainer.max_epochs=60"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert [path.name for path in run.parent.iterdir()] == ["version_0"]  # no new version_1
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 60 * STEPS_PER_EPOCH > saved
    assert not list(run.glob("hpc_ckpt_*.ckpt"))  # superseded by the finished run's own checkpoints


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_logistic_probes_fit_stops_it_there_and_the_resume_fits_it_again(
    tmp_path, monkeypatch, pretrained_run, capsys, signum, status
):
    # The probe's fit has no batches of Lightning's: without its own checks a Ctrl-C waited for the whole fit
    # (minutes with probe_views) and was then forgotten, and SIGTERM killed the run without a checkpoint.
    fits_started = []
    real_fit = transfer_module.fit_logistic_probe

    def fit_signalled_at_its_first_fit(*args, between_fits, **kwargs):
        def signalled_once() -> None:
            if not fits_started:
                os.kill(os.getpid(), signum)
            fits_started.append(1)
            between_fits()

        return real_fit(*args, between_fits=signalled_once, **kwargs)

    monkeypatch.setattr(transfer_module, "fit_logistic_probe", fit_signalled_at_its_first_fit)
    args = ["--config", str(config_dir() / "digits_finetune.yaml"), "--config",
            str(config_dir() / "strategy" / "logistic_probe.yaml"), *TINY_RUN, f"--model.pretrained={pretrained_run}",
            "--data.samples_per_class=6"]
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(TransferClassifier, "digits_finetune.yaml", args)
    assert exit_info.value.code == status and fits_started == [1]  # stopped before a second fit
    assert f"stopped by {signal.Signals(signum).name}: " in capsys.readouterr().err
    run = tmp_path / "lightning_logs" / "digits_finetune" / "version_0"
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 0
    monkeypatch.setattr(transfer_module, "fit_logistic_probe", real_fit)
    resumed = run_experiment(TransferClassifier, "digits_finetune.yaml", [*args, "--ckpt_path=last"])
    uninterrupted = run_experiment(TransferClassifier, "digits_finetune.yaml", [*args, "--experiment=uninterrupted"])
    assert resumed == uninterrupted  # the same probe, fit in full on resume
    heads = [load_checkpoint(tmp_path / "lightning_logs" / experiment / "version_0" / "checkpoints" / "last.ckpt")
             ["state_dict"]["head.weight"] for experiment in ("digits_finetune", "uninterrupted")]
    torch.testing.assert_close(*heads)


def test_sigterm_in_a_fixmatch_epoch_saves_last_ckpt_with_the_averaged_weights_and_the_resume_finishes(
    tmp_path, signal_at, pretrained_run, capsys
):
    args = ["--config", str(config_dir() / "digits_finetune.yaml"), "--config",
            str(config_dir() / "strategy" / "fixmatch.yaml"), *SHORT_RUN, f"--model.pretrained={pretrained_run}",
            "--model.distribution_alignment=true"]
    signalling = signal_at(signal.SIGTERM, "fit", at=5)  # in the second epoch (4 steps each)
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(TransferClassifier, "digits_finetune.yaml", args)
    assert exit_info.value.code == 143 and "stopped by SIGTERM: " in capsys.readouterr().err
    run = tmp_path / "lightning_logs" / "digits_finetune" / "version_0"
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 6 and {"current_model_state", "pool_prediction"} <= last.keys()
    signalling.undo()
    run_experiment(TransferClassifier, "digits_finetune.yaml", [*args, "--ckpt_path=last"])
    run_experiment(TransferClassifier, "digits_finetune.yaml", [*args, "--experiment=uninterrupted"])
    finished, uninterrupted = (load_checkpoint(tmp_path / "lightning_logs" / experiment / "version_0" / "checkpoints"
                                               / "last.ckpt") for experiment in ("digits_finetune", "uninterrupted"))
    assert finished["global_step"] == uninterrupted["global_step"] == EPOCHS * 3  # an epoch: the pool's 3 batches
    assert [path.name for path in run.parent.iterdir()] == ["version_0"]
