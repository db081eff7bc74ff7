"""The project from Python (a notebook, a script of one's own): the same runs as the scripts, returning objects.

    from project.lab.api import finetune, pretrain, run_study
    run = finetune({"trainer.max_epochs": 3, "model.lr": 0.01})      # a RunResult: metrics, log_dir, model, ...
    study = run_study({"seeds": [0, 1], "budgets": [10]})             # a StudyResult: rows, tables, dataframe()

Importing it changes nothing global (no matplotlib backend, no warnings filters, no logging handlers). Output is
quiet by default (`quiet=False` shows the runs' lines and progress as the scripts do); a mistake raises
`UserError` with the one-line message the scripts print.
"""

import contextlib
import io
import logging
from argparse import ArgumentError
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ArgumentParser

from project.config.files import as_overrides
from project.config.shipped import config_dir
from project.errors import UserError, argument_error_line, user_error_behind
from project.lab.study.main import study
from project.lab.study.summary import read_results
from project.models import BackboneModule, TransferClassifier
from project.progress import showing_progress
from project.training.run import RunResult, fit_and_test

Overrides = dict[str, object] | list[str] | None
NUMBERS = {"seed": int, "test_acc": float, "test_loss": float, "val_acc": float, "labels_per_class": float,
           "val_labels_per_class": float, "epochs": int, "wall_time_s": float, "trained_params": int}


@dataclass
class StudyResult:
    """A study's rows (one per run, numbers as numbers), its summary tables (markdown), and where it is."""

    rows: list[dict]
    tables: str
    output_dir: Path
    output: str  # what the study printed (empty unless quiet)

    def dataframe(self):
        """The rows as a pandas DataFrame (pandas is the `notebook` extra, not a core dependency)."""
        try:
            import pandas
        except ModuleNotFoundError as error:
            raise UserError("StudyResult.dataframe() needs pandas: pip install 'lightning-transfer-lab[notebook]'") \
                from error
        return pandas.DataFrame(self.rows)


def finetune(overrides: Overrides = None, config: str = "digits_finetune.yaml", quiet: bool = True) -> RunResult:
    """Fine-tune as scripts/finetune.py does, with `overrides` such as {"model.lr": 0.01} or ["--model.lr=0.01"]."""
    args = ["--config", shipped(config), *as_args(overrides)]
    with output_shown(not quiet), user_errors():
        return fit_and_test(TransferClassifier, args + quiet_args(quiet), summary=not quiet)


def pretrain(overrides: Overrides = None, config: str = "digits_pretrain.yaml", quiet: bool = True) -> RunResult:
    """Pretrain as scripts/pretrain.py does (`{"model": "SimCLRPretraining"}` in the overrides, or the config's
    `model: class_path:`, picks the objective; the labels' ImageClassifier by default)."""
    args = ["--config", shipped(config), *as_args(overrides)]
    with output_shown(not quiet), user_errors():
        return fit_and_test(BackboneModule, args + quiet_args(quiet), summary=not quiet)


def run_study(settings: dict | None = None, config: str = "study_digits.yaml", quiet: bool = True) -> StudyResult:
    """Run (or continue) a study as scripts/study.py does: `settings` override the config's, e.g.
    {"methods": ["scratch", "lp_ft"], "seeds": [0, 1, 2], "output_dir": "lightning_logs/my_study"}."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_function_arguments(study)  # the script's parser: the same checks of every setting
    with user_errors():
        parsed = parser.parse_args(["--config", shipped(config), *as_args(settings)])
    arguments = {key: value for key, value in parsed.as_dict().items() if key not in ("config", "__path__")}
    captured = io.StringIO()
    with output_shown(not quiet, into=captured):
        tables = study(**arguments)
    output_dir = Path(arguments["output_dir"])
    rows = [{key: number(key, value) for key, value in row.items()} for row in read_results(output_dir / "results.csv")]
    return StudyResult(rows, tables, output_dir, captured.getvalue())


def number(key: str, value: str) -> object:
    """A results.csv cell as Python reads it: numbers as numbers ("all" labels per class stays a word)."""
    if key == "samples_per_class":
        return int(value) if value.isdigit() else value
    return NUMBERS[key](value) if key in NUMBERS and value != "" else value


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The parser's refusals as the scripts' one-line UserError, as the API promises."""
    try:
        yield
    except ArgumentError as error:
        raise UserError(argument_error_line(str(error))) from error
    except ValueError as error:  # a class chosen by `model` is built inside jsonargparse, which wraps its UserError
        cause = user_error_behind(error)
        if cause is None:
            raise
        raise cause from error


def shipped(config: str) -> str:
    """A config path as given, or one of the project's shipped configs by name."""
    return config if Path(config).is_file() else str(config_dir() / Path(config).name)


def as_args(overrides: Overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, list):
        return [str(arg) for arg in overrides]
    return as_overrides(overrides)


def quiet_args(quiet: bool) -> list[str]:
    return ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"] if quiet else []


@contextlib.contextmanager
def output_shown(shown: bool, into: io.StringIO | None = None) -> Iterator[None]:
    """Quiet: printed lines go to `into` (or nowhere), Lightning's notes and progress are not shown; all restored."""
    if shown:
        yield
        return
    lightning = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in lightning]
    for logger in lightning:
        logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(into or io.StringIO()), showing_progress(False):
            yield
    finally:
        for logger, level in zip(lightning, levels, strict=True):
            logger.setLevel(level)
