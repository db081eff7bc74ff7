"""The installed package holds every subpackage and every config (the scripts find them wherever it is installed)."""

import tomllib
from pathlib import Path

from tiny_settings import REPOSITORY

from project.shipped_configs import config_dir


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
