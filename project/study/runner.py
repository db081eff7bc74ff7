"""Run every (method, label budget, seed) of a study once, storing each result as it finishes."""

import csv
import json
import shutil
import time
from pathlib import Path

from project.checkpoints.files import find_checkpoint
from project.cli import CONFIG_DIR, fit_and_test
from project.errors import UserError
from project.modules import TransferClassifier

FIELDS = [
    "method", "samples_per_class", "seed", "test_acc", "test_loss", "val_acc", "model_selection", "labels_per_class",
    "val_labels_per_class", "epochs", "wall_time_s", "trained_params",
]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]


def method_args(method: str) -> list[str]:
    """`scratch`: the fine-tuning config's model without pretrained weights; `configured`: the fine-tuning config
    as it is (its own strategy); the others: the pretrained backbone under a strategy overlay."""
    if method == "scratch":  # every weight trains at one lr, whatever strategy the fine-tuning config names
        return ["--model.strategy=full", "--model.backbone_lr_ratio=1", "--model.layer_decay=1"]
    if method == "configured":
        return []
    overlay = CONFIG_DIR / "strategy" / f"{method}.yaml"
    if not overlay.is_file():
        known = ["scratch", "configured", *sorted(p.stem for p in overlay.parent.glob("*.yaml"))]
        raise UserError(f"unknown study method {method!r}: choose from {known}")
    return ["--config", str(overlay)]


def budget_key(budget: int | None) -> str:
    return "all" if budget is None else str(budget)


def finished_runs(results_csv: Path) -> set[tuple[str, str, str]]:
    if not results_csv.is_file():
        return set()
    with results_csv.open() as file:
        reader = csv.DictReader(file)
        if reader.fieldnames != FIELDS:
            raise UserError(
                f"{str(results_csv)!r} has the columns {reader.fieldnames} of another version of this project: "
                f"give the study another --output_dir"
            )
        return {(row["method"], row["samples_per_class"], row["seed"]) for row in reader}


def append_result(results_csv: Path, row: dict) -> None:
    new_file = not results_csv.is_file()
    with results_csv.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def trained_parameter_count(model: TransferClassifier, last_epoch: int) -> int:
    """Parameters that trained at some point: the head and every backbone block unfrozen by the last epoch."""
    count = sum(p.numel() for p in model.head.parameters())
    for index, block in enumerate(model.backbone.blocks()):
        if model.plan.block_trains(index, last_epoch):
            count += sum(p.numel() for p in block.parameters())
    return count


def check_same_study(output_dir: Path, settings: dict) -> None:
    """One output folder holds one study: a rerun with other settings would mix two studies in one table.

    A setting still unknown (null: no pretrained checkpoint while only `scratch` ran) is filled in later.
    """
    path = output_dir / "study.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    changed = sorted(
        key for key, value in settings.items()
        if saved.get(key) is not None and value is not None and saved[key] != value
    )
    if changed:
        raise UserError(
            f"{str(output_dir)!r} holds a study with other {changed} ({path}): give another --output_dir, or the "
            f"same settings to add methods, budgets or seeds to it"
        )
    path.write_text(json.dumps({**settings, **{k: v for k, v in saved.items() if v is not None}}, indent=2) + "\n")


def run_study(
    finetune_config: Path, pretrained: str, methods: list[str], budgets: list[int | None], seeds: list[int],
    output_dir: Path, extra_args: list[str], keep_checkpoints: bool,
) -> int:
    """Train what is not in results.csv yet; returns how many trainings ran."""
    for method in methods:
        method_args(method)  # reject an unknown method before hours of training
    # The resolved file, not the folder given: a new pretraining run in the same folder is another study.
    source = str(find_checkpoint(pretrained, "best").resolve()) if set(methods) - {"scratch"} else None
    check_same_study(output_dir, {  # absolute paths: the same study, started again from another folder
        "finetune_config": str(finetune_config.resolve()), "pretrained": source, "extra_args": list(extra_args),
    })
    results_csv = output_dir / "results.csv"
    done = finished_runs(results_csv)
    plan = [(m, b, s) for m in methods for b in budgets for s in seeds]
    todo = [(m, b, s) for m, b, s in plan if (m, budget_key(b), str(s)) not in done]
    print(f"study: {len(plan)} runs, {len(plan) - len(todo)} already in {results_csv}, {len(todo)} to train")
    for number, (method, budget, seed) in enumerate(todo, 1):
        experiment = f"{method}_{budget_key(budget)}_seed{seed}"
        args = [
            "--config", str(finetune_config), *method_args(method),
            f"--model.pretrained={'null' if method == 'scratch' else source}",
            f"--data.samples_per_class={'null' if budget is None else budget}", f"--seed_everything={seed}",
            f"--data.split_seed={seed}", f"--output_dir={output_dir / 'runs'}", f"--experiment={experiment}",
            *QUIET, *extra_args,
        ]
        start = time.perf_counter()
        result = fit_and_test(TransferClassifier, args)
        wall_time = time.perf_counter() - start
        epochs = result.trainer.current_epoch
        data = result.datamodule
        append_result(results_csv, {
            "method": method, "samples_per_class": budget_key(budget), "seed": seed,
            "test_acc": f"{result.metrics['test/acc']:.4f}", "test_loss": f"{result.metrics['test/loss']:.4f}",
            "val_acc": "" if result.selected_val_acc is None else f"{result.selected_val_acc:.4f}",
            "model_selection": result.model_selection,
            "labels_per_class": f"{len(data.train_set) / data.num_classes:.1f}",
            "val_labels_per_class": f"{len(data.val_set) / data.num_classes:.1f}", "epochs": epochs,
            "wall_time_s": f"{wall_time:.1f}", "trained_params": trained_parameter_count(result.model, epochs - 1),
        })
        if not keep_checkpoints:
            shutil.rmtree(Path(result.log_dir) / "checkpoints", ignore_errors=True)
        print(f"study: [{number}/{len(todo)}] {experiment}: test acc {result.metrics['test/acc']:.4f}", flush=True)
    return len(todo)
