"""Every command in README.md and docs/*.md runs, and every link between them resolves.

Each ```bash block is run through bash with `python`, `pip` and the other programs replaced by recorders, so that
bash itself expands its variables (`D="..."` then `$D`), quotes, `$(...)` and line continuations; then each
recorded command is checked in this process, in a folder of its own:

- a block with `<!-- needs: ... -->` right before it (real data, a GPU, the network, a cluster): every
  `scripts/*.py` invocation parses its options (`--print_config`, or for a script without it, each option it names
  is one its `--help` lists);
- a block with `<!-- shows: an error -->`: each invocation fails as a user error does (exit 2, `error: ...`), with
  the lines the ```text block after it shows;
- any other block runs: `pretrain.py`, `finetune.py`, `evaluate.py`, `predict.py`, `export.py`, `report.py` and
  `transferability.py` for real on the embedded digits (training shrunk by tiny_settings.TINY_RUN, after the
  exact command has parsed); `study.py`, `tune.py` and the benchmarks, many trainings each, only parse. The install
  steps (`python -m venv`, `pip`, `. .venv/bin/activate`) and `python -m pytest` are what CI runs, not re-run here.
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_options import OPTIONS
from tiny_settings import REPOSITORY, TINY_CNN, TINY_RUN

import project.commands

DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!--\s*(needs|shows):\s*(.*?)\s*-->\n)?```bash\n(.*?)```", re.S)
SHOWN = re.compile(r"\n```text\n(.*?)```", re.S)  # what a `shows:` block's commands print, after the block
PRINT_CONFIG = {"pretrain", "finetune", "study", "tune"}  # jsonargparse CLIs; the others are argparse-style
RUN = {"pretrain", "finetune", "evaluate", "predict", "export", "report", "transferability"}
SHRINK = {"pretrain": [*TINY_RUN, TINY_CNN], "finetune": TINY_RUN}
ALREADY_RUN: set[tuple[str, ...]] = set()  # a command one block ran needs no second run in another (the budget)
STUBS = ("python", "pip", "tar", "sbatch", "torchrun", "tensorboard", "ruff")


@dataclass
class Block:
    document: Path
    line: int
    marker: str | None  # "needs: ..." or "shows: ..."
    text: str
    shown: list[str]  # for a `shows:` block, the lines of the first ```text block after it

    def __str__(self) -> str:
        return f"{self.document.relative_to(REPOSITORY)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in BLOCK.finditer(text):
            marker = f"{match.group(1)}: {match.group(2)}" if match.group(1) else None
            line = text.count("\n", 0, match.start(3))
            shown = SHOWN.search(text, match.end()) if match.group(1) == "shows" else None
            found.append(Block(document, line, marker, match.group(3), shown.group(1).splitlines() if shown else []))
    return found


def recorded_commands(block: Block, folder: Path) -> list[list[str]]:
    """The block's commands as bash would run them, each `[program, *arguments]`, variables expanded."""
    record = folder / ".commands"
    stubs = "".join(f"{name}() {{ printf '%s\\0' {name} \"$@\" >> \"$RECORD\"; printf '\\036\\0' >> \"$RECORD\"; }}\n"
                    for name in STUBS)
    script = stubs + block.text.replace(". .venv/bin/activate", ":")
    environment = {"PATH": os.environ["PATH"], "RECORD": str(record), "HOME": str(folder)}
    result = subprocess.run(["bash", "-c", script], cwd=folder, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, f"{block}: bash could not run the block: {result.stderr}"
    fields = record.read_bytes().decode().split("\0")[:-1] if record.exists() else []
    record.unlink(missing_ok=True)
    commands, current = [], []
    for field in fields:
        if field == "\036":
            commands.append(current)
            current = []
        else:
            current.append(field)
    return commands


def script_call(command: list[str]) -> tuple[str, list[str]] | None:
    """(`name`, arguments) for a command that runs scripts/<name>.py, directly or through sbatch or torchrun."""
    program, *arguments = command
    if program == "sbatch" and arguments[:1] == ["scripts/slurm_pretrain.sbatch"]:
        return "pretrain", arguments[1:]  # the batch script passes its arguments on to pretrain.py
    for index, argument in enumerate(arguments if program in ("python", "torchrun") else []):
        if argument.startswith("scripts/") and argument.endswith(".py"):
            return Path(argument).stem, arguments[index + 1:]
        if not argument.startswith("-") or argument in ("-m", "-c"):
            break
    return None


def call(name: str, arguments: list[str]) -> tuple[int, str, str]:
    """`python scripts/<name>.py ARGUMENTS` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [f"scripts/{name}.py", *arguments]
    status = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            getattr(project.commands, name)()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    return status, out.getvalue(), err.getvalue()


def without_missing_run_configs(arguments: list[str]) -> list[str]:
    """Drop a `--config lightning_logs/...` that an earlier command of the block (a sweep) would have written."""
    kept, skip = [], False
    for index, argument in enumerate(arguments):
        if skip:
            skip = False
            continue
        value = argument.partition("=")[2] if argument.startswith("--config=") else (
            arguments[index + 1] if argument == "--config" and index + 1 < len(arguments) else None)
        if value and value.startswith("lightning_logs/") and not Path(value).exists():
            skip = argument == "--config"
            continue
        kept.append(argument)
    return kept


def assert_parses(block: Block, name: str, arguments: list[str]) -> None:
    arguments = without_missing_run_configs(arguments)
    if name in PRINT_CONFIG:
        status, _, err = call(name, [*arguments, "--print_config"])
        assert status == 0, f"{block}: scripts/{name}.py {' '.join(arguments)} does not parse: {err[-2000:]}"
        return
    status, usage, err = call(name, ["--help"])
    assert status == 0, f"{block}: scripts/{name}.py --help: {err[-2000:]}"
    for option in (argument.split("=")[0] for argument in arguments if argument.startswith("--")):
        assert re.search(rf"(?<![\w.-]){re.escape(option)}(?![\w.-])", usage), (
            f"{block}: scripts/{name}.py has no option {option}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The README's main job, shrunk, in an empty folder: digits_pretrain and digits_finetune runs, plus a small
    image folder `my_images/` for the own-images guide, and another (`my_source_images/`) to pretrain on."""
    from conftest import write_image_folder

    folder = tmp_path_factory.mktemp("workspace")
    with contextlib.chdir(folder):
        for name in ("pretrain", "finetune"):
            status, _, err = call(name, SHRINK[name])
            assert status == 0, err[-2000:]
            ALREADY_RUN.add((name,))
        assert (folder / "lightning_logs" / "digits_finetune" / "version_0" / "test_metrics.json").is_file()
    write_image_folder(folder / "my_images", per_class=40)  # 10 to train, 10 to validate and some to test, per class
    write_image_folder(folder / "my_source_images", per_class=20, classes=("car", "ship", "truck"), seed=1)
    return folder


@pytest.mark.parametrize("block", blocks(), ids=str)
def test_every_command_block_runs_or_parses(block, workspace, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(workspace, folder)
    commands = recorded_commands(block, folder)
    assert commands or block.marker, f"{block}: a block with no command this test knows"
    errors = []
    with contextlib.chdir(folder):
        for command in commands:
            scripted = script_call(command)
            if scripted is None:
                if command[:2] == ["python", "-c"] and block.marker is None:
                    exec(command[2], {"__name__": "__main__"})  # the block's Python, as `python -c` would run it
                else:  # installing (python -m venv, pip), CI's test run (python -m pytest), tools (tar, tensorboard)
                    assert command[0] in STUBS, command
                continue
            name, arguments = scripted
            assert hasattr(project.commands, name), f"{block}: no script scripts/{name}.py"
            if block.marker and block.marker.startswith("shows:"):
                status, _, err = call(name, arguments)
                assert status == 2 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, (
                    f"{block}: expected a one-line error, got {status}: {err[-2000:]}")
                errors.append(err.strip())
                continue
            assert_parses(block, name, arguments)
            if block.marker or name not in RUN or (name, *arguments) in ALREADY_RUN:
                continue
            status, _, err = call(name, [*arguments, *SHRINK.get(name, [])])
            assert status == 0, f"{block}: {' '.join(command)} failed ({status}): {err[-3000:]}"
            ALREADY_RUN.add((name, *arguments))
    assert errors == block.shown, f"{block}: the errors shown after the block are not the ones the scripts print"


def test_the_readme_keeps_the_two_commands_ci_and_users_copy():
    readme = (REPOSITORY / "README.md").read_text()
    install = 'python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && '
    for command in ("python scripts/pretrain.py && python scripts/finetune.py", "python -m pytest -q"):
        assert f"```bash\n{install}{command}\n```" in readme


@pytest.mark.slow
def test_the_option_list_is_generated_from_the_scripts_as_they_are():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    generated = subprocess.run([sys.executable, str(REPOSITORY / "tests" / "docs_options.py"), "--check"],
                               env=environment, capture_output=True, text=True, timeout=300, check=True).stdout
    # Compared word by word: where the package lives changes how argparse wraps a default path.
    assert OPTIONS.read_text().split() == generated.split(), (
        "docs/options.md is stale: run `PYTHONPATH=. python tests/docs_options.py`")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation removed, spaces to '-'."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        name, count = anchor(heading), 1
        while name in found:
            name, count = f"{anchor(heading)}-{count}", count + 1
        found.add(name)
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPOSITORY)))
def test_every_relative_link_resolves_to_a_file_and_heading(document):
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert not broken, f"{document.name}: {broken}"


def test_the_configuration_guide_names_every_config_file():
    configs = REPOSITORY / "configs"
    guide = (REPOSITORY / "docs" / "configuration.md").read_text()
    missing = [str(path.relative_to(configs)) for path in sorted(configs.rglob("*.yaml"))
               if f"`{path.relative_to(configs)}`" not in guide]
    assert not missing, f"docs/configuration.md does not say what these are for: {missing}"


@pytest.mark.parametrize("guide", [path for path in DOCUMENTS[1:] if path.name not in ("options.md", "results.md")],
                         ids=lambda path: path.name)
def test_every_guide_starts_with_the_command_that_does_its_task(guide):
    assert "```bash" in "\n".join(guide.read_text().splitlines()[:12]), f"{guide.name}: no command near its top"


def test_the_readme_is_a_front_page():
    assert len((REPOSITORY / "README.md").read_text().splitlines()) <= 150
