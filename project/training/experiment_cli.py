"""LightningCLI for this project's runs: arguments and links only. Every constructor argument of the model, the data
and the Trainer is a setting, plus the run's own: `--experiment`, `--output_dir` (the run folder), `--ckpt_path`
(resume), `--model_selection` (the checkpoint a run is tested with and hands on) and `--checkpoint_every_n_steps`.
Nothing is built while parsing: the run (training/run.py) checks the settings first (run_plan.py), then builds.
"""

from typing import Literal

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from project.models import ImageClassifier
from project.training.run_loggers import DEFAULT_LOGGER

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
    """LightningCLI plus the run's settings; the data's classes and shape are linked into the model. Given a base
    class with `subclass_mode_model` (pretraining), the model's class is chosen by `--model=<class>` or a config's
    `model: class_path:`, ImageClassifier by default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["trainer_defaults"] = {"logger": DEFAULT_LOGGER, **kwargs.get("trainer_defaults", {})}
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name, kind, default, help_text in RUN_ARGUMENTS:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)
        model = "model.init_args" if self.subclass_mode_model else "model"  # a chosen class's arguments
        for attribute in ("num_classes", "input_shape", "class_names"):
            parser.link_arguments(f"data.{attribute}", f"{model}.{attribute}", apply_on="instantiate")
        if self.subclass_mode_model:  # the labels' classifier unless another class is named
            parser.set_defaults({"model": {"class_path": f"{ImageClassifier.__module__}.ImageClassifier"}})

    def instantiate_classes(self) -> None:
        """Nothing is built while parsing: the run checks and completes the settings first, then builds the data
        and the model (`build_data_and_model`) and the Trainer (run_trainer.py)."""

    def build_data_and_model(self) -> tuple:
        """The data and the model, the data's classes and shape linked into the model (as LightningCLI's own
        `instantiate_classes` would, without the Trainer)."""
        self.config_init = self.parser.instantiate(self.config)
        self.datamodule, self.model = self.config_init["data"], self.config_init["model"]
        return self.datamodule, self.model
