"""Print pip constraints pinning each dependency in pyproject.toml (and the extras named as arguments) to its floor.

`python .ci/floor_constraints.py dev onnx timm` prints `numpy==1.24.2`, ...: every requirement must have a `>=`.
A package listed twice (timm in dev and in timm) gets the higher floor, the one that can install both.
"""

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
lines = project["dependencies"] + [line for extra in sys.argv[1:] for line in project["optional-dependencies"][extra]]
floors: dict[str, Version] = {}
for line in lines:
    requirement = Requirement(line)
    floor = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    if not floor:
        sys.exit(f"{line!r} in pyproject.toml has no floor (>=): nothing to pin")
    name = canonicalize_name(requirement.name)  # constraints take no extras: jsonargparse, not jsonargparse[...]
    floors[name] = max(floors.get(name, floor[0]), floor[0])
for name, version in sorted(floors.items()):
    print(f"{name}=={version}")
