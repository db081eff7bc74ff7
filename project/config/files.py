"""The --config files of a run, checked before LightningCLI reads them: YAML that jsonargparse would take in a way
the user did not mean (a repeated key, where the last silently wins), or that would fail later with a traceback
(a section that is a list or a number instead of a mapping), is a one-line error naming the file."""

import json
from pathlib import Path

import yaml

from project.errors import UserError

SECTIONS = ("trainer", "model", "data")  # the sections that are constructor arguments: each must be a mapping
RENAMED_KEYS = {  # keys of earlier versions' configs: what replaced them
    "objective": "pretraining's objective is now its model class: write `model:` with `class_path: "
                 "project.models.SimCLRPretraining` and the model's settings under `init_args:`, as "
                 "configs/cifar10_simclr.yaml does",
}


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (YAML 1.2 forbids it)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice (keep one: the last would silently win)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def config_paths(args: list[str]) -> list[Path]:
    """The files of every --config option in `args`."""
    paths = []
    for index, arg in enumerate(args):
        if arg.startswith("--config="):
            paths.append(Path(arg.split("=", 1)[1]))
        elif arg == "--config" and index + 1 < len(args):
            paths.append(Path(args[index + 1]))
    return paths


def check_config_files(args: list[str]) -> None:
    """Each --config file is one YAML mapping without repeated keys, its sections mappings (or empty)."""
    for path in config_paths(args):
        if not path.is_file():
            continue  # the parser names a missing file
        try:
            content = yaml.load(path.read_text(), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise UserError(f"--config {str(path)!r} is not valid YAML ({' '.join(str(error).split())})") from error
        if content is None:
            raise UserError(f"--config {str(path)!r} is empty: give a config with settings, or leave --config out")
        if not isinstance(content, dict):
            raise UserError(f"--config {str(path)!r} holds {kind(content)}, not settings: write "
                            f"`section: {{setting: value}}` mappings (see configs/)")
        for key in RENAMED_KEYS.keys() & content.keys():
            raise UserError(f"--config {str(path)!r}: `{key}:` is a setting of an earlier version; {RENAMED_KEYS[key]}")
        for section in SECTIONS:
            if content.get(section) is not None and not isinstance(content[section], dict):
                raise UserError(f"--config {str(path)!r}: `{section}:` holds {kind(content[section])}, not "
                                f"settings: write `{section}:` followed by indented `setting: value` lines")


def kind(value: object) -> str:
    """What a YAML value is, in words."""
    if isinstance(value, bool):
        return "true/false"
    return {list: "a list", int: "a number", float: "a number", str: "text"}.get(type(value), type(value).__name__)


def as_overrides(values: dict[str, object]) -> list[str]:
    """Settings as command-line overrides, `{"model.lr": 0.01}` -> `--model.lr=0.01` (JSON, which YAML reads; a
    string as it is): how the API and a sweep hand their values to a run's parser."""
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]
