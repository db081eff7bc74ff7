"""A run's Trainer, built to write into the run folder, which it claims (a new `version_N` created atomically, or
the resumed one, marked as this process's until it stops), with the loggers `--trainer.logger` names
(TensorBoard by default; see run_loggers) and the project's callbacks; with `--trainer.logger=false` the folder
still holds config.yaml and checkpoints/."""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from project.checkpoints.atomic_io import AtomicCheckpointIO
from project.checkpoints.run_claims import claim_new_run, claim_run, release_run
from project.progress import on_terminal
from project.training.callbacks.defaults import default_callbacks
from project.training.run_folders import run_folder
from project.training.run_loggers import build_loggers, keep_earlier_metrics
from project.training.run_plan import RunPlan


@dataclass
class RunFolderClaim:
    """The run folder this process writes (rank 0), and what claiming it created (the run folder first)."""

    run: Path | None = None
    created: list[Path] = field(default_factory=list)

    def abandon(self) -> None:
        """A run that stops before its first step leaves nothing: the folders its claim created are removed (an
        existing run it resumed keeps everything but this process's marker)."""
        if self.created:
            shutil.rmtree(self.created[0], ignore_errors=True)
            for folder in self.created[1:]:  # its experiment and output folders, if they are empty now
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            self.created = []
        self.release()

    def release(self) -> None:
        if self.run is not None:
            release_run(self.run)


def build_trainer(
    settings: LightningCLI, plan: RunPlan, model: LightningModule, callbacks: list[Callback], claims: bool = True
) -> tuple[Trainer, RunFolderClaim]:
    """The Trainer LightningCLI builds from `settings`, writing into the run folder (claimed unless `claims` is
    False: a study's preview of a run claims nothing); `callbacks` (a caller's own) join the run's."""
    # LightningCLI builds the Trainer (and its SaveConfigCallback) from its own settings: `trainer_defaults`,
    # `save_config_kwargs` and `save_config_callback` are its constructor's arguments, kept as attributes, and the
    # only route to what it builds; they are set here, just before `instantiate_trainer` reads them.
    config = settings.config
    output_dir, experiment, version = run_folder(config["output_dir"], config["experiment"], plan.resume)
    continuing = version is not None  # a resume, or a requeued SLURM job: its folder exists already
    claim = RunFolderClaim()
    if claims and rank_zero_only.rank == 0:  # other DDP ranks take rank 0's folder (broadcast)
        if version is None:
            version, claim.created = claim_new_run(Path(output_dir) / experiment)
        else:  # a resume, or a SLURM job requeued into the folder it started (its own earlier marker)
            claim_run(Path(output_dir) / experiment / f"version_{version}", take_over=plan.resume is None)
        claim.run = Path(output_dir) / experiment / f"version_{version}"
    folder = Path(TensorBoardLogger(output_dir, name=experiment, version=version).log_dir)
    if continuing:  # keep the run's first config.yaml, record this start's beside it
        configs = sum(1 for _ in folder.glob("config*.yaml"))
        settings.save_config_kwargs["config_filename"] = f"config-resume-{configs}.yaml"
    config["trainer"]["logger"] = plan.logger_config  # what config.yaml records
    specs = plan.logger_specs
    if plan.resume_finished:  # only its selected checkpoint is tested: no new config, events or checkpoints
        specs = []
        settings.save_config_callback = None
    trainer_init = settings.config_init["trainer"]
    plugins = trainer_init.get("plugins") or []
    own_bar = any(isinstance(callback, ProgressBar) for callback in trainer_init.get("callbacks") or [])
    # Set here rather than in the constructor: the lr monitor needs a logger, which the config may turn off.
    settings.trainer_defaults["callbacks"] = default_callbacks(
        bool(specs), config["checkpoint_every_n_steps"], config["model_selection"], model.selection_metric,
        progress_in_lines=config["trainer"]["enable_progress_bar"] is not False and not own_bar and not on_terminal(),
    ) + callbacks
    try:
        loggers = build_loggers(specs, folder) or False
        if continuing and claims and rank_zero_only.rank == 0 and not plan.resume_finished:
            keep_earlier_metrics(folder)
        trainer = settings.instantiate_trainer(
            # Lightning saves SLURM's requeue checkpoint (hpc_ckpt_N.ckpt) in default_root_dir, and a requeued job
            # resumes from there: the run folder, so the job continues in it.
            default_root_dir=str(folder), logger=loggers,
            plugins=[*(plugins if isinstance(plugins, list) else [plugins]), AtomicCheckpointIO()],
        )
    except BaseException:  # e.g. a GPU asked for where there is none: the run never starts
        claim.abandon()
        raise
    return trainer, claim
