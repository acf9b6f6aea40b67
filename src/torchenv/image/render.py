"""Render the per-target files from the matrix: env files and Dockerfiles.

Every Dockerfile is the kit's Dockerfile.in (torchenv/kit/) with the target's values filled in, so building one
target exercises the logic of all of them. The template holds all of the Dockerfile's text; Python
gives it values (`values`) and says which `{{if FLAG}}` blocks apply, nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import torchbuild
from torchbuild import envfile
from torchenv.kit import TEMPLATE
from torchenv.matrix import DEFAULT_INSTALLER, Target

_FIELD = re.compile(r"\{\{([A-Z_]+)\}\}")
_IF = re.compile(r"\{\{if ([A-Z_]+)\}\}")

# The environment's torchenv.pth (install-env.sh copies it): site runs its import line at every
# interpreter start.
TORCHENV_PTH = Path(torchbuild.__file__).parent / "torchenv.pth"
STARTUP_PTH_LINE = next(
    line for line in TORCHENV_PTH.read_text().splitlines() if line.startswith("import ")
)


def env_file(t: Target) -> str:
    header = (
        f"Generated from targets.toml by `invoke generate`: edit targets.toml, not this file.\n"
        f"torchenv target {t.name}: {t.description}.\n"
        f"On a workstation: conda env create -f {t.env_file.relative_to(t.root)}"
    )
    pins = {"torch": t.torch, "torchvision": t.torchvision, "torchaudio": t.torchaudio}
    if t.torchcodec:
        pins["torchcodec"] = t.torchcodec
    return envfile.render(
        name=f"torchenv-{t.name}", python=t.python, index_url=t.index_url, pins=pins, header=header
    )


def label_value(text: str) -> str:
    """`text` as it can stand between a label's double quotes: no variable, no early end."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def values(t: Target) -> dict[str, str]:
    """What the template's {{KEY}} fields take for target `t` (matrix.parse has checked each)."""
    return {
        "TARGET": t.name,
        "BASE_REF": t.base_ref,
        "MICROMAMBA_REF": t.micromamba_ref,
        "DEFAULT_INSTALLER": DEFAULT_INSTALLER,
        "PYTHON": t.python,
        "CUDA": t.cuda or "",
        "CUDA_LABEL": t.cuda or "none",
        "MIN_DRIVER_LABEL": t.min_driver or "none",
        "TORCH": t.torch,
        "VARIANT": t.variant,
        "DESCRIPTION": label_value(t.description),
        "DEV_PACKAGES": " ".join(t.dev_packages),
    }


def fill(template: str, fields: dict[str, str], flags: dict[str, bool]) -> str:
    """The template with each {{KEY}} replaced by its value, and the lines between `{{if FLAG}}`
    and `{{end}}` (each alone on its line) kept only where the flag is set. A key or flag the
    template names but the caller does not give is a bug: KeyError."""
    out: list[str] = []
    keep: list[bool] = []
    for line in template.splitlines(keepends=True):
        opened = _IF.fullmatch(line.strip())
        if opened:
            keep.append(flags[opened.group(1)])
        elif line.strip() == "{{end}}":
            keep.pop()
        elif all(keep):
            out.append(_FIELD.sub(lambda m: fields[m.group(1)], line))
    if keep:
        raise ValueError("the template has an {{if}} without its {{end}}")
    return "".join(out)


def dockerfile(t: Target, package: bool | None = None) -> str:
    """The target's Dockerfile; `package`: whether the project's own package is its last layer
    (None: as the project's matrix says)."""
    if package is None:
        from torchenv.image import package as projectpkg

        package = projectpkg.enabled_in(t.root)
    return fill(TEMPLATE.read_text(), values(t), {"CUDA": t.is_cuda, "PACKAGE": package})
