"""Run every (method, label budget, seed) of a study once, storing each result as it finishes.

A study is checked whole before it writes anything (methods, the pretrained source, budgets against the
data, every override in extra_args), so a mistake never leaves a study.json that blocks its corrected
rerun. A run stopped by a signal resumes from its own last.ckpt when the study is started again.
"""

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from lightning.pytorch import Trainer

from project.checkpoints.files import find_checkpoint, read_weights_file
from project.checkpoints.output_files import replace_file
from project.checkpoints.pretrained import DOWNLOADED_WEIGHTS, checked_sha256
from project.checkpoints.run_claims import claim_run, release_run
from project.config.shipped import config_dir
from project.data import ImageDataModule
from project.errors import UserError
from project.models import TransferClassifier
from project.progress import Progress
from project.training.experiment_cli import ExperimentCLI
from project.training.run import RunResult, check_run_settings, fit_and_test, lightning_notes_filtered
from project.training.run_folders import check_output_dir
from project.training.run_plan import plan_run
from project.training.run_trainer import build_trainer

FIELDS = [
    "method", "samples_per_class", "seed", "test_acc", "test_loss", "val_acc", "model_selection", "labels_per_class",
    "val_labels_per_class", "epochs", "wall_time_s", "trained_params",
]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]


@dataclass
class StudySettings:
    finetune_config: Path
    pretrained: str
    methods: list[str]
    budgets: list[int | None]
    seeds: list[int]
    output_dir: Path
    extra_args: list[str]
    per_method_args: dict[str, list[str]] = field(default_factory=dict)
    keep_checkpoints: bool = False
    split_seed: int | None = None  # fixed held-out splits (only the labels vary by seed); None: they vary too
    select_on_val: list[str] = field(default_factory=list)  # the summary's choice; not part of the study's identity
    source: str | None = None  # the resolved pretrained checkpoint, once checked
    source_sha256: str | None = None  # its content's hash: the same file name with other weights is another study


def method_args(method: str) -> list[str]:
    """`scratch`: the fine-tuning config's model without pretrained weights; `configured`: the fine-tuning config
    as it is (its own strategy); the others: the pretrained backbone under a strategy overlay."""
    if method == "scratch":  # every weight trains at one lr, whatever strategy the fine-tuning config names
        return ["--model.strategy=full", "--model.backbone_lr_ratio=1", "--model.layer_decay=1"]
    if method == "configured":
        return []
    overlay = config_dir() / "strategy" / f"{method}.yaml"
    if not overlay.is_file():
        known = ["scratch", "configured", *sorted(p.stem for p in overlay.parent.glob("*.yaml"))]
        raise UserError(f"unknown study method {method!r}: choose from {known}")
    return ["--config", str(overlay)]


def trains_from_scratch(method: str) -> bool:
    """`scratch`, or a method whose overlay starts from random weights (`model: {pretrained: null}`, e.g.
    `fixmatch_scratch`: the classic semi-supervised baseline), which the study must not hand its source."""
    overlay = config_dir() / "strategy" / f"{method}.yaml"
    if method == "scratch" or not overlay.is_file():
        return method == "scratch"
    model = (yaml.safe_load(overlay.read_text()) or {}).get("model") or {}
    return "pretrained" in model and model["pretrained"] is None


def budget_key(budget: int | None) -> str:
    return "all" if budget is None else str(budget)


def run_args(settings: StudySettings, method: str, budget: int | None, seed: int) -> list[str]:
    return [
        "--config", str(settings.finetune_config), *method_args(method),
        f"--model.pretrained={'null' if trains_from_scratch(method) else settings.source}",
        f"--data.samples_per_class={'null' if budget is None else budget}", f"--seed_everything={seed}",
        *(
            [f"--data.split_seed={seed}"] if settings.split_seed is None
            else [f"--data.split_seed={settings.split_seed}", f"--data.budget_seed={seed}"]
        ),
        f"--output_dir={settings.output_dir / 'runs'}",
        f"--experiment={method}_{budget_key(budget)}_seed{seed}", *QUIET, *settings.extra_args,
        *settings.per_method_args.get(method, []),
    ]


