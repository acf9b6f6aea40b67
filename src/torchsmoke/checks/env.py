"""`env`: the environment report (torchsmoke.envinfo); its headline figures are the details,
the GPU architectures torch has kernels for among them (readable without a GPU), and the torch
family's constraint that keeps pip and uv from replacing torch (torchbuild.constraints).

Where PIP_CONSTRAINT names a file, the check fails when it cannot be read or when its torch pin
is not the torch that imports (in an image, also when it pins no torch): then something replaced
torch behind the image's back."""

from __future__ import annotations

import os
from pathlib import Path

from torchbuild import constraints
from torchsmoke.core import Context, Outcome, check, passed, require


def torch_constraint(installed: str, environ: dict[str, str] | None = None) -> str | None:
    """'torch==V ... (FILE)' for the details; None where no constraint is set. Fails the check
    when the file is unreadable or pins another torch than `installed`."""
    environ = dict(os.environ) if environ is None else environ
    path = environ.get("PIP_CONSTRAINT", "").strip()
    if not path:
        return None
    try:
        pins = constraints.parse(Path(path).read_text().splitlines())
    except OSError as exc:
        require(False, f"PIP_CONSTRAINT names {path}, which cannot be read ({exc.strerror})")
    pinned = pins.get("torch")
    # Outside a torchenv image (no TORCHENV_TARGET) a user's own constraints need not pin torch.
    # `torch==2.14.1` holds 2.14.1+cu130 too (a local label), as in pip.
    same = pinned is not None and (installed == pinned or installed.startswith(pinned + "+"))
    require(
        same or (pinned is None and not environ.get("TORCHENV_TARGET")),
        f"{path} pins torch {pinned or '(nothing)'}, but torch {installed} is installed: "
        "the environment was changed after the build; rebuild the image",
    )
    listed = " ".join(f"{name}=={version}" for name, version in pins.items())
    return f"{listed or 'no == pins'} ({path})"


@check("env")
def env(ctx: Context) -> Outcome:
    report = ctx.env
    return passed(
        {
            "python": report.python.version,
            "torch": report.torch.version,
            "variant": report.torch.variant,
            "cuda": report.torch.cuda,
            "arch_list": report.torch.arch_list,
            "gpus": len(report.gpus),
            "shm_bytes": report.shm_bytes,
            "torch_constraint": torch_constraint(report.torch.version),
        }
    )
