"""Render the per-target files from the matrix: env files and Dockerfiles.

Every Dockerfile is docker/Dockerfile.in with the target's values filled in, so building one
target exercises the logic of all of them.
"""

from __future__ import annotations

import re

from torchbuild import envfile
from torchenv.matrix import DEFAULT_INSTALLER, ROOT, Target

TEMPLATE = ROOT / "docker" / "Dockerfile.in"
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)(?::([a-z-]+))?(?::([a-z-]+))?\}\}")

# Context paths every install step reads (bind mounts: nothing of them lands in a layer).
_CONTEXT_MOUNTS = (
    ("envs", "/tmp/ctx/envs"),
    ("wheelhouse", "/tmp/ctx/wheelhouse"),
    ("src/torchbuild", "/tmp/ctx/torchbuild"),
    ("docker/install-env.sh", "/tmp/ctx/install-env.sh"),
)
_SHARED_MOUNTS = (
    "type=secret,id=ca_cert,mode=0444",
    "type=secret,id=index_url,mode=0444",
    "type=cache,id=torchenv-pip,target=/tmp/pip-cache,mode=0777,sharing=locked",
)
_MICROMAMBA_MOUNTS = (
    "type=bind,from=micromamba,source=/bin/micromamba,target=/usr/local/bin/micromamba",
    "type=cache,id=torchenv-mamba,target=/tmp/mamba-root,mode=0777,sharing=locked",
)
_UV_MOUNTS = (
    "type=bind,from=uv,source=/opt/uv/bin/uv,target=/usr/local/bin/uv",
    "type=cache,id=torchenv-uv,target=/tmp/uv-cache,mode=0777,sharing=locked",
)
# The environment's torchenv.pth (install-env.sh copies it): site runs its import line at every
# interpreter start.
TORCHENV_PTH = ROOT / "src" / "torchbuild" / "torchenv.pth"
STARTUP_PTH_LINE = next(
    line for line in TORCHENV_PTH.read_text().splitlines() if line.startswith("import ")
)


def env_file(t: Target) -> str:
    header = (
        f"Generated from targets.toml by `invoke generate`: edit targets.toml, not this file.\n"
        f"torchenv target {t.name}: {t.description}.\n"
        f"On a workstation: conda env create -f envs/{t.name}.yml"
    )
    pins = {"torch": t.torch, "torchvision": t.torchvision, "torchaudio": t.torchaudio}
    return envfile.render(
        name=f"torchenv-{t.name}", python=t.python, index_url=t.index_url, pins=pins, header=header
    )


def _install_run(installer: str, args: str) -> str:
    mounts = [f"type=bind,source={src},target={dst}" for src, dst in _CONTEXT_MOUNTS]
    mounts += _SHARED_MOUNTS
    if installer == "conda":
        mounts += _MICROMAMBA_MOUNTS
    if installer == "uv":
        mounts += _UV_MOUNTS
    lines = [f"RUN --mount={mounts[0]}"] + [f"    --mount={m}" for m in mounts[1:]]
    lines += [
        "    PIP_CACHE_DIR=/tmp/pip-cache SOURCE_DATE_EPOCH=0",
        f"    bash /tmp/ctx/install-env.sh {args}",
    ]
    return " \\\n".join(lines)


def _install(t: Target, installer: str) -> str:
    return "\n".join(
        [
            "# A mirror of the target's pip index, and a conda channel alias; empty: the defaults.",
            'ARG TORCHENV_INDEX_URL=""',
            'ARG CONDA_CHANNEL_ALIAS=""',
            *([f"ARG PYTHON_VERSION={t.python}"] if installer == "conda" else []),
            "ARG USER_UID=1000",
            "ARG USER_GID=1000",
            "# Sources are bind-mounted, the CA is a secret the user can read, caches are shared",
            "# between builds, SOURCE_DATE_EPOCH makes the .pyc files reproducible; the script",
            "# works as the image's user.",
            _install_run(installer, f"{installer} {t.name}"),
        ]
    )


