"""A conda environment file (`environment.yml` or `.yaml`) as the project's declaration.

Its `pip:` section is read as a requirements file's lines are (torchenv.project.requirements:
`-r`, `-e .`, options). Its conda packages are the image's business, not installed from here: the
torch family among them (`pytorch=1.11.0`, `torchvision`, `torchaudio`) is checked against the
target's pins like any requirement, and the rest is named in a note (list them under `pip:` to
have them in the images).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchenv.credentials import shown
from torchenv.errors import UserError
from torchenv.files import inside
from torchenv.project import requirements as reqfiles

NAMES = ("environment.yml", "environment.yaml")
# conda names of the torch family, as pip knows them
FAMILY = {"pytorch": "torch", "torch": "torch", "torchvision": "torchvision",
          "torchaudio": "torchaudio"}  # fmt: skip
_SPEC = re.compile(r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*(?P<spec>[^\s]*)?")
_NOT_PACKAGES = {"python", "pip", "setuptools", "wheel"}


@dataclass
class Environment:
    pip: reqfiles.Read = field(default_factory=reqfiles.Read)
    family: list[reqfiles.Line] = field(default_factory=list)  # checked, not installed
    notes: list[str] = field(default_factory=list)


def conda_specifier(spec: str) -> str:
    """A conda version spec as PEP 440: `=1.11.0` is 1.11.0.*, `==2.1` exact, `>=2,<3` as it is;
    a build string after a second `=` is dropped."""
    spec = spec.strip()
    if not spec:
        return ""
    if spec.startswith("=") and not spec.startswith("=="):
        version = spec[1:].split("=", 1)[0]
        return f"=={version}.*" if "*" not in version else f"=={version}"
    if spec.startswith("=="):
        return "==" + spec[2:].split("=", 1)[0]
    if re.match(r"^\d", spec):  # `pytorch 2.1.*` (a space, then a version)
        return f"=={spec.split('=', 1)[0]}"
    return spec


def read(root: Path, rel: str) -> Environment:
    """The environment file `rel`; its problems are collected, not raised."""
    import yaml

    found = Environment()
    try:
        text = inside(root, Path(rel), rel).read_text(encoding="utf-8", errors="replace")
        data = yaml.safe_load(text) or {}
    except UserError as exc:
        found.pip.problems.append(str(exc))
        return found
    except yaml.YAMLError as exc:
        found.pip.problems.append(f"{rel}: not valid YAML ({exc.__class__.__name__}); fix it")
        return found
    entries: list[Any] = data.get("dependencies", []) if isinstance(data, dict) else []
    skipped = []
    for index, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
        origin = f"{rel} dependencies #{index}"
        if isinstance(entry, dict) and isinstance(entry.get("pip"), list):
            for number, item in enumerate(entry["pip"], start=1):
                line = f"{rel} pip #{number}"
                reqfiles.read_line(
                    root, Path(rel).parent, line, str(item).strip(), found.pip, False
                )
        elif isinstance(entry, str):
            match = _SPEC.match(entry.strip())
            name = match["name"].lower() if match else entry
            if name in FAMILY and match:
                requirement = f"{FAMILY[name]}{conda_specifier(match['spec'] or '')}"
                found.family.append(reqfiles.Line(requirement, f"{origin} ({shown(entry)})"))
            elif name == "python" and match and match["spec"]:
                found.notes.append(
                    f"{origin}: {shown(entry)} is not read: the images have the target's Python "
                    "(targets.toml's python)"
                )
            elif name not in _NOT_PACKAGES and not name.startswith(("cuda", "pytorch-")):
                skipped.append(name)
    if skipped:
        found.notes.append(
            f"{rel}: conda packages {', '.join(skipped)} are not installed in the images (they "
            "take pip packages): list them under pip: to have them"
        )
    return found
