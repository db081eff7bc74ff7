"""One training run, as `run` reads top to bottom: its settings (LightningCLI), the data, the model with its
pretrained weights, the Trainer, fit, the test of the selected checkpoint, and where everything is."""

import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.checkpoints.files import find_checkpoint
from project.checkpoints.output_files import replace_file
from project.checkpoints.resume import check_resume_fits, check_same_settings
from project.checkpoints.run_claims import TEST_RECORD
from project.config.files import check_config_files
from project.config.shipped import config_dir, with_shipped_configs
from project.data import ImageDataModule
from project.errors import UserError, exits_on_user_error
from project.models import BackboneModule
from project.progress import SHOWN, showing_progress
from project.quiet_lightning import quiet_lightning_adverts
from project.training.callbacks.best_checkpoint import BestCheckpoint
from project.training.callbacks.interruption import RunInterrupted, StopOnSignal, last_checkpoint_path
from project.training.callbacks.phase_timer import PhaseTimer
from project.training.experiment_cli import ExperimentCLI
from project.training.input_from_weights import input_line
from project.training.run_folders import record_slurm_job
from project.training.run_loggers import finish_tracked_runs, record_tracking_runs, where_to_look
from project.training.run_plan import RunPlan, plan_run
from project.training.run_trainer import RunFolderClaim, build_trainer


@contextmanager
def lightning_notes_filtered() -> Iterator[None]:
    """Lightning's warnings that say nothing a user of these runs can act on are left out while a run runs (and
    only then: importing the project changes no filter)."""
    with warnings.catch_warnings():
        # Batches come from tensors in memory, so worker processes would only take the cores the model needs.
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        # The runs pass the command line as `args` on purpose (to put the default --config first).
        warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended to run from within.*")
        # Raised inside Lightning's own code on recent torch; nothing a user can act on.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
        # The run folder always holds the claim marker (.running), and an earlier metrics.csv is set aside on resume
        # (run_loggers.keep_earlier_metrics), so the CSV logger's "will be deleted" warning deletes nothing.
        warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
        yield


CHOOSING_CLASS = ("Pretraining: --model=ImageClassifier (the labels; the default) or --model=SimCLRPretraining (no "
                  "labels) chooses the model; `--model.help ImageClassifier` (or SimCLRPretraining) lists its options.")


@dataclass
class RunResult:
    """What a finished run leaves: its test metrics, folder, and the trained objects (for studies)."""

    metrics: dict[str, float]
    log_dir: str
    trainer: Trainer
    model: LightningModule
    datamodule: ImageDataModule
    model_selection: str  # best_val or last_epoch
    selected_checkpoint: str  # the file tested and handed on: the best by val/acc, or last.ckpt
    selected_val_acc: float | None  # its validation score (val/acc); None without a validation split
    seconds: dict[str, float]  # wall time by phase: data, training, validation, checkpoints, test, total


def run_experiment(model_class: type[LightningModule], default_config: str, args: list[str] | None = None) -> dict:
    """The training scripts' main: a user error exits with status 2, an interruption with 128 + the signal."""
    args = list(sys.argv[1:] if args is None else args)
    if not any(arg == "--config" or arg.startswith("--config=") for arg in args):
        args = ["--config", str(config_dir() / default_config), *args]
    lightning_info_to_stdout()
    with exits_on_user_error():
        try:
            return fit_and_test(model_class, args).metrics
        except RunInterrupted as stop:
            print(interruption_message(stop), file=sys.stderr)
            sys.exit(stop.exit_code)
        finally:
            # Lightning leaves the DDP process group open; torch's gloo threads still running at interpreter exit
            # abort the process ("terminate called without an active exception") about one run in five (measured:
            # 2 of 9 two-process test runs on 2 cores).
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()