def _venv() -> str:
    """The venv step: it reads only the script, so the lock and the sources never invalidate it."""
    return "\n".join(
        [
            "ARG USER_UID=1000",
            "ARG USER_GID=1000",
            "RUN --mount=type=bind,source=docker/install-env.sh,target=/tmp/ctx/install-env.sh \\",
            "    SOURCE_DATE_EPOCH=0 bash /tmp/ctx/install-env.sh venv",
        ]
    )


def _finish(t: Target, parent: str, stage: str) -> str:
    """The last layers of a final stage: the smoke package, the env report, labels."""
    title = f"torchenv {t.name}" + ("" if stage == "runtime" else f" ({stage})")
    labels = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": t.description,
        "org.opencontainers.image.source": "${SOURCE}",
        "org.opencontainers.image.revision": "${REVISION}",
        "org.opencontainers.image.created": "${CREATED}",
        "io.torchenv.target": t.name,
        "io.torchenv.flavor": stage,
        "io.torchenv.torch": t.torch,
        "io.torchenv.variant": t.variant,
        "io.torchenv.cuda": t.cuda or "none",
        "io.torchenv.min-driver": t.min_driver or "none",
    }
    label_lines = " \\\n".join(f'    {key}="{value}"' for key, value in labels.items())
    return "\n".join(
        [
            "",
            f"FROM {parent} AS {stage}",
            "ARG USER_UID=1000",
            "ARG USER_GID=1000",
            "USER ${USER_UID}:${USER_GID}",
            "# The environment report, baked in at build time; it reads envinfo.py alone, so",
            "# editing the rest of the smoke package does not redo it.",
            "RUN --mount=type=bind,source=src/torchsmoke/envinfo.py,target=/tmp/ctx/envinfo.py \\",
            "    python /tmp/ctx/envinfo.py --json /opt/torchenv/env-report.json",
            "# The smoke package changes most often: it comes last (with the stdlib helpers it uses).",
            "COPY src/torchbuild /opt/torchenv/lib/torchbuild",
            "COPY src/torchsmoke /opt/torchenv/lib/torchsmoke",
            "# Declared late so that their values never invalidate the layers above.",
            "ARG SOURCE=unknown",
            "ARG REVISION=unknown",
            "ARG CREATED=unknown",
            f"LABEL \\\n{label_lines}",
            "WORKDIR /workspace",
            'CMD ["python", "-m", "torchsmoke"]',
        ]
    )


def dockerfile(t: Target) -> str:
    nvidia = {}
    if t.is_cuda:
        nvidia = {
            "NVIDIA_VISIBLE_DEVICES": "all",
            "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
            "NVIDIA_REQUIRE_CUDA": f'"{t.nvidia_require_cuda}"',
        }
    values = {
        "TARGET": t.name,
        "BASE_REF": t.base_ref,
        "MICROMAMBA_REF": t.micromamba_ref,
        "DEFAULT_INSTALLER": DEFAULT_INSTALLER,
        "NVIDIA_ENV": "".join(f" \\\n    {k}={v}" for k, v in nvidia.items()),
        # conda's __cuda virtual package: lets a machine without a GPU solve for CUDA builds.
        "CONDA_OVERRIDE_ENV": f" \\\n    CONDA_OVERRIDE_CUDA={t.cuda}" if t.cuda else "",
        "VENV": _venv(),
        "EXTRAS": _install_run("pip", f"extras {t.name} {' '.join(t.dev_packages)}"),
    }

    def fill(match: re.Match[str]) -> str:
        key, arg1, arg2 = match.groups()
        if key == "INSTALL":
            return _install(t, arg1)
        if key == "FINISH":
            return _finish(t, arg1, arg2)
        return values[key]

    return _PLACEHOLDER.sub(fill, TEMPLATE.read_text())