def check_study(settings: StudySettings) -> None:
    """Every check that can fail before training: a failed check writes nothing."""
    if not settings.methods or not settings.seeds or not settings.budgets:
        raise UserError("methods, budgets and seeds must each name at least one value")
    for name in ("methods", "budgets", "seeds"):  # a repeat would count one run twice in every mean and interval
        values = [str(value) for value in getattr(settings, name)]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise UserError(f"--{name} names {', '.join(repeated)} more than once: give each once")
    owned = [arg for arg in settings.extra_args
             if arg.split("=", 1)[0] in ("--output_dir", "--experiment", "--ckpt_path", "--seed_everything")]
    if owned:
        raise UserError(f"--extra_args {owned}: the study sets these for each run (its runs live under "
                        f"{str(settings.output_dir / 'runs')!r}); give the study's own --output_dir or --seeds instead")
    check_output_dir(str(settings.output_dir))
    for method in settings.methods:
        method_args(method)
    unused = sorted(set(settings.per_method_args) - set(settings.methods))
    if unused:
        raise UserError(f"per_method_args names {unused}, not among the methods {settings.methods}: add it to "
                        f"--methods or remove its overrides")
    if set(settings.methods) - {"scratch"}:
        if settings.pretrained.startswith(DOWNLOADED_WEIGHTS):  # a library's named weights: no file to resolve
            settings.source = settings.pretrained
        else:
            # The resolved file, not the folder given: a new pretraining run in the same folder is another study.
            settings.source = str(find_checkpoint(settings.pretrained, "best").resolve())
            read_weights_file(settings.source)  # read now: a damaged or unsafe file stops here (the runs' previews
            # below check it against their architecture)
            settings.source_sha256 = checked_sha256(Path(settings.source), None)  # the same path, other weights:
            # another study
    check_same_study(settings, write=False)
    for name in ("results.csv", "study.json"):
        if (settings.output_dir / name).exists() and not (settings.output_dir / name).is_file():
            raise UserError(f"{str(settings.output_dir / name)!r} is not a file: move it away, or give the study "
                            f"another --output_dir")
    finished_runs(settings.output_dir / "results.csv")  # an old results.csv of other columns is refused now
    # The extremes of the label budget against the data, and every override, through the runs' own parser.
    method = next((m for m in settings.methods if m != "scratch"), "scratch")
    sized = [b for b in settings.budgets if b is not None]
    wrong = [budget for budget in sized if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1]
    if wrong:
        raise UserError(f"--budgets {wrong}: each must be a positive number of labels per class (null: every label)")
    # Each distinct run is built once (a data setup can take seconds); kept of it: how it would validate.
    previews: dict[tuple[str, ...], tuple[int, float, int | float]] = {}

    def preview(method: str, budget: int | None) -> tuple[int, float, int | float]:
        args = tuple(run_args(settings, method, budget, settings.seeds[0]))
        if args not in previews:
            built = preview_run(list(args))
            data = built.data
            previews[args] = (len(data.val_set), data.hparams.val_fraction, built.trainer.limit_val_batches)
        return previews[args]

    for budget in {min(sized), max(sized)} if sized else {None}:
        try:
            preview(method, budget)
        except UserError as error:  # the runs' messages name their own flag; the user set --budgets
            if "samples_per_class" not in str(error):  # not about the budget: the run's own message, as it is
                raise
            message = str(error).replace("--data.samples_per_class", "--budgets")
            raise UserError(f"--budgets {budget}: {message}") from None
    for other in set(settings.per_method_args) - {method}:  # its own overrides, checked the same way
        preview(other, settings.budgets[0])
    for candidate in settings.select_on_val:  # each with its own overrides: one without validation cannot be chosen
        val_images, val_fraction, limit_val_batches = preview(candidate, settings.budgets[0])
        if not val_images or limit_val_batches == 0:
            raise UserError(f"select_on_val chooses on each run's validation accuracy, and the {candidate} runs "
                            f"would have none (val_fraction={val_fraction}, limit_val_batches={limit_val_batches}): "
                            f"let them validate, or leave select_on_val out")


