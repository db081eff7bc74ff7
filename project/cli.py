"""The command line shared by the scripts: LightningCLI plus experiment folders, resume, test and a summary."""

import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from project.best_checkpoint import BestCheckpoint
from project.checkpoints.pretrained import PretrainedBackbone
from project.checkpoints.resume import check_resume_fits, find_resume, run_folder_parts
from project.data import ImageDataModule
from project.epoch_seeding import ReseedEveryEpoch
from project.errors import UserError
from project.interruption import SaveOnSigterm, last_checkpoint_path
from project.shipped_configs import config_dir
from project.test_figures import LogTestFigures

CONFIG_DIR = config_dir()

# Batches come from tensors in memory, so worker processes would only take the cores the model needs.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# run_experiment passes the command line as `args` on purpose (to put the default --config first).
warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended to run from within Python.*")
# Raised inside Lightning's own code on recent torch; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


class ExperimentCLI(LightningCLI):
    """LightningCLI plus `--experiment`, `--output_dir`, `--ckpt_path`; the data's shape is linked into the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--experiment", type=str, default="experiment", help="Run folder under output_dir.")
        parser.add_argument("--output_dir", type=str, default="lightning_logs", help="Where experiment folders go.")
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int | None,
            default=None,
            help="Also write last.ckpt every N training steps, so a killed run loses at most N steps.",
        )
        parser.add_argument(
            "--model_selection",
            type=Literal["best_val", "last_epoch"],
            default="best_val",
            help="The checkpoint a run is tested with and hands on to fine-tuning: the best by val/acc (ties: the "
            "lower val/loss), or the last epoch's (needs no validation split).",
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume training: 'last' (this experiment's newest last.ckpt) or a checkpoint path.",
        )
        for attribute in ("num_classes", "input_shape", "class_names"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Before anything is built: the checkpoint to resume, and the pretrained source (its architecture fills
        in the model's `backbone` and `backbone_args`)."""
        config = self.config
        output_dir = Path(config["output_dir"])
        if output_dir.exists() and not output_dir.is_dir():
            raise UserError(f"--output_dir {str(output_dir)!r} is a file: give a folder for the run folders")
        self.resume = find_resume(config["ckpt_path"], config["output_dir"], config["experiment"])
        self.pretrained = None
        model = config["model"]
        if "pretrained" not in model or model["pretrained"] is None:
            return
        if self.resume is not None:  # the resumed checkpoint holds the whole model: the source is not read again
            for key in ("pretrained", "pretrained_sha256", "backbone", "backbone_args"):
                if model[key] is None or key.startswith("pretrained"):
                    model[key] = self.resume.hparams.get(key, model[key])
            return
        source = PretrainedBackbone.open(
            model["pretrained"], model["backbone"], model["backbone_args"], model["pretrained_sha256"]
        )
        self.pretrained = source
        # The resolved values, so config.yaml and the checkpoints name the exact file and architecture.
        model["pretrained"], model["pretrained_sha256"] = source.source, source.sha256
        model["backbone"], model["backbone_args"] = source.backbone, source.backbone_args

    def instantiate_trainer(self, **kwargs):
        """A new output_dir/experiment/version_N folder for every run, so no earlier run is overwritten;
        a resumed run continues in the folder of the checkpoint it resumes (same curves, same checkpoints/).

        TensorBoard logs there unless the config names another logger; with `--trainer.logger=false`
        the folder still holds the run's config.yaml and checkpoints.
        """
        if self.pretrained is not None:
            self.model.load_pretrained(self.pretrained)
        if self.resume is not None:
            check_resume_fits(self.resume, self.model)
        output_dir, experiment, version = self.config["output_dir"], self.config["experiment"], None
        if self.resume is not None and self.resume.run_folder is not None:
            output_dir, experiment, version = run_folder_parts(self.resume.run_folder)
            # Keep the first config.yaml; each resume records its own config beside it.
            configs = len(list(self.resume.run_folder.glob("config*.yaml")))
            self.save_config_kwargs["config_filename"] = f"config-resume-{configs}.yaml"
        logger = self.config_init["trainer"].get("logger")
        run_folder = TensorBoardLogger(output_dir, name=experiment, version=version, default_hp_metric=False)
        if logger in (None, True):
            kwargs["logger"] = logger = run_folder
        elif logger is False:
            kwargs["default_root_dir"] = run_folder.log_dir
        # Set here rather than in the constructor: the lr monitor needs a logger, which the config may turn off.
        every_n_steps = self.config["checkpoint_every_n_steps"]
        if every_n_steps is not None and every_n_steps < 1:
            raise UserError(f"checkpoint_every_n_steps={every_n_steps} must be a positive number of steps")
        self.trainer_defaults["callbacks"] = default_callbacks(
            bool(logger), every_n_steps, self.config["model_selection"]
        )
        return super().instantiate_trainer(**kwargs)


