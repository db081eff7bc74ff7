"""scripts/tune.py: choose fine-tuning settings with Optuna on the label-budgeted validation split, never on test.

Each trial trains the study's run of one method at one label budget on a few label draws (the study's own
arguments: the same splits a study with those seeds makes) and scores their mean best validation accuracy: with
10 labels per class, one draw's validation is 50 images, too few to rank settings on alone. The test split is
never evaluated. Bad trials are stopped early by Optuna's Lightning pruning callback (on the first draw, whose
curves every trial shares). The trials live in an SQLite file, so a stopped sweep continues where it was (an
interrupted trial is tried again). The best settings are written as a config overlay (best.yaml) that a run
takes after its fine-tuning config and a study takes in per_method_args; trials.png plots the sweep.
"""

import shutil
import time
from pathlib import Path

import yaml

from project.checkpoints.output_files import replace_file
from project.checkpoints.run_claims import claim_run, release_run, writer_of
from project.config.files import as_overrides
from project.errors import UserError
from project.lab.function_cli import run_function_cli
from project.lab.study.main import resolve_config
from project.lab.study.runner import StudySettings, check_study, preview_run, run_args
from project.lab.tune.search_space import check_search_space, overlay, suggest
from project.lab.tune.trials_plot import score, trials_figure
from project.models import TransferClassifier
from project.progress import Progress, showing_progress
from project.training.callbacks.interruption import RunInterrupted
from project.training.run import fit_and_test

EXTRA = "pip install 'lightning-transfer-lab[optuna]'"


def tune(
    finetune_config: str,
    pretrained: str,
    method: str,
    samples_per_class: int | None,
    label_draws: list[int],
    search_space: dict[str, dict],
    trials: int,
    output_dir: str,
    extra_args: list[str] | None = None,
    split_seed: int | None = None,
    prune: bool = True,
    sampler_seed: int = 0,
    quiet: bool = False,
) -> dict:
    """Search `search_space` for `method` at `samples_per_class` labels per class; returns the best values.

    Args:
        finetune_config: the fine-tuning config of the target task (as in a study).
        pretrained: the source checkpoint (a .ckpt, a run or experiment folder, or torchvision:/timm: weights).
        method: the study method whose runs are tuned: scratch, configured or a strategy (configs/strategy/*.yaml).
        samples_per_class: the label budget (null: every label); validation gets as many, as in a study.
        label_draws: the seeds of the label samples a trial averages over (keep them apart from the seeds a
            study reports: tuning on the reported seeds' validation would tune on their label draws).
        search_space: dotted setting -> {low, high[, log][, step]} or {choices: [...]}.
        trials: how many finished trials the sweep has when it ends (a continued sweep runs the rest).
        output_dir: gets tune.db (the trials), best.yaml, trials.png and runs/.
        extra_args: more overrides for every run, e.g. ["--trainer.max_epochs=15"].
        split_seed: fixed held-out splits for every draw (as in a study).
        prune: stop a trial early when its first draw's validation accuracy is below the median trial's.
        sampler_seed: the seed of Optuna's TPE sampler.
        quiet: no progress bar or progress lines (each trial's result line and the table are still printed).
    """
    try:
        import optuna
        from optuna_integration import PyTorchLightningPruningCallback
    except ModuleNotFoundError as error:
        raise UserError(f"scripts/tune.py needs Optuna ({error.name} is not installed): {EXTRA}") from error
    check_search_space(search_space)
    if trials < 1:
        raise UserError(f"trials={trials} must be at least 1")
    if not label_draws or len(set(label_draws)) != len(label_draws):
        raise UserError(f"label_draws {label_draws}: give one or more seeds, each once")
    settings = StudySettings(
        finetune_config=resolve_config(finetune_config), pretrained=pretrained, methods=[method],
        budgets=[samples_per_class], seeds=label_draws, output_dir=Path(output_dir), extra_args=extra_args or [],
        split_seed=split_seed,
    )
    writer = writer_of(settings.output_dir)  # another sweep there: said before the checks take their seconds
    if writer is not None:
        raise UserError(f"another process ({writer}) is running a sweep in {str(settings.output_dir)!r}: wait for it "
                        f"to finish, or give this one another --output_dir")
    check_study(settings)  # the source, the budget against the data, every override: before anything is written
    for values in values_to_check(search_space):  # every choice and both ends of each range, through the parser
        preview_run(run_args(settings, method, samples_per_class, label_draws[0]) + as_overrides(values))
    identity = {"finetune_config": str(settings.finetune_config), "source": settings.source, "method": method,
                "samples_per_class": samples_per_class, "label_draws": label_draws, "search_space": search_space,
                "extra_args": settings.extra_args, "split_seed": split_seed}
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    claim_run(settings.output_dir, what_to_do="wait for that sweep to finish, or give this one another --output_dir")
    # Our own line per trial instead of Optuna's; a failed trial's error is the script's one line, not its log's.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if prune else None
        database = settings.output_dir / "tune.db"
        try:
            sweep = optuna.create_study(
                study_name="tune", storage=f"sqlite:///{database.resolve()}", direction="maximize",
                load_if_exists=True, pruner=pruner or optuna.pruners.NopPruner(),
            )
        except Exception as error:  # SQLAlchemy's and sqlite's errors alike: the file is not a sweep's database
            raise UserError(f"{str(database)!r} cannot be read as a sweep's database ({type(error).__name__}): "
                            f"move it away to start the sweep anew, or give another --output_dir") from error
        check_same_sweep(sweep, identity)
        # Seeded by how far the sweep got: a continued sweep draws new settings, not the first start's again.
        sweep.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(sweep.trials))
        retry_interrupted(sweep, optuna)
        finished = [t for t in sweep.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED)]
        print(f"tune: {len(finished)} of {trials} trials done in {settings.output_dir / 'tune.db'}, "
              f"{max(trials - len(finished), 0)} to run")

        def objective(trial) -> float:
            values = suggest(trial, search_space)
            scores = []
            for index, draw in enumerate(label_draws):
                pruning = [PyTorchLightningPruningCallback(trial, monitor="val/acc")] if prune and index == 0 else []
                try:
                    result = fit_and_test(
                        TransferClassifier, [*run_args(settings, method, samples_per_class, draw),
                                             *as_overrides(values)],
                        summary=False, test=False, callbacks=pruning,
                    )
                except RunInterrupted:
                    trial.set_user_attr("interrupted", True)
                    raise
                finally:  # a trial's runs are scored, not kept: their checkpoints go
                    for run in (settings.output_dir / "runs").glob("*/version_*/checkpoints"):
                        shutil.rmtree(run, ignore_errors=True)
                scores.append(result.selected_val_acc)
                trial.set_user_attr("val_acc_per_draw", scores)
            return sum(scores) / len(scores)

        with showing_progress(not quiet):
            runs = Progress(range(max(trials - len(finished), 0)), "tune", unit="trial")
        for _ in runs:
            start = time.perf_counter()
            sweep.optimize(objective, n_trials=1, catch=())
            last = sweep.trials[-1]
            outcome = (f"mean val acc {last.value:.4f}" if last.state == optuna.trial.TrialState.COMPLETE else
                       f"first draw's val acc {score(last):.4f} below the median trial's" if score(last) is not None
                       else "")
            runs.note(f"tune: trial {last.number} {last.state.name.lower()} in {time.perf_counter() - start:.0f} s: "
                      f"{last.params}, {outcome}")
        return write_results(sweep, settings.output_dir, identity, optuna)
    finally:
        release_run(settings.output_dir)


