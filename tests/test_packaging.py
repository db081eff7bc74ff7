"""The installed package holds every subpackage and every config (the scripts find them wherever it is installed), its
commands run without a checkout, and its declared dependencies and floors are the ones the code needs."""

import ast
import importlib
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from tiny_settings import REPOSITORY, SCRIPTS, TINY_CNN, TINY_RUN

from project.config.shipped import config_dir

PROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
COMMANDS = PROJECT["scripts"]  # {"ltl-pretrain": "project.commands:pretrain", ...}
# Imported by the code, installed by a declared dependency of its own: safetensors (timm's weight files) by timm.
INSTALLED_BY = {"safetensors": "timm"}


def declared() -> dict[str, list[Requirement]]:
    """Each distribution's requirements in [project] dependencies and every optional extra, by canonical name."""
    lines = PROJECT["dependencies"] + [line for extra in PROJECT["optional-dependencies"].values() for line in extra]
    found: dict[str, list[Requirement]] = {}
    for line in lines:
        requirement = Requirement(line)
        found.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return found


def floor(name: str) -> Version:
    """The lowest `>=` declared for `name` (in the dependencies or any extra)."""
    return min(Version(spec.version) for requirement in declared()[name] for spec in requirement.specifier
               if spec.operator == ">=")


def test_every_python_package_and_the_configs_are_listed_for_installation():
    listed = set(tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(REPOSITORY).parts) for path in (REPOSITORY / "project").rglob("__init__.py")
    }
    assert listed == found | {"project.configs"}


def test_the_configs_are_found_through_the_package_not_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere
    shipped = {path.relative_to(config_dir()) for path in config_dir().rglob("*.yaml")}
    assert shipped == {path.relative_to(REPOSITORY / "configs") for path in (REPOSITORY / "configs").rglob("*.yaml")}
    assert Path("digits_pretrain.yaml") in shipped and Path("strategy/lp_ft.yaml") in shipped


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_a_function_whose_help_exits_0_under_its_own_name(command, monkeypatch, capsys):
    module, function = COMMANDS[command].split(":")
    entry = getattr(importlib.import_module(module), function)
    assert callable(entry)
    monkeypatch.setattr(sys, "argv", [command, "--help"])  # what the installed console script sets, then entry()
    with pytest.raises(SystemExit) as exit_:
        entry()
    assert exit_.value.code in (0, None)
    assert f"usage: {command}" in capsys.readouterr().out


def test_each_script_calls_the_function_of_its_command_and_nothing_else():
    functions = {target.split(":")[1] for target in COMMANDS.values()}
    assert {path.stem for path in SCRIPTS.glob("*.py")} == functions  # a new script gets a command too
    for function in functions:
        code = ast.parse((SCRIPTS / f"{function}.py").read_text())
        imports = [node for node in code.body if isinstance(node, ast.Import | ast.ImportFrom)]
        assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [
            ("project.commands", [function])]
        calls = [node for node in ast.walk(code) if isinstance(node, ast.Call)]
        assert [ast.unparse(call) for call in calls] == [f"{function}()"]


def test_lightning_is_declared_from_2_6_where_fit_or_test_passes_weights_only():
    calls = [node for path in (REPOSITORY / "project").rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("fit", "test") and any(keyword.arg == "weights_only" for keyword in node.keywords)]
    assert calls  # project/training/run.py's trainer.fit and trainer.test
    assert floor("lightning") >= Version("2.6")  # Lightning 2.5.6 has no weights_only


def third_party_imports() -> set[str]:
    """The top-level names that project/ and scripts/ import, less the standard library's and the project's own."""
    names = set()
    for path in [*(REPOSITORY / "project").rglob("*.py"), *SCRIPTS.glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"project"}


def test_every_third_party_import_is_a_declared_dependency_or_extra():
    imported = third_party_imports()
    assert {"torch", "lightning", "yaml", "sklearn", "PIL", "timm"} <= imported  # the walk sees what it should
    distributions = packages_distributions()  # yaml -> PyYAML, sklearn -> scikit-learn, ...
    undeclared = []
    for module in sorted(imported):
        names = {canonicalize_name(name) for name in distributions.get(module, [module])}
        covered = {name for name in names if name in declared() or INSTALLED_BY.get(name) in declared()}
        if not covered:
            undeclared.append(f"{module} (from {', '.join(sorted(names))})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    for name, by in INSTALLED_BY.items():  # the exception holds only while the declared one requires it
        assert name in {canonicalize_name(Requirement(line).name) for line in requires(by)}

def test_every_requirement_declares_a_floor_for_the_floors_job():
    without = [str(requirement) for requirements in declared().values() for requirement in requirements
               if not any(spec.operator == ">=" for spec in requirement.specifier)]
    assert not without, f".ci/floors pins each requirement to its `>=`: none in {without}"


@pytest.mark.slow
def test_an_installed_wheel_runs_its_commands_from_a_folder_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy, so that building writes nothing into the checkout
    for name in ("project", "configs"):
        shutil.copytree(REPOSITORY / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", source], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", *(tmp_path / "wheel").glob("*.whl")],
                   check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}  # before the checkout's editable install

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=elsewhere, env=environment, capture_output=True, text=True, timeout=300)

    where = run(sys.executable, "-c", "import project.commands; print(project.commands.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "site")
    trained = run(str(tmp_path / "site" / "bin" / "ltl-pretrain"), *TINY_RUN, TINY_CNN)  # the shipped default config
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (elsewhere / "lightning_logs" / "digits_pretrain" / "version_0" / "config.yaml").is_file()
    helped = run(str(tmp_path / "site" / "bin" / "ltl-study"), "--help")
    assert helped.returncode == 0 and "usage: ltl-study" in helped.stdout
