"""Which `<output_dir>/<experiment>/version_N` folder a run writes to, decided before anything is written.

A new run gets a new version_N, so no earlier run is overwritten. A resumed run continues in the folder of the
checkpoint it resumes. A SLURM job that the scheduler requeued (Lightning saved `hpc_ckpt_N.ckpt` on the
requeue signal) continues in the folder its first start made, found by the job id recorded there.
"""

import os
import re
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment

from project.checkpoints.files import version_number
from project.checkpoints.resume import Resume
from project.errors import UserError
from project.shown_text import shown

SLURM_JOB_FILE = "slurm_job_id"


def check_output_dir(output_dir: str) -> None:
    """The output folder must be a folder this user can write in (it may not exist yet)."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output_dir {output_dir!r} is a file: give a folder for the run folders")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        raise UserError(f"--output_dir {output_dir!r} is under the file {str(existing)!r}: give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--output_dir {output_dir!r}: {str(existing)!r} is not writable: give a folder you can write")


MAX_EXPERIMENT_BYTES = 200  # a folder name's limit is 255 bytes on common file systems; room for what follows


def check_experiment_name(name: str) -> None:
    """An experiment is one folder name under --output_dir: never a path that leaves it, nor one no folder can have."""
    wrong = ("is empty" if not name else
             "is a path, not one folder name" if "/" in name or "\\" in name or name in (".", "..") else
             "has control characters" if not name.isprintable() else
             "starts with '.' (hidden, and the project's own markers are)" if name.startswith(".") else
             "starts or ends with a space" if name != name.strip() else
             f"is over {MAX_EXPERIMENT_BYTES} bytes" if len(name.encode()) > MAX_EXPERIMENT_BYTES else None)
    if wrong:
        raise UserError(f"--experiment '{shown(name)}' {wrong}: name the run's folder under --output_dir with one "
                        f"plain name (no '/', '..' or control characters), e.g. --experiment=my_images")


def slurm_job_id() -> str | None:
    """This SLURM job's id (an array task's own), or None outside SLURM batch jobs."""
    if not SLURMEnvironment.detect():
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def run_folder(output_dir: str, experiment: str, resume: Resume | None) -> tuple[str, str, int | None]:
    """(output_dir, experiment, version) of the run folder; version None: the next free one."""
    if resume is not None and resume.run_folder is not None:
        folder = resume.run_folder
        return str(folder.parent.parent), folder.parent.name, version_number(folder)
    job = slurm_job_id()
    if resume is None and job is not None:
        for folder in sorted(Path(output_dir, experiment).glob("version_*"), key=version_number, reverse=True):
            recorded = folder / SLURM_JOB_FILE
            if re.fullmatch(r"version_\d+", folder.name) and recorded.is_file() and recorded.read_text() == job:
                return output_dir, experiment, version_number(folder)  # the same job, requeued
    return output_dir, experiment, None


def record_slurm_job(log_dir: str) -> None:
    """Note the SLURM job in the run folder, so a requeued start of this job finds its folder again."""
    job = slurm_job_id()
    if job is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        (Path(log_dir) / SLURM_JOB_FILE).write_text(job)
