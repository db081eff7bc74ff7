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


def shipped_or_given(location: str) -> str:
    """`location` as given, or, where no such file exists here, the shipped config it names (`configs/<name>` or
    `<name>`): `--config configs/resnet18_imagefolder.yaml` works from any folder, as the README says."""
    if Path(location).exists():
        return location
    shipped = config_dir() / location.removeprefix("configs/")
    return str(shipped) if shipped.is_file() else location


def with_shipped_configs(args: list[str]) -> list[str]:
    """`args` with each --config value resolved by `shipped_or_given`."""
    resolved = list(args)
    for index, arg in enumerate(resolved):
        if arg.startswith("--config="):
            resolved[index] = f"--config={shipped_or_given(arg.split('=', 1)[1])}"
        elif arg == "--config" and index + 1 < len(resolved):
            resolved[index + 1] = shipped_or_given(resolved[index + 1])
    return resolved