def values_to_check(space: dict[str, dict]) -> list[dict[str, object]]:
    """Settings that together try every choice and both ends of every range (the others at their first value), so
    a value the runs' parser refuses is found before the sweep starts, not when a trial draws it."""
    first = {key: spec["choices"][0] if "choices" in spec else spec["low"] for key, spec in space.items()}
    checks = [first]
    for key, spec in space.items():
        for value in spec["choices"][1:] if "choices" in spec else [spec["high"]]:
            checks.append({**first, key: value})
    return checks


def check_same_sweep(sweep, identity: dict) -> None:
    """A sweep continues only with the settings it started with (other ones would mix two searches' trials)."""
    recorded = sweep.user_attrs.get("identity")
    if recorded is None:
        sweep.set_user_attr("identity", identity)
    elif recorded != identity:
        changed = sorted(key for key in identity if recorded.get(key) != identity[key])
        raise UserError(f"the sweep in this output_dir ran with other {', '.join(changed)}: give another --output_dir "
                        f"for a new sweep, or the same settings to continue it")


def retry_interrupted(sweep, optuna) -> None:
    """A trial stopped by a signal (or a killed process: still `running`) is queued again, once."""
    retried = {t.user_attrs.get("retry_of") for t in sweep.trials}
    for trial in sweep.trials:
        stopped = trial.state == optuna.trial.TrialState.RUNNING or trial.user_attrs.get("interrupted")
        if stopped and trial.number not in retried and trial.params:
            sweep.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def write_results(sweep, output_dir: Path, identity: dict, optuna) -> dict:
    """best.yaml (the overlay), trials.png, and the best trials printed; returns the best values."""
    complete = [t for t in sweep.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise UserError(f"no trial of the sweep in {str(output_dir)!r} finished (all pruned or failed): widen the "
                        f"search space or run more trials")
    best = max(complete, key=lambda t: t.value)
    header = (f"# Chosen by scripts/tune.py: trial {best.number} of {len(sweep.trials)}, mean best validation accuracy "
              f"{best.value:.4f} over label draws {identity['label_draws']} at {identity['samples_per_class']} labels "
              f"per class ({identity['method']}; never the test split).\n# Use after the fine-tuning config: "
              f"--config {identity['finetune_config']} --config {output_dir / 'best.yaml'}\n")
    text = header + yaml.safe_dump(overlay(best.params), sort_keys=False)
    replace_file(output_dir / "best.yaml", lambda path: path.write_text(text))
    figure = trials_figure(sweep.trials, identity["search_space"])
    replace_file(output_dir / "trials.png", lambda path: figure.savefig(path, format="png"))
    print("| trial | " + " | ".join(identity["search_space"]) + " | mean val acc | per draw |")
    print("|---:|" + "---:|" * len(identity["search_space"]) + "---:|---|")
    for trial in sorted(complete, key=lambda t: -t.value)[:5]:
        cells = [f"{trial.params[key]:.4g}" if isinstance(trial.params[key], float) else str(trial.params[key])
                 for key in identity["search_space"]]
        draws = ", ".join(f"{score:.3f}" for score in trial.user_attrs.get("val_acc_per_draw", []))
        print(f"| {trial.number} | " + " | ".join(cells) + f" | {trial.value:.4f} | {draws} |")
    print(f"written: {output_dir / 'best.yaml'}, {output_dir / 'trials.png'}")
    return best.params


def main(args: list[str] | None = None) -> None:
    run_function_cli(tune, "tune_digits.yaml", args, lambda stop: (
        f"sweep stopped by {stop.signal_name}: its finished trials are in tune.db; run the same command to continue "
        f"(the interrupted trial runs again)"))
