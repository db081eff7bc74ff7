"""The run's loggers, whatever `--trainer.logger` names, built around one run folder.

`<output_dir>/<experiment>/version_N` holds the checkpoints and config.yaml whichever loggers a run has, so the
handoff to fine-tuning, `--ckpt_path last`, studies and reports find them. Loggers that write files
(TensorBoard, CSV) write them into that folder; a tracking service's logger (MLflow, W&B, any other) logs where
it is told, and a CSV logger is added beside it so the folder keeps the curves too. Such a logger's run id is
recorded in the folder (`tracking_runs.json`): a resumed run continues the same W&B run; for MLflow, which refuses a
run's parameters logged again with other values, it starts a new run tagged `resumed_from_run`.
"""

import importlib
import json
import sys
from pathlib import Path

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from project.checkpoints.files import version_number
from project.checkpoints.output_files import replace_file
from project.errors import UserError

# `--trainer.logger`'s default. The save_dir is a placeholder that the run folder replaces: naming another logger
# (`--trainer.logger=CSVLogger`) keeps the init arguments it shares with this one, so CSVLogger's required
# save_dir is given and the option works alone (jsonargparse's rule for a changed class_path).
RUN_FOLDER = "<run folder>"
DEFAULT_LOGGER = lazy_instance(TensorBoardLogger, save_dir=RUN_FOLDER)
FOLDER_LOGGERS = (TensorBoardLogger, CSVLogger)  # loggers whose files are the run folder's
EXTRAS = {WandbLogger: "wandb", MLFlowLogger: "mlflow"}  # this project's pip extra for each service's package
TRACKING_RUNS = "tracking_runs.json"  # {logger class path: its run id}, for a resume to continue the same run
DEFAULT_NAME = "lightning_logs"  # the loggers' own default experiment name: left as is, the --experiment is used


def logger_specs(value: object) -> list[Namespace]:
    """`--trainer.logger` as a list of class_path/init_args specs: true (or unset) is the default TensorBoard."""
    if value is False:
        return []
    if value is None or value is True:
        value = Namespace(class_path=f"{TensorBoardLogger.__module__}.{TensorBoardLogger.__name__}",
                          init_args=Namespace(save_dir=RUN_FOLDER))
    return list(value) if isinstance(value, list) else [value]


def check_logger_specs(specs: list[Namespace]) -> None:
    """A logger's place is the run's: a folder logger's own save_dir, name or version, or a tracking logger's
    save_dir, is refused, not ignored; so is one folder logger twice (it would write every row twice)."""
    classes = [spec.class_path for spec in specs]
    for spec in specs:
        class_name, logger_class = spec.class_path.rpartition(".")[2], logger_class_of(spec)
        args = spec.get("init_args") or Namespace()
        if issubclass(logger_class, FOLDER_LOGGERS):
            if classes.count(spec.class_path) > 1:
                raise UserError(f"--trainer.logger names {class_name} twice: both would write the same run folder's "
                                f"files; name it once")
            given = {key: args.get(key) for key in ("save_dir", "name", "version")
                     if args.get(key) not in (RUN_FOLDER, DEFAULT_NAME, None)}
            where = "set --output_dir and --experiment instead"
        elif issubclass(logger_class, WandbLogger | MLFlowLogger):  # W&B's files: the run folder; MLflow's: its URI
            given = {"save_dir": args.get("save_dir")} if args.get("save_dir") not in (RUN_FOLDER, None) else {}
            where = ("give MLflow's store as --trainer.logger.tracking_uri" if issubclass(logger_class, MLFlowLogger)
                     else "its files go in the run folder, <output_dir>/<experiment>/version_N")
        else:  # another library's logger keeps the place it is given
            given = {}
        if given:
            raise UserError(f"{class_name}'s {', '.join(f'{key}={value!r}' for key, value in given.items())}: the run "
                            f"folder is <output_dir>/<experiment>/version_N whatever the logger; {where}")


def build_loggers(specs: list[Namespace], run_dir: Path) -> list[Logger]:
    """The loggers of `specs`, writing around `run_dir`: a folder logger first (Lightning takes the first
    logger's folder as the run's: checkpoints, config.yaml), CSV added when none was asked for."""
    tracked = tracking_runs(run_dir)
    loggers = [build_logger(spec, run_dir, tracked) for spec in specs]
    if loggers and not any(isinstance(logger, FOLDER_LOGGERS) for logger in loggers):
        loggers.insert(0, CSVLogger(run_dir.parent.parent, name=run_dir.parent.name, version=version_number(run_dir)))
    return sorted(loggers, key=lambda logger: not isinstance(logger, FOLDER_LOGGERS))


