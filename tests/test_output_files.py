"""Output files are complete or absent, and never written over a name another process took (audit D1, D2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_settings import SCRIPTS

from project.checkpoints.output_files import output_folder, partial_path, write_new_files
from project.errors import UserError


def test_a_stem_another_process_takes_meanwhile_is_passed_over_and_its_files_kept(tmp_path):
    def writers(stem: str):
        def first(path: Path) -> None:
            path.write_text("mine")
            if stem == "out":  # another process takes the stem while this one writes its first file
                (tmp_path / "out.json").write_text("theirs")
        return [first, lambda path: path.write_text("{}")]

    written = write_new_files(tmp_path, "out", (".txt", ".json"), writers)
    assert [path.name for path in written] == ["out_2.txt", "out_2.json"]
    assert (tmp_path / "out.json").read_text() == "theirs" and not (tmp_path / "out.txt").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.json", "out_2.json", "out_2.txt"]


def test_a_writer_that_fails_leaves_no_file_under_the_name(tmp_path):
    def broken(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        write_new_files(tmp_path, "out", (".json",), lambda stem: [broken])
    assert list(tmp_path.iterdir()) == []


def test_partial_files_of_killed_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.{dead.stdout.strip()}.partial.json"
    stale.write_text("{")
    live = partial_path(tmp_path / "other.json")  # this process's: a write in progress
    live.write_text("{")
    write_new_files(tmp_path, "out", (".json",), lambda stem: [lambda path: path.write_text("{}")])
    assert not stale.exists() and live.exists() and json.loads((tmp_path / "out.json").read_text()) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the bad-input suite drops the "
                    "capability for this case")
def test_a_read_only_output_folder_is_one_line_before_any_work(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(UserError, match="is not writable: give a folder you can write in"):
        output_folder(folder, tmp_path)


@pytest.mark.slow
def test_two_exports_into_one_folder_at_once_keep_both(pretrained_run, tmp_path):
    command = [sys.executable, str(SCRIPTS / "export.py"), "--ckpt_path", str(pretrained_run),
               "--output_dir", str(tmp_path / "export")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    written = sorted(line.split(": ", 1)[1] for out, _ in outputs for line in out.splitlines()
                     if line.startswith("written: "))
    assert len(written) == len(set(written)) == 6  # three files each, none written twice
    stems = {json.loads(Path(path).read_text())["files"]["torchscript"] for path in written if path.endswith(".json")}
    assert len(stems) == 2  # each JSON names its own export's files