def interruption_message(stop: RunInterrupted) -> str:
    if stop.stage == "testing":
        return (f"stopped by {stop.signal_name} in the final test: training had finished and its checkpoints are "
                f"complete; test the selected one with: python scripts/evaluate.py --ckpt_path {stop.checkpoint}, "
                f"or run the same command with --ckpt_path last")
    return (f"stopped by {stop.signal_name}: {stop.checkpoint or 'last.ckpt'} saved; continue with the same command "
            f"and --ckpt_path last")


def fit_and_test(
    model_class: type[LightningModule], args: list[str], summary: bool = True, test: bool = True,
    callbacks: list[Callback] | None = None,
) -> RunResult:
    """Parse `args` like the command line, fit, then test the selected checkpoint (`test=False`: no test, for a
    search that must choose on validation alone); `callbacks` join the run's own.

    Raises UserError on bad input (before anything is written), RunInterrupted on SIGTERM or Ctrl-C.
    """
    with lightning_notes_filtered():
        return run(model_class, args, summary, test, callbacks or [])


def run(
    model_class: type[LightningModule], args: list[str], summary: bool, test: bool, callbacks: list[Callback]
) -> RunResult:
    """One run, top to bottom: settings, data, model and its weights, Trainer, fit, test, summary."""
    start = time.perf_counter()
    settings = read_settings(model_class, args)  # parsed by LightningCLI; nothing built yet
    plan = plan_run(settings.config, model_class)  # checked; the resume and the source read
    data, model = settings.build_data_and_model()  # the data's classes and shape linked into the model
    if plan.pretrained is not None:  # the source's backbone
        model.load_pretrained(plan.pretrained)
    if plan.resume is not None:  # the architecture first: another model is the more basic mistake
        check_resume_fits(plan.resume, model)
        check_same_settings(plan.resume, settings.config)
    trainer, claim = build_trainer(settings, plan, model, callbacks)  # claims the run folder: new, or the resumed
    with run_folder_kept_once_started(claim, trainer):
        run_folder = Path(trainer.log_dir)  # a collective call under DDP: every rank makes it
        set_data_up(trainer, data)  # read (or decoded) and checked before fit: a bad setting stops the run here
        data_seconds = time.perf_counter() - start
        input_note = plan.input_note and input_line(data.input_shape, data.mean.tolist(), data.std.tolist(),
                                                    plan.input_note)
        if input_note:
            rank_zero_info(f"input: {input_note}")
        check_run_settings(trainer, data, settings.config["model_selection"], resuming=plan.resume is not None)
        model.use_input(data.model_input())  # its normalization, which every checkpoint records
        selected, selected_val_acc = fit(plan, trainer, model, data, run_folder)
        metrics = tested_metrics(trainer, model, data, selected) if test and len(data.test_set) else {}
        if trainer.is_global_zero and not plan.resume_finished and test:  # finished: a resume only tests again
            record_test(run_folder, selected, metrics, trainer)
        timer = next(callback for callback in trainer.callbacks if isinstance(callback, PhaseTimer))
        seconds = {"data": data_seconds, **timer.breakdown(trainer), "total": time.perf_counter() - start}
        if summary and trainer.is_global_zero:
            print_summary(str(run_folder), where_to_look(trainer.loggers, run_folder), selected, metrics, seconds,
                          input_note)
    return RunResult(metrics, str(run_folder), trainer, model, data, settings.config["model_selection"], selected,
                     selected_val_acc, seconds)


def read_settings(model_class: type[LightningModule], args: list[str]) -> ExperimentCLI:
    """The run's settings parsed from `args` (shipped configs found by name, each --config file checked first)."""
    args = with_shipped_configs(args)
    check_config_files(args)
    return ExperimentCLI(
        model_class,
        ImageDataModule,
        # Given the base class (pretraining), the run's class is chosen LightningCLI's way: --model=<class name>, or
        # `model: class_path:` in a config; ImageClassifier by default.
        subclass_mode_model=model_class is BackboneModule,
        run=False,
        args=args,
        save_config_kwargs={"overwrite": False},
        # A bad option is one line from exits_on_user_error, not usage; --help says where a chosen class's options are.
        parser_kwargs={"exit_on_error": False,
                       **({"description": CHOOSING_CLASS} if model_class is BackboneModule else {})},
        # The modules build their own optimizer and schedule (parameter groups gated by the fine-tuning plan);
        # LightningCLI's --optimizer/--lr_scheduler would silently replace them.
        auto_configure_optimizers=False,
    )


