"""The study command line: jsonargparse reads the study's settings from YAML and --dotted overrides."""

import sys
from pathlib import Path
from typing import Literal

from jsonargparse import CLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from project.cli import CONFIG_DIR
from project.errors import UserError
from project.study.runner import run_study
from project.study.summary import summarize


def study(
    finetune_config: str = str(CONFIG_DIR / "digits_finetune.yaml"),
    pretrained: str = "lightning_logs/digits_pretrain",
    methods: list[str] | None = None,
    budgets: list[int | None] | None = None,
    seeds: list[int] | None = None,
    output_dir: str = "lightning_logs/study_digits",
    extra_args: list[str] | None = None,
    keep_checkpoints: bool = False,
    metric: Literal["test_acc", "val_acc"] = "test_acc",
) -> str:
    """Train the target task from scratch and with each fine-tuning method, at each label budget and seed.

    Args:
        finetune_config: the fine-tuning config that defines the target task.
        pretrained: the source checkpoint (a .ckpt, a run folder or an experiment folder).
        methods: `scratch`, `configured` (the fine-tuning config as it is) and strategy names
            (configs/strategy/*.yaml).
        budgets: labelled training images per class; null means all.
        seeds: each seeds both the training and the label sample.
        output_dir: gets results.csv (one row per run, written as each finishes), results.md, results.png.
        extra_args: more overrides for every run, e.g. ["--trainer.max_epochs=20"].
        keep_checkpoints: keep every run's checkpoints (by default only its results are kept).
        metric: what the tables and plot summarize: `test_acc` to report results; `val_acc` (written to
            results_val.md) to choose settings on the label-budgeted validation split, never on test.
    """
    config = Path(finetune_config)
    if not config.is_file() and (CONFIG_DIR.parent / config).is_file():  # a repo-relative path, run from elsewhere
        config = CONFIG_DIR.parent / config
    if not config.is_file():
        raise UserError(f"finetune_config {finetune_config!r} does not exist: name a fine-tuning config file")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_study(
        config, pretrained, methods or ["scratch", "linear_probe", "full", "gradual", "lp_ft"],
        budgets or [5, 20, 100, None], seeds or [1, 2, 3], output, extra_args or [], keep_checkpoints,
    )
    table = summarize(output, metric)
    stem = "results" if metric == "test_acc" else "results_val"
    print(f"\n{table}\n\nwritten: {output / 'results.csv'}, {output / (stem + '.md')}, {output / (stem + '.png')}")
    return table


def main(args: list[str] | None = None) -> None:
    if args is None and not any(a == "--config" or a.startswith("--config=") for a in sys.argv[1:]):
        args = ["--config", str(CONFIG_DIR / "study_digits.yaml"), *sys.argv[1:]]
    try:
        CLI(study, args=args, as_positional=False)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except MisconfigurationException as error:  # a Trainer setting in extra_args, e.g. a GPU where none is
        print(f"error: {error} Check the --trainer settings in --extra_args.", file=sys.stderr)
        sys.exit(2)