@dataclass
class RunPreview:
    """What a run would train on and how it would validate, built without training or writing anything."""

    data: ImageDataModule
    trainer: Trainer


def preview_run(args: list[str]) -> RunPreview:
    """Parse and build a run (data, model with its pretrained weights, trainer), set its data up and check it as
    the run would, without training or writing anything."""
    with lightning_notes_filtered():
        settings = ExperimentCLI(
            TransferClassifier, ImageDataModule, run=False, args=args, parser_kwargs={"exit_on_error": False},
            auto_configure_optimizers=False,
        )
        plan = plan_run(settings.config, TransferClassifier)
        data, model = settings.build_data_and_model()
        if plan.pretrained is not None:  # weights that do not fit the model are refused before any run
            model.load_pretrained(plan.pretrained)
        trainer, _ = build_trainer(settings, plan, model, callbacks=[], claims=False)
    data.setup("fit")
    check_run_settings(trainer, data, settings.config["model_selection"], resuming=False)
    if not len(data.test_set):
        raise UserError("the test split is empty, and a study measures on it: set --data.test_fraction above 0")
    return RunPreview(data, trainer)


def finished_runs(results_csv: Path) -> set[tuple[str, str, str]]:
    """The (method, budget, seed) of every complete row; a row cut by a kill mid-write is dropped from the file
    (with a note), so its run is trained again rather than counted or glued to the next row."""
    if not results_csv.is_file():
        return set()
    lines = results_csv.read_text().splitlines(keepends=True)
    reader = csv.DictReader(lines)
    if reader.fieldnames != FIELDS:
        raise UserError(
            f"{str(results_csv)!r} has the columns {reader.fieldnames} of another version of this project: "
            f"give the study another --output_dir"
        )
    complete = lines[-1].endswith("\n") if len(lines) > 1 else True
    rows = list(reader)
    kept, seen = [], set()
    for row in rows[: len(rows) - (not complete)]:
        key = (row.get("method"), row.get("samples_per_class"), row.get("seed"))
        if whole_row(row) and key not in seen:  # a repeated run would count twice in every mean and interval
            kept.append(row)
            seen.add(key)
    if len(kept) < len(rows):
        print(f"note: {len(rows) - len(kept)} incomplete, unreadable or repeated row(s) of {results_csv} dropped "
              f"(a run killed while writing it, or a hand edit); those runs are trained again")
        replace_file(results_csv, lambda path: write_rows(path, kept))
    return {(row["method"], row["samples_per_class"], row["seed"]) for row in kept}


def whole_row(row: dict) -> bool:
    """Every column there, and the accuracies and losses finite numbers."""
    if None in row or None in row.values():
        return False
    try:
        return all(math.isfinite(float(row[key])) for key in ("test_acc", "test_loss"))
    except ValueError:
        return False


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def append_result(results_csv: Path, row: dict) -> None:
    """One row, in one write: a kill can cut it, and the next read drops the cut row (`finished_runs`)."""
    if not results_csv.is_file():
        replace_file(results_csv, lambda path: write_rows(path, []))
    line = io.StringIO()
    csv.DictWriter(line, fieldnames=FIELDS).writerow(row)
    with results_csv.open("a", newline="") as file:
        file.write(line.getvalue())