@contextmanager
def run_folder_kept_once_started(claim: RunFolderClaim, trainer: Trainer) -> Iterator[None]:
    """A run that fails before its first step (a setting its data refuses, a NaN loss, a Trainer option this
    machine cannot run) leaves no folder behind; one with a checkpoint (a signal's last.ckpt) is kept. Either way
    the run's tracked runs (W&B, MLflow) are ended and its folder is released."""
    try:
        yield
    except BaseException:
        if trainer.global_step == 0 and not (claim.run is not None and any(claim.run.rglob("*.ckpt"))):
            claim.abandon()
        raise
    finally:
        finish_tracked_runs(trainer.loggers)
        claim.release()


def set_data_up(trainer: Trainer, data: ImageDataModule) -> None:
    with showing_progress(SHOWN.get() and trainer.progress_bar_callback is not None):  # decoding's progress
        if trainer.local_rank == 0:  # downloads once per machine, as Lightning does
            data.prepare_data()
        data.setup("fit")


def fit(plan: RunPlan, trainer: Trainer, model: LightningModule, data: ImageDataModule, run_folder: Path
        ) -> tuple[str, float | None]:
    """Train (or, resuming a finished run, nothing); the selected checkpoint's path and validation score."""
    ckpt_path = str(plan.resume.path) if plan.resume else None
    if plan.resume_finished:
        print(f"note: {ckpt_path} had trained its max_epochs={trainer.max_epochs} already: nothing is trained or "
              f"written, its selected checkpoint is tested (raise --trainer.max_epochs to train on)")
        return str(find_checkpoint(run_folder, "best")), None
    if trainer.is_global_zero:
        record_slurm_job(str(run_folder))
        record_tracking_runs(trainer.loggers, run_folder)
    try:
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException as stop:
        raise RunInterrupted(signal_name(trainer), "training", str(last_checkpoint_path(trainer))) from stop
    if plan.resume is not None and trainer.global_step == plan.resume.checkpoint.get("global_step"):
        print(f"note: {ckpt_path} had finished max_epochs={trainer.max_epochs} already: nothing was trained, "
              f"its selected checkpoint is tested (raise --trainer.max_epochs to train on)")
    for requeue_checkpoint in run_folder.glob("hpc_ckpt_*.ckpt"):  # SLURM's, superseded by the run's own
        requeue_checkpoint.unlink()
    return selected_checkpoint(trainer)


def tested_metrics(trainer: Trainer, model: LightningModule, data: ImageDataModule, selected: str) -> dict:
    try:
        results = trainer.test(model, datamodule=data, ckpt_path=selected, verbose=False, weights_only=True)
    except SIGTERMException as stop:
        raise RunInterrupted(signal_name(trainer), "testing", selected) from stop
    return results[0] if results else {}


def record_test(run_folder: Path, selected: str, metrics: dict, trainer: Trainer) -> None:
    """What was tested, at which step: a resume of a finished run tests it again rather than training."""
    record = {"checkpoint": selected, "metrics": metrics, "global_step": trainer.global_step,
              "max_epochs": trainer.max_epochs}
    replace_file(run_folder / TEST_RECORD, lambda path: path.write_text(json.dumps(record, indent=2) + "\n"))


