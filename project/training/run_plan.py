"""A run's settings checked and completed before anything is built or written: the run folder's name, the loggers
asked for, the checkpoint to resume, and the pretrained source (its architecture fills in the model's `backbone`
and `backbone_args`, its input the data's normalization, and the resolved file is what config.yaml and the
checkpoints record). A mistake stops the run here, with nothing written."""

import json
from dataclasses import dataclass

from jsonargparse import Namespace

from project.checkpoints.pretrained import PretrainedBackbone
from project.checkpoints.resume import Resume, check_epochs, check_resume_class, check_writable, find_resume
from project.checkpoints.run_claims import TEST_RECORD
from project.errors import UserError
from project.models import PRETRAINING_CLASSES
from project.training.input_from_weights import fill_data_from_checkpoint, fill_data_from_weights
from project.training.run_folders import check_experiment_name, check_output_dir
from project.training.run_loggers import check_logger_specs, logger_specs


@dataclass
class RunPlan:
    logger_config: object  # --trainer.logger as given: what config.yaml records
    logger_specs: list[Namespace]  # the loggers to build once the run folder is known
    resume: Resume | None  # the checkpoint to continue from, read and checked
    resume_finished: bool  # it trained its max_epochs and was tested: tested again, nothing changed
    pretrained: PretrainedBackbone | None  # the source the model's backbone starts from (not when resuming)
    input_note: str | None  # what the run's input is, when it comes from the weights or the resumed checkpoint


def plan_run(config: Namespace, model_class: type) -> RunPlan:
    """Check `config` (the parsed settings) and complete it in place from the resumed checkpoint or the source;
    `model_class` is the class the command builds, or the base class when `--model` chooses it (pretraining)."""
    chosen = config["model"]["class_path"].rsplit(".", 1)[-1] if "class_path" in config["model"] else None
    names = [cls.__name__ for cls in PRETRAINING_CLASSES]
    if chosen is not None and chosen not in names:
        raise UserError(f"--model={chosen}: pretraining trains {' or '.join(names)}; "
                        f"fine-tuning (TransferClassifier) is scripts/finetune.py")
    # The loggers are built once the run folder is known (with the Trainer), not with the other classes.
    logger_config = config["trainer"]["logger"]
    specs = logger_specs(logger_config)
    check_logger_specs(specs)
    config["trainer"]["logger"] = False
    check_output_dir(config["output_dir"])
    check_experiment_name(config["experiment"])
    every_n_steps = config["checkpoint_every_n_steps"]
    if every_n_steps is not None and every_n_steps < 1:
        raise UserError(f"checkpoint_every_n_steps={every_n_steps} must be a positive number of steps")
    resume = find_resume(config["ckpt_path"], config["output_dir"], config["experiment"])
    plan = RunPlan(logger_config, specs, resume, False, None, None)
    model = config["model"]
    if resume is not None:  # the input the resumed run trained under, and the model it holds
        check_resume_class(resume, chosen or model_class.__name__)
        plan.input_note = fill_data_from_checkpoint(config["data"], resume.checkpoint.get("preprocessing"))
        plan.resume_finished = tested_already(resume, config["trainer"]["max_epochs"])
        check_writable(resume)
        check_epochs(resume, config["trainer"]["max_epochs"])
    if "pretrained" not in model or model["pretrained"] is None:
        return plan
    if resume is not None:  # the resumed checkpoint holds the whole model: the source is not read again
        for key in ("pretrained", "pretrained_sha256", "backbone", "backbone_args"):
            if model[key] is None or key.startswith("pretrained"):
                model[key] = resume.hparams.get(key, model[key])
        return plan
    source = PretrainedBackbone.open(
        model["pretrained"], model["backbone"], model["backbone_args"], model["pretrained_sha256"]
    )
    plan.pretrained = source
    model["pretrained"], model["pretrained_sha256"] = source.source, source.sha256
    model["backbone"], model["backbone_args"] = source.backbone, source.backbone_args
    plan.input_note = fill_data_from_weights(config["data"], model, source.weights_input)
    return plan


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
