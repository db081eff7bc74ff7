"""The Python API for notebooks: no global side effects at import, quiet runs that return objects, a study's rows."""

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_settings import TINY_CNN

from project.errors import UserError
from project.lab.api import finetune, pretrain, run_study

TINY = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 2,
        "trainer.limit_test_batches": 2}


def test_importing_the_api_changes_nothing_global() -> None:
    """Against the same third-party imports alone (some of those add warnings filters of their own at import)."""
    libraries = ("warnings, matplotlib, lightning.pytorch, lightning.pytorch.cli, torchvision, sklearn.linear_model, "
                 "sklearn.model_selection, scipy.stats, tensorboard.backend.event_processing.event_accumulator, "
                 "jsonargparse, tqdm, torchmetrics, yaml, logging")
    report = ("print(len(warnings.filters), matplotlib.get_backend(), "
              "[len(logging.getLogger(name).handlers) for name in ('lightning.pytorch', 'lightning.fabric')])")
    # One process (the libraries' imports are most of its time): the state after them, then after the API's import.
    program = f"import {libraries}; {report}; import project.lab.api; {report}"
    base, api = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                               check=True).stdout.splitlines()
    assert api == base  # the same warnings filters, matplotlib backend and logging handlers


def test_runs_from_python_are_quiet_and_return_their_results(capsys: pytest.CaptureFixture) -> None:
    source = pretrain({**TINY, "model.backbone_args": {"channels": [4, 8], "feature_size": 16, "batch_norm": True},
                       "output_dir": "runs"})
    assert 0.0 <= source.metrics["test/acc"] <= 1.0 and Path(source.log_dir, "config.yaml").is_file()
    run = finetune({**TINY, "output_dir": "runs", "model.pretrained": "runs/digits_pretrain", "model.lr": 0.01})
    assert run.model.hparams.lr == 0.01 and "test/acc" in run.metrics
    assert capsys.readouterr().out == ""  # quiet: nothing printed

    study = run_study({"pretrained": "runs/digits_pretrain", "methods": ["scratch", "lp_ft"], "budgets": [3],
                       "seeds": [1, 2], "output_dir": "study", "extra_args": ["--trainer.max_epochs=1", TINY_CNN]})
    assert capsys.readouterr().out == ""
    assert len(study.rows) == 4 and {row["method"] for row in study.rows} == {"scratch", "lp_ft"}
    assert all(isinstance(row["test_acc"], float) and isinstance(row["seed"], int) for row in study.rows)
    assert "gain over scratch" in study.tables and "study: [4/4]" in study.output
    pandas = pytest.importorskip("pandas", reason="the dev extra installs pandas")
    assert isinstance(study.dataframe(), pandas.DataFrame) and study.dataframe().shape[0] == 4


def test_a_bad_setting_raises_the_scripts_one_line_error() -> None:
    with pytest.raises(UserError, match="seeds"):
        run_study({"seeds": "not a list"})
    with pytest.raises(UserError, match="does not exist"):
        finetune({"model.pretrained": "no/such/run"})
    with pytest.raises(UserError, match=r"temperature=-1.0 must be > 0"):  # raised inside the class --model chose
        pretrain({"model": "SimCLRPretraining", "model.temperature": -1})


def test_pretraining_from_python_chooses_its_model_class_as_the_script_does() -> None:
    tiny_cnn = {"model.backbone_args": {"channels": [4, 8], "feature_size": 16, "batch_norm": True}}
    result = pretrain({**TINY, **tiny_cnn, "model": "SimCLRPretraining", "model.projection_dims": [16, 8],
                       "data.augment": False, "output_dir": "runs"})
    assert type(result.model).__name__ == "SimCLRPretraining" and set(result.metrics) == {"test/knn_acc"}