def lightning_info_to_stdout() -> None:
    """Lightning's progress notes (GPU available, seed set, ...) go to stdout, so stderr holds errors alone; its
    adverts for other products ("💡 Tip: ...") are left out."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
                handler.setStream(sys.stdout)
    quiet_lightning_adverts()


def signal_name(trainer: Trainer) -> str:
    stop = next((callback for callback in trainer.callbacks if isinstance(callback, StopOnSignal)), None)
    return (stop.signal_name if stop else None) or "SIGTERM"


def check_run_settings(trainer: Trainer, data: ImageDataModule, model_selection: str, resuming: bool) -> None:
    """Refuse a run that would train nothing, select its checkpoint on a validation split that is empty or never
    validated, or that uses a Trainer option this project's runs or this machine cannot work with."""
    if trainer.fast_dev_run:
        raise UserError("--trainer.fast_dev_run turns off the logger and checkpoints a run folder needs: for a quick "
                        "check, use --trainer.max_epochs=1 --trainer.limit_train_batches=2 "
                        "--trainer.limit_val_batches=2")
    if isinstance(trainer.accelerator, CPUAccelerator) and str(trainer.precision) in ("16-true", "16"):
        raise UserError(f"--trainer.precision={trainer.precision} on the CPU: PyTorch's CPU convolutions do not take "
                        f"float16; use --trainer.precision=bf16-mixed or 32-true (float16 is for GPUs)")
    every = trainer.check_val_every_n_epoch
    if every is not None and trainer.max_epochs is not None and 0 < trainer.max_epochs < every:
        raise UserError(
            f"check_val_every_n_epoch={every} with max_epochs={trainer.max_epochs}: the run would never validate, so "
            f"no checkpoint could be selected; set --trainer.check_val_every_n_epoch to {trainer.max_epochs} or less"
        )
    limits = {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
              "limit_train_batches": trainer.limit_train_batches}
    zero = [name for name, value in limits.items() if value == 0]
    if not resuming and zero:
        raise UserError(f"{', '.join(f'{name}=0' for name in zero)}: this run would train nothing; set "
                        f"{' and '.join(f'--trainer.{name}' for name in zero)} to 1 or more")
    if model_selection == "best_val" and (len(data.val_set) == 0 or trainer.limit_val_batches == 0):
        raise UserError(
            f"the validation split is empty (val_fraction={data.hparams.val_fraction}, limit_val_batches="
            f"{trainer.limit_val_batches}), so no best checkpoint can be chosen: raise --data.val_fraction, or add "
            f"--model_selection=last_epoch to test and hand on the last epoch's weights"
        )


def selected_checkpoint(trainer: Trainer) -> tuple[str, float | None]:
    """(path, validation score) of the checkpoint the run selected: BestCheckpoint's best, or else last.ckpt.

    The score is what the model selects by (val/acc; val/knn_acc for SimCLR), at that checkpoint.
    """
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, BestCheckpoint) and callback.best_model_path:
            score = callback.best_model_score
            return callback.best_model_path, None if score is None else float(score)
    last = last_checkpoint_path(trainer)
    score = trainer.callback_metrics.get(trainer.lightning_module.selection_metric)
    return str(last), None if score is None else float(score)


def print_summary(
    log_dir: str, curves: list[str], selected: str, metrics: dict, seconds: dict[str, float],
    input_note: str | None = None,
) -> None:
    lines = ["", "=" * 60]
    lines.append(f"run folder:   {log_dir}")
    if input_note:
        lines.append(f"input:        {input_note}")
    if Path(selected).name != "last.ckpt":
        lines.append(f"best ckpt:    {selected}")
    lines.append(f"last ckpt:    {Path(selected).parent / 'last.ckpt'}")
    if metrics:
        lines.append("test metrics: " + ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items())))
    else:
        lines.append("test metrics: none: the test split is empty (raise --data.test_fraction to test the model)")
    lines.append("time:         " + ", ".join(f"{phase} {value:.1f} s" for phase, value in seconds.items()))
    lines.extend(f"curves:       {where}" for where in curves)
    print("\n".join([*lines, "=" * 60]))
