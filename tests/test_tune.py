"""scripts/tune.py: a sweep on the budgeted validation split that continues after a stop, never tests, and writes
an overlay that a study takes as it is."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from tiny_settings import SCRIPTS, TINY_CNN

from project.lab.study.main import main as study_main
from project.lab.tune.main import main as tune_main

TINY_TRIAL = ["--trainer.max_epochs=2", "--trainer.limit_val_batches=2", TINY_CNN]


def sweep(source: Path, *args: str) -> None:
    tune_main([f"--pretrained={source}", "--output_dir=sweep", "--label_draws=[101, 102]",
               f"--extra_args={TINY_TRIAL}", "--search_space={model.lr: {low: 0.005, high: 0.1, log: true}}", *args])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny pretraining run for the module's sweeps (they read it, never change it)."""
    folder = tmp_path_factory.mktemp("tune_source")
    subprocess.run([sys.executable, str(SCRIPTS / "pretrain.py"), TINY_CNN, "--trainer.max_epochs=1",
                    "--trainer.limit_train_batches=3", f"--output_dir={folder}", "--trainer.enable_progress_bar=false"],
                   check=True, capture_output=True, timeout=600, cwd=folder)
    return folder / "digits_pretrain"


def test_a_stopped_sweep_continues_and_its_overlay_feeds_a_study(source, capsys) -> None:
    sweep(source, "--trials=2")
    storage = f"sqlite:///{Path('sweep/tune.db').resolve()}"
    trials = optuna.load_study(study_name="tune", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t.user_attrs["val_acc_per_draw"]) == 2 for t in trials)  # the mean of both label draws
    assert not list(Path("sweep/runs").rglob("test_metrics.json"))  # no run was tested
    assert not list(Path("sweep/runs").rglob("*.ckpt"))  # scored, not kept

    # A process killed mid-trial leaves it `running`: the continued sweep tries its settings again.
    killed = optuna.load_study(study_name="tune", storage=storage).ask()
    lr = killed.suggest_float("model.lr", 0.005, 0.1, log=True)
    sweep(source, "--trials=4")
    trials = optuna.load_study(study_name="tune", storage=storage).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    assert any(t.user_attrs.get("retry_of") == killed.number and t.params["model.lr"] == lr for t in finished)
    assert len({t.params["model.lr"] for t in trials}) == len(trials) - 1  # new settings, not the first start's again

    best = yaml.safe_load(Path("sweep/best.yaml").read_text())
    assert set(best) == {"model"} and 0.005 <= best["model"]["lr"] <= 0.1
    assert best["model"]["lr"] == max((t for t in finished if t.value is not None), key=lambda t: t.value).params[
        "model.lr"]
    assert Path("sweep/trials.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "| trial | model.lr | mean val acc | per draw |" in out

    study_main([f"--pretrained={source}", "--methods=[scratch, full]", "--budgets=[3]", "--seeds=[1]",
                "--output_dir=study", f"--extra_args={TINY_TRIAL}",
                "--per_method_args={full: [--config=sweep/best.yaml]}"])
    config = yaml.safe_load(next(Path("study/runs").glob("full_3_seed1/version_0/config.yaml")).read_text())
    assert config["model"]["lr"] == best["model"]["lr"]


def test_a_sweep_with_other_settings_in_the_same_folder_is_refused(source, capsys) -> None:
    sweep(source, "--trials=1")
    with pytest.raises(SystemExit) as exit_info:
        sweep(source, "--trials=2", "--label_draws=[7]")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: the sweep in this output_dir ran with other label_draws: give another "
                                       "--output_dir for a new sweep, or the same settings to continue it\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--search_space={model.lr: {low: 0.1, high: 0.01}}"], "search_space.model.lr: low=0.1 must be below high=0.01"),
    (["--search_space={model.lr: {low: 0, high: 0.1, log: true}}"], "search_space.model.lr: a log scale needs low > 0"),
    (["--search_space={seed_everything: {choices: [1, 2]}}"], "search_space.seed_everything: the sweep sets"),
    (["--search_space={model.lr: 0.1}"], "is not valid: expected dict"),
    (["--search_space={model.no_such_setting: {choices: [1]}}"], "no_such_setting"),
    (["--trials=0"], "trials=0 must be at least 1"),
    (["--label_draws=[1, 1]"], "label_draws [1, 1]: give one or more seeds, each once"),
])
def test_a_bad_sweep_setting_is_one_line_and_writes_nothing(source, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tune_main([f"--pretrained={source}", "--output_dir=sweep", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not Path("sweep").exists()


def test_without_optuna_the_sweep_is_one_line_naming_the_extra() -> None:
    code = (f"import sys; sys.modules['optuna'] = None; sys.argv = ['tune.py']; "
            f"exec(open({str(SCRIPTS / 'tune.py')!r}).read())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == ("error: scripts/tune.py needs Optuna (optuna is not installed): "
                           "pip install 'lightning-transfer-lab[optuna]'\n")


def test_a_choice_the_runs_refuse_is_found_before_the_sweep_writes_anything(source, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sweep(source, "--trials=1", "--search_space={model.optimizer: {choices: [sgd, bogus]}}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model.optimizer='bogus' is not valid" in err, err
    assert not Path("sweep").exists()


def test_a_damaged_sweep_database_is_one_line_and_left_as_it_was(source, capsys) -> None:
    Path("sweep").mkdir()
    Path("sweep/tune.db").write_text("not a database")
    with pytest.raises(SystemExit) as exit_info:
        sweep(source, "--trials=1")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: 'sweep/tune.db' cannot be read as a sweep's database (DatabaseError): "
                                       "move it away to start the sweep anew, or give another --output_dir\n")
    assert Path("sweep/tune.db").read_text() == "not a database"
