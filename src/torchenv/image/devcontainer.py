"""Dev container configurations, one per target: `.devcontainer/<target>/devcontainer.json`.

VS Code (and the Dev Containers CLI) lists every folder under `.devcontainer/` as its own
configuration, so the targets appear side by side. Each builds the `dev` stage of that target's
Dockerfile: the runtime image (which has a C/C++ compiler) plus ipykernel, JupyterLab, TensorBoard
and git.

Choices, each for a problem users report (items 1, 3 and 12 of the project's users notes):
- Shared memory: `--shm-size` rather than `--ipc=host`. DataLoader workers pass batches through
  /dev/shm and die with "bus error" on Docker's 64 MB default; a sized tmpfs fixes that and keeps
  the container in its own IPC namespace. The size is a ceiling, not a reservation.
- GPUs: `hostRequirements.gpu = "optional"`, and no `--gpus all` in runArgs. The Dev Containers
  tooling adds `--gpus all` itself when the engine has the NVIDIA runtime, and leaves it out
  otherwise, so one configuration opens on hosts with and without a GPU. A hard-coded
  `--gpus all` would make the container fail to start on a host without the NVIDIA toolkit.
  Where detection misses a GPU (the `nvidia` runtime not registered with the engine), the
  CLI's `--gpu-availability all` or VS Code's `dev.containers.gpuAvailability` setting forces it.
- Files in the workspace: the image runs as the non-root user `torch`, and
  `updateRemoteUserUID` gives it the UID/GID of the user who opens the container on Linux, so
  files written to the bind-mounted workspace belong to that user. (For a root caller it changes
  nothing: UID 0 exists in every image.) /opt/env belongs to a group the user is a member of,
  so `pip install` keeps working after the UID change.
- TensorBoard: its port (6006) is forwarded and labelled, so `tensorboard --logdir runs` in the
  container opens at http://localhost:6006 on the host; VS Code forwards a port the container
  listens on at localhost, so no `--bind_all` is needed. JupyterLab's (8888) likewise: `jupyter
  lab` in the container's terminal prints its URL with the token it made.
"""

from __future__ import annotations

import json
from pathlib import Path

from torchenv.engine.containers import SHM_SIZE  # the same shared memory as `invoke smoke`
from torchenv.matrix import DEFAULT_INSTALLER, Target

DEVCONTAINER_DIR = ".devcontainer"
ENV_PREFIX = "/opt/env"
REMOTE_USER = "torch"
WORKSPACE_FOLDER = "/workspaces/${localWorkspaceFolderBasename}"
EXTENSIONS = ("ms-python.python", "ms-toolsai.jupyter")
# The smoke suite's quick mode; on a host without a GPU its cuda check skips (with the reason).
POST_CREATE_COMMAND = "python -m torchsmoke --quick"
# A project with a package of its own: installed editable from the workspace first (its
# dependencies are in the image's lock, hence --no-deps), so that `import` finds the code as edited:
# with the build backend the image holds (setuptools, offline), else in pip's isolated build.
EDITABLE_INSTALL = (
    "{ python -m pip install --quiet --no-deps --no-build-isolation --editable . 2>/dev/null"
    " || python -m pip install --quiet --no-deps --editable .; }"
)
# On the host, in the project's folder, before the build: the Dockerfile reads the kit's files
# from .torchenv/ (torchenv.image.context). VS Code runs this with its own PATH, which may not hold
# the venv torchenv was installed into (or finds one it cannot run): then a kit staged before (by
# any build) is used, with a warning, and where there is none the line says what to do.
INITIALIZE_COMMAND = (
    "if torchenv --help >/dev/null 2>&1; then torchenv stage; "
    "elif [ -d .torchenv/kit ]; then "
    "echo 'torchenv cannot run here: building with the kit staged in .torchenv/ before' >&2; "
    "else echo 'torchenv cannot run here and .torchenv/kit is not staged:"
    " pip install torchenv (or put its venv on PATH), then reopen the container' >&2; exit 1; fi"
)
TENSORBOARD_PORT = 6006  # TensorBoard's default
JUPYTER_PORT = 8888  # JupyterLab's default (`jupyter lab` in the container's terminal)


def config_path(name: str, root: Path) -> Path:
    return root / DEVCONTAINER_DIR / name / "devcontainer.json"


def display_name(target: Target) -> str:
    """What VS Code shows in its list, e.g. 'torchenv cuda13 (CUDA 13.0, torch 2.11.0)'."""
    accel = f"CUDA {target.cuda}" if target.is_cuda else "CPU"
    return f"torchenv {target.name} ({accel}, torch {target.torch})"


def config(target: Target, package: bool = False) -> dict[str, object]:
    """The devcontainer.json content for one target, as a dict (key order is the file's);
    `package`: the project's own package is installed editable when the container is made."""
    data: dict[str, object] = {
        "name": display_name(target),
        "build": {
            # Paths are relative to .devcontainer/<target>/.
            "dockerfile": str(Path("../..") / target.dockerfile.relative_to(target.root)),
            "context": "../..",
            "target": "dev",
            "args": {
                "BASE_IMAGE": target.base_ref,
                "INSTALLER": DEFAULT_INSTALLER,
            },
        },
        "runArgs": [f"--shm-size={SHM_SIZE}"],
        "forwardPorts": [TENSORBOARD_PORT, JUPYTER_PORT],
        "portsAttributes": {
            str(TENSORBOARD_PORT): {"label": "TensorBoard", "onAutoForward": "notify"},
            str(JUPYTER_PORT): {"label": "JupyterLab", "onAutoForward": "notify"},
        },
        "remoteUser": REMOTE_USER,
        "updateRemoteUserUID": True,
        "workspaceFolder": WORKSPACE_FOLDER,
        # tini as PID 1 reaps DataLoader workers orphaned by a killed training run.
        "init": True,
    }
    if target.is_cuda:
        data["hostRequirements"] = {"gpu": "optional"}
    data["customizations"] = {
        "vscode": {
            "extensions": list(EXTENSIONS),
            "settings": {
                "python.defaultInterpreterPath": f"{ENV_PREFIX}/bin/python",
                # The environment is already on PATH; activating it would look for conda.
                "python.terminal.activateEnvironment": False,
            },
        }
    }
    data["initializeCommand"] = INITIALIZE_COMMAND
    data["postCreateCommand"] = (
        f"{EDITABLE_INSTALL} && {POST_CREATE_COMMAND}" if package else POST_CREATE_COMMAND
    )
    return data


def render(target: Target, package: bool | None = None) -> str:
    """The JSON text of `.devcontainer/<target>/devcontainer.json` (valid JSON, newline-ended);
    `package` None: as the project's matrix says."""
    if package is None:
        from torchenv.image import package as projectpkg

        package = projectpkg.enabled_in(target.root)
    return json.dumps(config(target, package), indent=2) + "\n"