def build_logger(spec: Namespace, run_dir: Path, tracked: dict[str, str]) -> Logger:
    """One logger from its spec, with the run folder's place, names and (on a resume) tracked run id."""
    logger_class = logger_class_of(spec)
    earlier_run = tracked.get(tracking_key(logger_class))
    args = dict(vars(spec.get("init_args") or Namespace()))
    output_dir, experiment, version = str(run_dir.parent.parent), run_dir.parent.name, run_dir.name
    if issubclass(logger_class, FOLDER_LOGGERS):
        args.update(save_dir=output_dir, name=experiment, version=version_number(run_dir))
        if issubclass(logger_class, TensorBoardLogger):  # the HPARAMS tab shows test metrics, not a placeholder
            args["default_hp_metric"] = False
    elif issubclass(logger_class, MLFlowLogger):
        if args.get("experiment_name") in (None, DEFAULT_NAME):
            args["experiment_name"] = experiment
        args["run_name"] = args.get("run_name") or f"{experiment}/{version}"
        # MLflow 3 refuses its file store (mlruns/); a SQLite file works offline with MLflow 2 and 3 alike.
        args["tracking_uri"] = args.get("tracking_uri") or f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"
        args["artifact_location"] = args.get("artifact_location") or (
            Path(output_dir).resolve() / "mlflow-artifacts").as_uri()
        # A resume starts a new MLflow run tagged with the earlier one: MLflow refuses a run's parameters logged
        # again with other values, and a resume's can differ (the input it reads back from the checkpoint).
        if earlier_run and not args.get("run_id"):
            args["tags"] = {**(args.get("tags") or {}), "resumed_from_run": earlier_run}
            args["run_name"] = f"{args['run_name']} (resumed)"
        args.pop("save_dir", None)  # only for the file store
    elif issubclass(logger_class, WandbLogger):
        if args.get("name") in (None, DEFAULT_NAME):
            args["name"] = f"{experiment}/{version}"
        args["project"] = args.get("project") or experiment
        args["save_dir"] = str(run_dir)  # W&B's offline files (wandb/) beside the run's checkpoints
        resumed = args.get("id") or args.get("version") or earlier_run
        if resumed:
            args.update(id=resumed, version=None, resume=args.get("resume") or "allow")
    elif args.get("save_dir") == RUN_FOLDER:  # another library's logger: its own default place
        args.pop("save_dir")
    try:
        return logger_class(**args)
    except ModuleNotFoundError as error:
        raise missing_package(logger_class, error) from error
    except Exception as error:  # a service's client refusing its settings (a tracking_uri it cannot open, ...)
        raise cannot_start(logger_class, error) from error


def cannot_start(logger_class: type[Logger], error: Exception) -> UserError:
    """A tracking service's logger that fails to start, whatever its library raises: one line with its reason."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    hint = {WandbLogger: " (offline, no account needed: --trainer.logger.offline=true; online: wandb login)",
            MLFlowLogger: " (the default store is sqlite:///<output_dir>/mlflow.db; a server: its http:// URI)"}
    extra = next((text for cls, text in hint.items() if issubclass(logger_class, cls)), "")
    return UserError(f"--trainer.logger={logger_class.__name__} could not start: {type(error).__name__}: "
                     f"{reason[:300]}; check its --trainer.logger.* settings{extra}")


def missing_package(logger_class: type[Logger], error: ModuleNotFoundError) -> UserError:
    """Lightning's loggers check their package when built or first used: either way, one line naming the extra."""
    extra = next((name for cls, name in EXTRAS.items() if issubclass(logger_class, cls)), None)
    how = f"pip install 'lightning-transfer-lab[{extra}]'" if extra else "install the package it needs"
    return UserError(f"--trainer.logger={logger_class.__name__} needs a package that is not installed ({error}): "
                     f"{how}, or choose another logger")


def logger_class_of(spec: Namespace) -> type[Logger]:
    """The class a spec names (the parser has imported and checked it already)."""
    module_name, _, class_name = spec.class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def tracking_key(logger_class: type[Logger]) -> str:
    return f"{logger_class.__module__}.{logger_class.__name__}"


def tracking_runs(run_dir: Path) -> dict[str, str]:
    """The tracked run ids an earlier start of this run recorded (none for a new run)."""
    try:
        recorded = json.loads((run_dir / TRACKING_RUNS).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def record_tracking_runs(loggers: list[Logger], run_dir: Path) -> None:
    """Note each tracking service's run id in the run folder. Its run is started first (`experiment`, as
    Lightning does on the first log): W&B knows the id only then."""
    ids = {}
    for logger in loggers:
        if isinstance(logger, FOLDER_LOGGERS):
            continue
        try:
            logger.experiment  # noqa: B018 (starts the tracked run)
        except ModuleNotFoundError as error:
            raise missing_package(type(logger), error) from error
        except Exception as error:  # no account, no server, a run id that does not exist, ...
            raise cannot_start(type(logger), error) from error
        ids[tracking_key(type(logger))] = logger.version
    ids = {name: run_id for name, run_id in ids.items() if isinstance(run_id, str)}
    if ids and ids != tracking_runs(run_dir):
        replace_file(run_dir / TRACKING_RUNS, lambda path: path.write_text(json.dumps(ids, indent=2) + "\n"))


def keep_earlier_metrics(run_dir: Path) -> None:
    """A resumed run's earlier metrics.csv is renamed, not lost: Lightning's CSV logger deletes a metrics.csv it
    finds in its folder. The report reads them all, in order."""
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        earlier = len(list(run_dir.glob("metrics-before-resume-*.csv")))
        metrics.rename(run_dir / f"metrics-before-resume-{earlier + 1}.csv")


def where_to_look(loggers: list[Logger], run_dir: Path) -> list[str]:
    """The summary's lines saying where each logger's curves are."""
    lines = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"tensorboard --logdir {run_dir.parent.parent}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"{run_dir / 'metrics.csv'} (python scripts/report.py {run_dir})")
        elif isinstance(logger, MLFlowLogger):
            # the client's public tracking_uri (starting the client is what the logger did already)
            lines.append(f"mlflow ui --backend-store-uri {logger.experiment.tracking_uri}")
        elif isinstance(logger, WandbLogger):
            lines.append(f"W&B run {logger.version} (offline: wandb sync {run_dir / 'wandb'})")
        else:
            lines.append(f"{type(logger).__name__}")
    return lines


def finish_tracked_runs(loggers: list[Logger]) -> None:
    """End the W&B run this run logged to. Lightning leaves it open (for notebooks that log more to it), so the next
    run in the same process (a study's, the Python API's) logged into it: "a wandb run already in progress ... will
    reuse this run", its files under the first run's folder (found by the doc-command test running W&B in-process)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None and any(isinstance(logger, WandbLogger) for logger in loggers):
        wandb.finish()