def check_same_study(settings: StudySettings, write: bool) -> None:
    """One output folder holds one study: a rerun with other settings would mix two studies in one table.

    Absolute paths, so the same study started again from another folder is still the same study. A setting
    still unknown (null: no pretrained checkpoint while only `scratch` ran) is filled in later.
    """
    identity = {
        "finetune_config": str(settings.finetune_config.resolve()), "pretrained": settings.source,
        "extra_args": list(settings.extra_args), "per_method_args": dict(settings.per_method_args),
        "split_seed": settings.split_seed, "pretrained_sha256": settings.source_sha256,
    }
    path = settings.output_dir / "study.json"
    try:
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(saved, dict):
            raise json.JSONDecodeError("not a mapping of the study's settings", path.read_text(), 0)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{str(path)!r} is damaged ({error}): it records which study this folder holds; if you know "
                        f"it is this one, delete it and start the same command again (results.csv is kept)") from error
    changed = sorted(
        key for key, value in identity.items()
        if saved.get(key) is not None and value is not None and saved[key] != value
    )
    if changed:
        differences = "; ".join(f"{key} was {saved[key]!r}, now {identity[key]!r}" for key in changed)
        raise UserError(
            f"{str(settings.output_dir)!r} holds another study ({path}: {differences}): give another --output_dir, "
            f"or the same settings to add methods, budgets or seeds to it (a pretrained experiment folder means its "
            f"newest run: name the checkpoint file to keep a study on one)"
        )
    if write:
        merged = {**identity, **{k: v for k, v in saved.items() if v is not None}}
        replace_file(path, lambda partial: partial.write_text(json.dumps(merged, indent=2) + "\n"))


def resume_args(run_root: Path) -> list[str]:
    """An interrupted run of this study continues from its last.ckpt; one stopped before any checkpoint restarts."""
    runs = sorted(run_root.glob("version_*"))
    if any((run / "checkpoints" / "last.ckpt").is_file() for run in runs):
        return ["--ckpt_path=last"]
    for run in runs:  # debris of a run killed before its first checkpoint
        shutil.rmtree(run)
    return []


def run_study(settings: StudySettings) -> int:
    """Train what is not in results.csv yet, holding the study's folder; returns how many trainings ran."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    # One study at a time in a folder: two would train the same runs/<method>_<budget>_seed<k> and delete each
    # other's checkpoints.
    claim_run(settings.output_dir, what_to_do="wait for that study to finish, or give this one another --output_dir")
    try:
        return train_missing_runs(settings)
    finally:
        release_run(settings.output_dir)


def train_missing_runs(settings: StudySettings) -> int:
    """Train what is not in results.csv yet; returns how many trainings ran."""
    check_same_study(settings, write=True)
    results_csv = settings.output_dir / "results.csv"
    done = finished_runs(results_csv)
    plan = [(m, b, s) for m in settings.methods for b in settings.budgets for s in settings.seeds]
    todo = [(m, b, s) for m, b, s in plan if (m, budget_key(b), str(s)) not in done]
    print(f"study: {len(plan)} runs, {len(plan) - len(todo)} already in {results_csv}, {len(todo)} to train")
    runs = Progress(todo, "study", unit="run")
    for number, (method, budget, seed) in enumerate(runs, 1):
        experiment = f"{method}_{budget_key(budget)}_seed{seed}"
        start = time.perf_counter()
        args = run_args(settings, method, budget, seed)
        # A run's summary names its checkpoints: printed only where the study keeps them.
        result = fit_and_test(TransferClassifier, [*args, *resume_args(settings.output_dir / "runs" / experiment)],
                              summary=settings.keep_checkpoints)
        append_result(results_csv, result_row(method, budget, seed, result, time.perf_counter() - start))
        if not settings.keep_checkpoints:
            shutil.rmtree(Path(result.log_dir) / "checkpoints", ignore_errors=True)
        runs.note(f"study: [{number}/{len(todo)}] {experiment}: test acc {result.metrics['test/acc']:.4f}")
    return len(todo)


def result_row(method: str, budget: int | None, seed: int, result: RunResult, wall_time: float) -> dict:
    data, epochs = result.datamodule, result.trainer.current_epoch
    return {
        "method": method, "samples_per_class": budget_key(budget), "seed": seed,
        "test_acc": f"{result.metrics['test/acc']:.4f}", "test_loss": f"{result.metrics['test/loss']:.4f}",
        "val_acc": "" if result.selected_val_acc is None else f"{result.selected_val_acc:.4f}",
        "model_selection": result.model_selection,
        "labels_per_class": f"{len(data.train_set) / data.num_classes:.1f}",
        "val_labels_per_class": f"{len(data.val_set) / data.num_classes:.1f}", "epochs": epochs,
        "wall_time_s": f"{wall_time:.1f}", "trained_params": result.model.trainable_parameter_count(epochs - 1),
    }
