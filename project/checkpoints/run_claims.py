"""Which process is writing a run folder: a `.running` file it creates exclusively when it starts (its pid and
host) and removes when it stops. Two runs or two resumes never write into one folder, and "the newest run" of an
experiment never means one that another process is still training. A marker left by a killed process (its pid
gone on this host) is stale and taken over; on another host it cannot be checked, so the message says how to
remove it."""

import os
import socket
import time
from pathlib import Path

from project.errors import UserError

RUNNING_MARKER = ".running"
TEST_RECORD = "test_metrics.json"  # written into a run folder when its final test completes: the run finished


def writer_of(run: Path) -> str | None:
    """`pid N on HOST` of the live process writing `run`, or None (no marker, or a stale one)."""
    try:
        pid, host = (run / RUNNING_MARKER).read_text().split(maxsplit=1)
    except (OSError, ValueError):
        return None
    if host.strip() == socket.gethostname() and not process_alive(int(pid)):
        return None
    return f"pid {pid} on {host.strip()}"


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


RESUME_HINT = "wait for it to finish, or start a new run without --ckpt_path"


def claim_run(run: Path, take_over: bool = False, what_to_do: str = RESUME_HINT) -> None:
    """Mark `run` (a run folder, or a study's) as written by this process; refused if a live process already
    writes it, unless `take_over` (a requeued SLURM job, whose earlier start on another node left the marker)."""
    marker = run / RUNNING_MARKER
    content = f"{os.getpid()} {socket.gethostname()}\n"
    written = run / f".running.{os.getpid()}"  # the marker appears whole: a reader never sees it empty
    while True:
        try:
            written.write_text(content)
            try:
                os.link(written, marker)  # exclusive creation: of two processes, one wins
            finally:
                written.unlink(missing_ok=True)
            return
        except FileExistsError:
            if marker.is_dir():
                raise UserError(f"{str(marker)!r} is a folder, where this project keeps its run marker: move it "
                                f"away, or use another --output_dir") from None
            writer = writer_of(run)
            if writer is None or take_over:
                replace_stale(marker, take_over)  # retried by the loop's exclusive creation
                continue
            raise UserError(
                f"another process ({writer}) is training in {str(run)!r}: {what_to_do} (if no process writes there "
                f"any more, delete {str(marker)!r})"
            ) from None
        except OSError as error:
            raise UserError(f"cannot write into the run folder {str(run)!r} ({error.strerror}): give an --output_dir "
                            f"you can write in") from error


def replace_stale(marker: Path, take_over: bool) -> None:
    """Remove a stale marker, one process at a time: of several that found it stale, only the holder of the
    take-over lock removes it, after checking again, so two can never both take the run over."""
    lock = marker.with_name(f"{marker.name}.takeover")
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:  # another process is taking it over; a lock left by a killed one expires
        try:
            if time.time() - lock.stat().st_mtime > 30:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
        return
    try:
        if take_over or writer_of(marker.parent) is None:
            marker.unlink(missing_ok=True)
    finally:
        os.close(descriptor)
        lock.unlink(missing_ok=True)


def release_run(run: Path) -> None:
    """This process no longer writes `run` (its marker, if it is this process's, is removed)."""
    marker = run / RUNNING_MARKER
    try:
        if marker.read_text().split()[0] == str(os.getpid()):
            marker.unlink()
    except (OSError, IndexError):
        pass


def claim_new_run(experiment_dir: Path) -> tuple[int, list[Path]]:
    """Create the next `version_N` under `experiment_dir` (atomically: of two processes, each gets its own) and
    mark it as this process's; returns N and the folders created (the run folder first)."""
    created = [folder for folder in (experiment_dir, *experiment_dir.parents) if not folder.exists()]
    try:
        experiment_dir.mkdir(parents=True, exist_ok=True)
        versions = [int(p.name.removeprefix("version_")) for p in experiment_dir.glob("version_*")
                    if p.name.removeprefix("version_").isdigit()]
        version = max(versions, default=-1) + 1
        while True:
            try:
                (experiment_dir / f"version_{version}").mkdir()
                break
            except FileExistsError:  # another process took it between the listing and now
                version += 1
    except OSError as error:
        raise UserError(f"cannot create a run folder under {str(experiment_dir)!r} ({error.strerror}): give an "
                        f"--output_dir you can write in") from error
    run = experiment_dir / f"version_{version}"
    claim_run(run)
    return version, [run, *created]
