"""LightningCLI for this project's runs: every constructor argument is a setting, plus the run's own.

`--experiment`, `--output_dir` (the run folder), `--ckpt_path` (resume), `--model_selection` (the checkpoint a
run is tested with and hands on) and `--checkpoint_every_n_steps`. Before anything is built, the checkpoint to
resume and the pretrained source are read and checked, so a mistake stops the run with nothing written.
"""

import json
import shutil
from pathlib import Path
from typing import Literal

from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from project.checkpoints.atomic_io import AtomicCheckpointIO
from project.checkpoints.pretrained import PretrainedBackbone
from project.checkpoints.resume import (
    Resume,
    check_epochs,
    check_writable,
    find_resume,
)
from project.checkpoints.run_claims import TEST_RECORD, claim_new_run, claim_run, release_run
from project.errors import UserError
from project.models import PRETRAINING_CLASSES, ImageClassifier
from project.progress import on_terminal
from project.training.callbacks.defaults import default_callbacks
from project.training.input_from_weights import fill_data_from_checkpoint, fill_data_from_weights
from project.training.run_folders import check_experiment_name, check_output_dir, run_folder
from project.training.run_loggers import (
    DEFAULT_LOGGER,
    build_loggers,
    check_logger_specs,
    keep_earlier_metrics,
    logger_specs,
)

RUN_ARGUMENTS = [  # (name, type, default, help): the run's own settings, beside those of the model, data and Trainer
    ("experiment", str, "experiment", "Run folder under output_dir."),
    ("output_dir", str, "lightning_logs", "Where experiment folders go."),
    ("checkpoint_every_n_steps", int | None, None,
     "Also write last.ckpt every N training steps, so a killed run loses at most N steps."),
    ("model_selection", Literal["best_val", "last_epoch"], "best_val",
     "The checkpoint a run is tested with and hands on to fine-tuning: the best by val/acc (ties: the lower "
     "val/loss), or the last epoch's (needs no validation split)."),
    ("ckpt_path", str | None, None,
     "Resume training: 'last' (this experiment's newest last.ckpt) or a checkpoint path; the run continues in that "
     "checkpoint's run folder."),
]


