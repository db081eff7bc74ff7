"""Two jobs at once never share a run folder: a new run claims its version_N atomically, a run being trained is
marked as such (so a second resume is refused and "the newest run" passes it over), and a marker left by a killed
process is taken over (audit 2026-12, D1: RC01, RC07, RC08)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_settings import SCRIPTS, TINY_CNN, TINY_RUN

from project.checkpoints.files import find_checkpoint
from project.checkpoints.run_claims import RUNNING_MARKER
from project.config.shipped import config_path
from project.models import ImageClassifier
from project.training.run import fit_and_test

PRETRAIN = [str(SCRIPTS / "pretrain.py"), *TINY_RUN, TINY_CNN]
IN_PROCESS = ["--config", str(config_path("digits_pretrain.yaml")), *TINY_RUN, TINY_CNN]  # the same run


def start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *PRETRAIN, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def live_process():
    """A process that stays alive while the test runs: the pid a marker of a run being trained would hold."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.slow
def test_two_runs_started_together_each_get_their_own_run_folder(tmp_path):
    first, second = start(tmp_path), start(tmp_path)
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    runs = sorted((tmp_path / "lightning_logs" / "digits_pretrain").iterdir())
    assert [run.name for run in runs] == ["version_0", "version_1"]
    for run in runs:
        assert len(list(run.glob("events.out.tfevents.*"))) == 2  # fit's and test's, of one process
        assert (run / "config.yaml").is_file() and not (run / RUNNING_MARKER).exists()
        assert len({path.name.split(".")[4] for path in run.glob("events.out.tfevents.*")}) == 1  # one pid wrote


def test_a_resume_of_a_run_another_process_trains_is_refused_before_writing(tmp_path, live_process, capsys):
    fit_and_test(ImageClassifier, IN_PROCESS)
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    (run / RUNNING_MARKER).write_text(f"{live_process.pid} {socket.gethostname()}\n")
    before = sorted(path.name for path in run.rglob("*"))
    from project.training.run import run_experiment

    with pytest.raises(SystemExit) as exit_info:
        run_experiment(ImageClassifier, "digits_pretrain.yaml",
                       [*TINY_RUN, TINY_CNN, "--ckpt_path=last", "--trainer.max_epochs=2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert f"another process (pid {live_process.pid} on {socket.gethostname()}) is training in" in err
    assert sorted(path.name for path in run.rglob("*")) == before  # no config-resume, no events file


def test_a_marker_left_by_a_killed_process_is_taken_over(tmp_path):
    fit_and_test(ImageClassifier, IN_PROCESS)
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / RUNNING_MARKER).write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")
    resumed = fit_and_test(ImageClassifier, [*IN_PROCESS, "--ckpt_path=last", "--trainer.max_epochs=2"])
    assert Path(resumed.log_dir).resolve() == run.resolve() and resumed.trainer.current_epoch == 2
    assert not (run / RUNNING_MARKER).exists()  # released when it stopped


def test_the_newest_run_of_an_experiment_is_never_one_still_being_trained(tmp_path, live_process, capsys):
    for _ in range(2):
        fit_and_test(ImageClassifier, IN_PROCESS)
    experiment = tmp_path / "lightning_logs" / "digits_pretrain"
    (experiment / "version_1" / RUNNING_MARKER).write_text(f"{live_process.pid} {socket.gethostname()}\n")
    chosen = find_checkpoint(experiment, "best")
    assert chosen.parent.parent.name == "version_0"
    assert f"passing over {experiment / 'version_1'}: still being trained" in capsys.readouterr().out


@pytest.mark.slow
def test_two_resumes_of_one_run_started_together_never_both_write_it(tmp_path):
    fit_and_test(ImageClassifier, IN_PROCESS)
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    processes = [start(tmp_path, "--ckpt_path=last", "--trainer.max_epochs=4") for _ in range(2)]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    assert all(code in (0, 2) for code, _ in results), results  # never a traceback
    refused = [err for code, err in results if code == 2]
    assert all("is training in" in err and err.count("\n") == 1 for err in refused), refused
    # One config-resume file per process that ran: a refused one wrote nothing into the run.
    assert len(list(run.glob("config-resume-*.yaml"))) == 2 - len(refused)
    assert not (run / RUNNING_MARKER).exists() and os.path.isfile(run / "checkpoints" / "last.ckpt")


def test_the_newest_run_is_a_finished_one_where_there_is_one(tmp_path, capsys):
    for _ in range(2):
        fit_and_test(ImageClassifier, IN_PROCESS)
    experiment = tmp_path / "lightning_logs" / "digits_pretrain"
    (experiment / "version_1" / "test_metrics.json").unlink()  # as a run killed before its final test leaves it
    assert find_checkpoint(experiment, "best").parent.parent.name == "version_0"
    assert "not finished (no final test); taking the newest finished run" in capsys.readouterr().out


def test_a_run_that_did_not_finish_is_taken_with_a_note_where_it_is_the_only_one(tmp_path, capsys):
    fit_and_test(ImageClassifier, IN_PROCESS)
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    (run / "test_metrics.json").unlink()  # as a pretraining killed before its final test leaves it
    capsys.readouterr()
    for location in (run.parent, run):  # the experiment folder, or the run folder itself
        assert find_checkpoint(location, "best").parent.parent == run
        out = capsys.readouterr().out
        assert out.startswith(f"note: {run} did not finish (no final test: stopped or killed") and out.count("\n") == 1
        assert f"rerun the command that started it with --ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in out
    given = next((run / "checkpoints").glob("best-*.ckpt"))
    assert find_checkpoint(given, "best") == given and capsys.readouterr().out == ""  # a file named: taken as it is
