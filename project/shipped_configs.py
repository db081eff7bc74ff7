"""The YAML configs that ship with the project (the repository's configs/ folder, installed as package data)."""

from importlib.resources import files
from pathlib import Path

from project.errors import UserError


def config_dir() -> Path:
    return Path(str(files("project.configs")))


def config_path(name: str) -> Path:
    """A shipped config by file name (e.g. `digits_finetune.yaml`, `strategy/lp_ft.yaml`)."""
    path = config_dir() / name
    if not path.is_file():
        raise UserError(f"no config {name!r} ships with the project: see {config_dir()}")
    return path