class ExperimentCLI(LightningCLI):
    """LightningCLI for a run's settings: the model's, the data's, the Trainer's and the run's own; the data's classes
    and shape are linked into the model. It reads and checks them, reads the checkpoint to resume and the pretrained
    source, and builds the data and the model; the run (training/run.py) does the rest.

    A run's folder is claimed when its Trainer is built (`claims_run_folder`; a study's preview of a run claims
    nothing): a new `version_N` created atomically, or the resumed one, marked as this process's until it stops.
    """

    def __init__(
        self, *args, claims_run_folder: bool = True, extra_callbacks: list[Callback] | None = None, **kwargs
    ) -> None:
        self.claims_run_folder = claims_run_folder
        self.extra_callbacks = extra_callbacks or []  # a caller's own (a sweep's pruning), after the run's
        self.claimed_run: Path | None = None  # the run folder this process writes (rank 0)
        self.resume_finished = False  # resuming a run that has trained its max_epochs: it is tested, not changed
        self.created_folders: list[Path] = []  # what the claim created, the run folder first
        kwargs["trainer_defaults"] = {"logger": DEFAULT_LOGGER, **kwargs.get("trainer_defaults", {})}
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name, kind, default, help_text in RUN_ARGUMENTS:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)
        # Pretraining chooses its LightningModule (`--model=SimCLRPretraining`, or `class_path` in a config); its
        # arguments are then the class's `init_args`.
        model = "model.init_args" if self.subclass_mode_model else "model"
        for attribute in ("num_classes", "input_shape", "class_names"):
            parser.link_arguments(f"data.{attribute}", f"{model}.{attribute}", apply_on="instantiate")
        if self.subclass_mode_model:  # the labels' classifier unless another class is named
            parser.set_defaults({"model": {"class_path": f"{ImageClassifier.__module__}.ImageClassifier"}})

    def before_instantiate_classes(self) -> None:
        """The checkpoint to resume, and the pretrained source (its architecture fills in the model's `backbone`
        and `backbone_args`, and the resolved file is what config.yaml and the checkpoints record)."""
        config = self.config
        if self.subclass_mode_model:
            chosen = config["model"]["class_path"].rsplit(".", 1)[-1]
            if chosen not in {cls.__name__ for cls in PRETRAINING_CLASSES}:
                raise UserError(f"--model={chosen}: pretraining trains "
                                f"{' or '.join(cls.__name__ for cls in PRETRAINING_CLASSES)}; "
                                f"fine-tuning (TransferClassifier) is scripts/finetune.py")
        # The loggers are built once the run folder is known (instantiate_trainer), not with the other classes.
        self.logger_config = config["trainer"]["logger"]
        self.logger_specs = logger_specs(self.logger_config)
        check_logger_specs(self.logger_specs)
        config["trainer"]["logger"] = False
        check_output_dir(config["output_dir"])
        check_experiment_name(config["experiment"])
        every_n_steps = config["checkpoint_every_n_steps"]
        if every_n_steps is not None and every_n_steps < 1:
            raise UserError(f"checkpoint_every_n_steps={every_n_steps} must be a positive number of steps")
        self.resume = find_resume(config["ckpt_path"], config["output_dir"], config["experiment"])
        self.pretrained: PretrainedBackbone | None = None
        self.input_note: str | None = None  # what the run's input is, when it comes from pretrained weights
        model = config["model"]
        if self.resume is not None:  # the input the resumed run trained under, and the model it holds
            self.input_note = fill_data_from_checkpoint(config["data"], self.resume.checkpoint.get("preprocessing"))
            self.resume_finished = tested_already(self.resume, config["trainer"]["max_epochs"])
            check_writable(self.resume)
            check_epochs(self.resume, config["trainer"]["max_epochs"])
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
        model["pretrained"], model["pretrained_sha256"] = source.source, source.sha256
        model["backbone"], model["backbone_args"] = source.backbone, source.backbone_args
        self.input_note = fill_data_from_weights(config["data"], model, source.weights_input)

    def instantiate_classes(self) -> None:
        """The data and the model, the data's classes and shape linked into the model. The Trainer is built by the
        run (`instantiate_trainer`), once the model holds its weights: see training/run.py."""
        self.config_init = self.parser.instantiate(self.config)
        self.datamodule, self.model = self.config_init["data"], self.config_init["model"]

    def instantiate_trainer(self, **kwargs):
        """The Trainer, built to write into the run folder, which it claims (a new `version_N`, or the resumed
        one), with the loggers `--trainer.logger` names (TensorBoard by default; see run_loggers); with
        `--trainer.logger=false` the folder still holds config.yaml and checkpoints/."""
        output_dir, experiment, version = run_folder(self.config["output_dir"], self.config["experiment"], self.resume)
        continuing = version is not None  # a resume, or a requeued SLURM job: its folder exists already
        if self.claims_run_folder and rank_zero_only.rank == 0:  # other DDP ranks take rank 0's folder (broadcast)
            if version is None:
                version, self.created_folders = claim_new_run(Path(output_dir) / experiment)
            else:  # a resume, or a SLURM job requeued into the folder it started (its own earlier marker)
                claim_run(Path(output_dir) / experiment / f"version_{version}", take_over=self.resume is None)
            self.claimed_run = Path(output_dir) / experiment / f"version_{version}"
        folder = TensorBoardLogger(output_dir, name=experiment, version=version, default_hp_metric=False)
        if continuing:  # keep the run's first config.yaml, record this start's beside it
            configs = sum(1 for _ in Path(folder.log_dir).glob("config*.yaml"))
            self.save_config_kwargs["config_filename"] = f"config-resume-{configs}.yaml"
        self.config["trainer"]["logger"] = self.logger_config  # what config.yaml records
        if self.resume_finished:  # only its selected checkpoint is tested: no new config, events or checkpoints
            self.logger_specs = []
            self.save_config_callback = None
        # Lightning saves SLURM's requeue checkpoint (hpc_ckpt_N.ckpt) in default_root_dir, and a requeued job
        # resumes from there: the run folder, so the job continues in it.
        kwargs["default_root_dir"] = folder.log_dir
        plugins = self.config_init["trainer"].get("plugins") or []
        kwargs["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), AtomicCheckpointIO()]
        # Set here rather than in the constructor: the lr monitor needs a logger, which the config may turn off.
        trainer_config = self.config["trainer"]
        given_callbacks = self.config_init["trainer"].get("callbacks") or []
        own_bar = any(isinstance(callback, ProgressBar) for callback in given_callbacks)
        self.trainer_defaults["callbacks"] = default_callbacks(
            bool(self.logger_specs), self.config["checkpoint_every_n_steps"], self.config["model_selection"],
            self.model.selection_metric,
            progress_in_lines=trainer_config["enable_progress_bar"] is not False and not own_bar and not on_terminal(),
        ) + self.extra_callbacks
        try:
            kwargs["logger"] = build_loggers(self.logger_specs, Path(folder.log_dir)) or False
            if continuing and self.claims_run_folder and rank_zero_only.rank == 0 and not self.resume_finished:
                keep_earlier_metrics(Path(folder.log_dir))
            return super().instantiate_trainer(**kwargs)
        except BaseException:  # e.g. a GPU asked for where there is none: the run never starts
            self.abandon_run_folder()
            raise

    def abandon_run_folder(self) -> None:
        """A run that stops before its first step leaves nothing: the folders its claim created are removed (an
        existing run it resumed keeps everything but this process's marker)."""
        if self.created_folders:
            shutil.rmtree(self.created_folders[0], ignore_errors=True)
            for folder in self.created_folders[1:]:  # its experiment and output folders, if they are empty now
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            self.created_folders = []
        self.release_run_folder()

    def release_run_folder(self) -> None:
        if self.claimed_run is not None:
            release_run(self.claimed_run)


def tested_already(resume: Resume, max_epochs: int | None) -> bool:
    """Whether the resumed run finished: trained to `max_epochs` from this very checkpoint, and tested (a run
    stopped in its final test is tested again, and logs its test metrics then)."""
    record = resume.run_folder / TEST_RECORD if resume.run_folder is not None else None
    if record is None or not record.is_file():
        return False
    try:
        tested = json.loads(record.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return tested.get("global_step") == resume.checkpoint.get("global_step") and (
        max_epochs is not None and 0 <= max_epochs <= tested.get("max_epochs", -1))