def default_callbacks(
    with_lr_monitor: bool, checkpoint_every_n_steps: int | None = None, model_selection: str = "best_val"
) -> list:
    """Checkpoints (the best by val/acc, ties by val/loss, unless the last epoch is selected; the last, to
    resume), lr curves, test figures."""
    callbacks = [
        # A checkpointer of its own for last.ckpt: Lightning 2.6's save_last only writes when the best one changed,
        # so a run whose val/acc stopped improving would resume from an old epoch.
        ModelCheckpoint(filename="last", monitor=None, save_top_k=1, enable_version_counter=False),
        SaveOnSigterm(),
        ReseedEveryEpoch(),
        LogTestFigures(),  # does nothing without a TensorBoard logger
    ]
    if model_selection == "best_val":  # ties: the lower val/loss wins
        callbacks.insert(0, BestCheckpoint(monitor="val/acc", mode="max", filename="best-{epoch:03d}"))
    if checkpoint_every_n_steps:  # mid-epoch copies of last.ckpt (Lightning's checkpointers take one trigger each)
        callbacks.append(
            ModelCheckpoint(
                filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                every_n_train_steps=checkpoint_every_n_steps,
            )
        )
    return [*callbacks, LearningRateMonitor(logging_interval="step")] if with_lr_monitor else callbacks


