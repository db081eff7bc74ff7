"""Progress that suits where it goes: plain lines in a log file (never carriage returns), bars with a rate and an
ETA on a terminal, nothing when turned off."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from tiny_settings import SCRIPTS, TINY_CNN

import project.progress
from project.progress import Progress, showing_progress


def test_in_a_log_file_a_loop_writes_a_line_per_tenth_with_rate_and_eta(capsys, monkeypatch) -> None:
    monkeypatch.setattr(project.progress, "LINE_EVERY_SECONDS", 0.0)  # every 10 %, however fast the loop
    assert list(Progress(range(100), "decoding images", unit="img")) == list(range(100))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0].startswith("decoding images: 10/100 (10 %), ") and " img/s, ETA " in lines[0]
    assert lines[-1].startswith("decoding images: 100/100 (100 %)")


def test_turned_off_a_loop_writes_nothing(capsys, monkeypatch) -> None:
    monkeypatch.setattr(project.progress, "LINE_EVERY_SECONDS", 0.0)
    with showing_progress(False):
        assert sum(Progress(range(50), "study")) == sum(range(50))
    assert capsys.readouterr().err == ""


def test_a_training_run_into_a_log_file_writes_few_plain_lines(tmp_path: Path) -> None:
    """10 epochs with their output redirected to a file (nohup, SLURM): lines, not a bar's updates."""
    log = tmp_path / "run.log"
    with log.open("w") as file:
        done = subprocess.run([sys.executable, str(SCRIPTS / "pretrain.py"), "--trainer.max_epochs=10", TINY_CNN,
                               "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=2",
                               "--trainer.enable_model_summary=false"],
                              stdout=file, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    progress = [line for line in text.splitlines() if line.startswith(("epoch ", "test done"))]
    assert 10 <= len(progress) < 200
    assert "epoch 10/10 done in " in text and "val/acc=" in text
    first_epoch = next(line for line in progress if line.startswith("epoch 1/10 done"))
    assert "train/acc=" in first_epoch  # the epoch's own, logged by the module after the callbacks' epoch end


@pytest.mark.slow
def test_on_a_terminal_transferability_shows_bars_with_rate_and_eta(tmp_path: Path) -> None:
    """Scoring a source and the probe's fits, under a pseudo-terminal 100 columns wide, as a user sees them."""
    subprocess.run([sys.executable, str(SCRIPTS / "pretrain.py"), TINY_CNN, "--trainer.max_epochs=1",
                    "--trainer.enable_progress_bar=false"], check=True, capture_output=True, timeout=600)
    command = [sys.executable, str(SCRIPTS / "transferability.py"), "--sources=[lightning_logs/digits_pretrain]",
               "--random_inits=1"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the script on the terminal
        os.execv(sys.executable, command)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # 40 rows, 100 columns
    output = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "\r" in text  # a live bar, redrawn in place
    assert "scoring pretrained + 1 random" in text and "backbone/s" in text  # the backbones' bar, with its rate
    assert "logistic probe" in text and "C/s" in text  # the probe's fits
    assert "<" in text.split("scoring ", 1)[1]  # tqdm's elapsed<remaining: the ETA


@pytest.mark.parametrize("quiet", [False, True])
def test_a_study_shows_run_k_of_n_with_an_eta_unless_quiet(quiet: bool, capsys, monkeypatch) -> None:
    from project.lab.study.main import main as study_main

    monkeypatch.setattr(project.progress, "LINE_EVERY_SECONDS", 0.0)
    study_main(["--methods=[scratch]", "--budgets=[3]", "--seeds=[1, 2]", "--output_dir=study",
                f"--extra_args={json.dumps(['--trainer.max_epochs=1', TINY_CNN])}", f"--quiet={str(quiet).lower()}"])
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("study: ")]
    if quiet:
        assert progress == []
    else:
        assert [line.split(",")[0] for line in progress] == ["study: 1/2 (50 %)", "study: 2/2 (100 %)"]
        assert " run/s, ETA " in progress[0]
    assert "study: [2/2] scratch_3_seed2: test acc" in captured.out  # the runs' result lines either way
