"""scripts/study.py: jsonargparse reads the study's settings from YAML (configs/study_digits.yaml by default) and
--dotted overrides, every one checked before the study writes anything."""

from pathlib import Path
from typing import Literal

from project.config.shipped import shipped_or_given
from project.errors import UserError
from project.lab.function_cli import run_function_cli
from project.lab.study.runner import StudySettings, check_study, run_study
from project.lab.study.summary import summarize
from project.progress import showing_progress


def study(
    finetune_config: str,
    pretrained: str,
    methods: list[str],
    budgets: list[int | None],
    seeds: list[int],
    output_dir: str,
    extra_args: list[str] | None = None,
    per_method_args: dict[str, list[str]] | None = None,
    keep_checkpoints: bool = False,
    metric: Literal["test_acc", "val_acc"] = "test_acc",
    split_seed: int | None = None,
    select_on_val: list[str] | None = None,
    paired_with: list[str] | None = None,
    quiet: bool = False,
) -> str:
    """Train the target task from scratch and with each fine-tuning method, at each label budget and seed.

    Args:
        finetune_config: the fine-tuning config that defines the target task (a path, or a shipped config's name
            such as `configs/digits_finetune.yaml`).
        pretrained: the source checkpoint (a .ckpt, a run folder or an experiment folder).
        methods: `scratch`, `configured` (the fine-tuning config as it is) and strategy names
            (configs/strategy/*.yaml).
        budgets: labelled training images per class (validation gets as many); null means all.
        seeds: each seeds the training, the held-out splits and the label sample, alike for every method.
        split_seed: hold out the same validation and test images in every run (only the labelled images and the
            training vary by seed): for a backbone pretrained without labels on every other image of the data.
        output_dir: gets results.csv (one row per run, written as each finishes), results.md, results.png.
        extra_args: more overrides for every run, e.g. ["--trainer.max_epochs=20"].
        per_method_args: overrides for one method's runs, after extra_args, e.g. `{scratch: [--model.lr=0.02]}`:
            each method at the settings the validation split chose for it, so no baseline runs at another's lr.
        keep_checkpoints: keep every run's checkpoints (by default only its results are kept).
        metric: what the tables and plot summarize: `test_acc` to report results; `val_acc` (written to
            results_val.md) to choose settings on the label-budgeted validation split, never on test.
        select_on_val: two or more of the methods to choose between run by run: each budget and seed gets the
            one with the best accuracy on its own label-budgeted validation split, reported as the method
            `val-chosen: a / b` (the pick per seed listed under the tables). Only the summary changes.
        paired_with: methods each method is also compared with, seed by seed, besides scratch: e.g. `lp_ft` for
            a semi-supervised method from the same backbone, so one table shows what the pretraining buys and the
            next what the unlabelled pool adds; `val-chosen`, the select_on_val row. Only the summary changes.
        quiet: no progress bar or progress lines (the runs' result lines and the tables are still printed).
    """
    check_selection(select_on_val, methods)
    baselines = [*methods, *(["val-chosen"] if select_on_val else [])]
    unknown = [method for method in paired_with or [] if method not in baselines]
    if unknown:
        raise UserError(f"paired_with names {unknown}, not among the methods {methods}: add it to --methods (or "
                        f"`val-chosen` with --select_on_val)")
    settings = StudySettings(
        finetune_config=resolve_config(finetune_config), pretrained=pretrained, methods=methods, budgets=budgets,
        seeds=seeds, output_dir=Path(output_dir), extra_args=extra_args or [], per_method_args=per_method_args or {},
        keep_checkpoints=keep_checkpoints, split_seed=split_seed, select_on_val=select_on_val or [],
    )
    check_study(settings)  # everything that can fail before training fails now, with nothing written
    with showing_progress(not quiet):
        run_study(settings)
    table = summarize(settings.output_dir, metric, select_on_val, paired_with)
    stem = "results" if metric == "test_acc" else "results_val"
    output = settings.output_dir
    print(f"\n{table}\n\nwritten: {output / 'results.csv'}, {output / (stem + '.md')}, {output / (stem + '.png')}")
    return table


def check_selection(select_on_val: list[str] | None, methods: list[str]) -> None:
    if select_on_val is None:
        return
    if len(set(select_on_val)) < 2:
        raise UserError(f"select_on_val {select_on_val}: name at least two methods to choose between")
    missing = [method for method in select_on_val if method not in methods]
    if missing:
        raise UserError(f"select_on_val names {missing}, not among the methods {methods}: add it to --methods")


def resolve_config(finetune_config: str) -> Path:
    """A path as given, or `configs/<name>` as shipped with the project (wherever it is run from)."""
    path = Path(shipped_or_given(finetune_config))
    if not path.is_file():
        raise UserError(f"finetune_config {finetune_config!r} does not exist: name a fine-tuning config file")
    return path


def main(args: list[str] | None = None) -> None:
    run_function_cli(study, "study_digits.yaml", args, lambda stop: (
        f"study stopped by {stop.signal_name} while {stop.stage}: the finished runs are in results.csv; run the same "
        f"command to continue (the interrupted run resumes from its last.ckpt)"))