def run_experiment(model_class: type[LightningModule], default_config: str, args: list[str] | None = None) -> dict:
    """Fit, then test the best checkpoint, then print where everything is; a user error exits with status 2."""
    args = list(sys.argv[1:] if args is None else args)
    if not any(arg == "--config" or arg.startswith("--config=") for arg in args):
        args = ["--config", str(CONFIG_DIR / default_config), *args]
    try:
        return fit_and_test(model_class, args).metrics
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except MisconfigurationException as error:  # Lightning's word on a Trainer setting, e.g. a GPU where none is
        print(f"error: {error} Check the --trainer settings (e.g. --trainer.accelerator=cpu).", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:
        print("stopped by SIGTERM: last.ckpt saved; continue with the same command and --ckpt_path last",
              file=sys.stderr)
        sys.exit(128 + 15)  # the shell's status for "terminated by SIGTERM", so schedulers see an interrupted job


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
    selected_val_acc: float | None  # its val/acc; None without a validation split


def fit_and_test(model_class: type[LightningModule], args: list[str]) -> RunResult:
    """Parse `args` like the command line, fit, then test the selected checkpoint (UserError on bad input)."""
    cli = ExperimentCLI(
        model_class,
        ImageDataModule,
        run=False,
        args=args,
        save_config_kwargs={"overwrite": False},
        # The modules build their own optimizer and schedule (parameter groups gated by the fine-tuning plan);
        # LightningCLI's --optimizer/--lr_scheduler would silently replace them.
        auto_configure_optimizers=False,
    )
    ckpt_path = str(cli.resume.path) if cli.resume else None
    trainer, data = cli.trainer, cli.datamodule
    # The data is loaded and checked before fit, so a bad setting stops the run before it writes anything.
    if trainer.local_rank == 0:  # downloads once per machine, as Lightning does
        data.prepare_data()
    data.setup("fit")
    check_run_settings(trainer, data, cli.config["model_selection"], resuming=ckpt_path is not None)
    run_folder = Path(trainer.log_dir)
    new_run = not run_folder.exists()
    try:
        trainer.fit(cli.model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except UserError:
        # A run that fails before its first step (e.g. a NaN loss) leaves no empty version_N behind.
        if new_run and trainer.global_step == 0 and trainer.is_global_zero and not any(run_folder.rglob("*.ckpt")):
            shutil.rmtree(run_folder, ignore_errors=True)
            if run_folder.parent.is_dir() and not any(run_folder.parent.iterdir()):
                run_folder.parent.rmdir()
        raise
    selected, selected_val_acc = selected_checkpoint(trainer)
    metrics = {}
    if len(data.test_set):
        try:
            results = trainer.test(cli.model, datamodule=data, ckpt_path=selected, verbose=False, weights_only=True)
        except SIGTERMException:
            print(f"stopped by SIGTERM in the final test: training had finished and its checkpoints are complete; "
                  f"test the selected one with: python scripts/evaluate.py --ckpt {selected}", file=sys.stderr)
            sys.exit(128 + 15)
        metrics = results[0] if results else {}
    log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
    if trainer.is_global_zero:
        print_summary(log_dir, trainer.logger is not None, selected, metrics)
    return RunResult(
        metrics, log_dir, trainer, cli.model, data, cli.config["model_selection"], selected, selected_val_acc
    )


def check_run_settings(trainer: Trainer, data: ImageDataModule, model_selection: str, resuming: bool) -> None:
    """Refuse a run that would train nothing, or select its checkpoint on a validation split that is empty."""
    if not resuming and (trainer.max_epochs == 0 or trainer.max_steps == 0 or trainer.limit_train_batches == 0):
        raise UserError(
            f"max_epochs={trainer.max_epochs}, max_steps={trainer.max_steps}, limit_train_batches="
            f"{trainer.limit_train_batches}: this run would train nothing; set --trainer.max_epochs to 1 or more"
        )
    if model_selection == "best_val" and (len(data.val_set) == 0 or trainer.limit_val_batches == 0):
        raise UserError(
            f"the validation split is empty (val_fraction={data.hparams.val_fraction}, limit_val_batches="
            f"{trainer.limit_val_batches}), so no best checkpoint can be chosen: raise --data.val_fraction, or add "
            f"--model_selection=last_epoch to test and hand on the last epoch's weights"
        )


def selected_checkpoint(trainer: Trainer) -> tuple[str, float | None]:
    """(path, val/acc) of the checkpoint the run selected: BestCheckpoint's best, or else last.ckpt."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, BestCheckpoint) and callback.best_model_path:
            score = callback.best_model_score
            return callback.best_model_path, None if score is None else float(score)
    last = last_checkpoint_path(trainer)
    val_acc = trainer.callback_metrics.get("val/acc")
    return str(last), None if val_acc is None else float(val_acc)


def print_summary(log_dir: str, logged: bool, selected: str, metrics: dict) -> None:
    lines = ["", "=" * 60]
    lines.append(f"run folder:   {log_dir}")
    if Path(selected).name != "last.ckpt":
        lines.append(f"best ckpt:    {selected}")
    lines.append(f"last ckpt:    {Path(selected).parent / 'last.ckpt'}")
    if metrics:
        lines.append("test metrics: " + ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items())))
    else:
        lines.append("test metrics: none: the test split is empty (raise --data.test_fraction to test the model)")
    if logged:
        lines.append(f"curves:       tensorboard --logdir {Path(log_dir).parent.parent}")
    print("\n".join([*lines, "=" * 60]))
