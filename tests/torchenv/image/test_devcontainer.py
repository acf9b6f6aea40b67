"""The dev container configurations: current with targets.toml, and saying what users need.

No JSON schema for devcontainer.json is available offline (check-jsonschema vendors none), so
these tests check the keys the configurations rely on; test_devcontainer_cli.py has the Dev
Containers CLI read every file and bring one up.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.image import devcontainer, generate
from torchenv.matrix import DEFAULT_INSTALLER

TARGETS = matrix.load()
NAMES = list(TARGETS)
BUILD_ARGS = {"BASE_IMAGE", "INSTALLER", "USER_UID", "USER_GID"}


def committed(name: str) -> dict:
    return json.loads(devcontainer.config_path(name, REPO).read_text())


def test_committed_files_are_current():
    assert [p for p in generate.problems(REPO) if p.startswith(".devcontainer")] == []


@pytest.mark.parametrize("name", NAMES)
def test_render_is_json_with_a_trailing_newline_and_deterministic(name):
    text = devcontainer.render(TARGETS[name])
    assert text.endswith("}\n")
    assert json.loads(text) == devcontainer.config(TARGETS[name])
    assert devcontainer.render(TARGETS[name]) == text


def test_names_differ_and_say_target_accelerator_and_torch():
    names = {name: committed(name)["name"] for name in NAMES}
    assert len(set(names.values())) == len(names)
    for name, shown in names.items():
        target = TARGETS[name]
        assert shown.startswith(f"torchenv {name} (")
        assert f"torch {target.torch}" in shown
        assert (f"CUDA {target.cuda}" if target.is_cuda else "CPU") in shown


def test_display_name_examples():
    any_target = next(iter(TARGETS.values()))
    cuda = replace(any_target, name="cuda13", cuda="13.0", torch="2.11.0")
    cpu = replace(any_target, name="cpu", cuda=None, torch="2.11.0")
    assert devcontainer.display_name(cuda) == "torchenv cuda13 (CUDA 13.0, torch 2.11.0)"
    assert devcontainer.display_name(cpu) == "torchenv cpu (CPU, torch 2.11.0)"


@pytest.mark.parametrize("name", NAMES)
def test_builds_the_dev_stage_of_the_targets_dockerfile(name):
    path = devcontainer.config_path(name, REPO)
    build = committed(name)["build"]
    assert (path.parent / build["dockerfile"]).resolve() == TARGETS[name].dockerfile
    assert (path.parent / build["context"]).resolve() == REPO
    assert build["target"] == "dev"
    assert set(build["args"]) <= BUILD_ARGS
    assert build["args"]["BASE_IMAGE"] == TARGETS[name].base_ref
    assert build["args"]["INSTALLER"] == DEFAULT_INSTALLER == "uv"  # follows the default


@pytest.mark.parametrize("name", NAMES)
def test_the_dockerfile_has_the_dev_stage_and_the_build_args(name):
    dockerfile = TARGETS[name].dockerfile
    if not dockerfile.is_file():
        pytest.skip(f"{dockerfile.relative_to(REPO)} is not generated yet")
    text = dockerfile.read_text()
    assert re.search(r"^FROM\s+\S+\s+AS\s+dev\s*$", text, re.MULTILINE | re.IGNORECASE), (
        "no `FROM ... AS dev` stage"
    )
    for arg in committed(name)["build"]["args"]:
        assert re.search(rf"^ARG\s+{arg}\b", text, re.MULTILINE), f"no `ARG {arg}`"


@pytest.mark.parametrize("name", NAMES)
def test_files_in_the_workspace_belong_to_the_user_not_root(name):
    data = committed(name)
    assert data["remoteUser"] == "torch"
    assert data.get("containerUser", "torch") != "root"
    assert data["updateRemoteUserUID"] is True
    # Where the default workspace mount puts the folder: the two must agree.
    assert data["workspaceFolder"] == "/workspaces/${localWorkspaceFolderBasename}"
    assert "workspaceMount" not in data


def _shm_bytes(run_args: list[str]) -> int:
    units = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    for arg in run_args:
        match = re.fullmatch(r"--shm-size[= ](\d+)([bkmg]?)", arg.lower())
        if match:
            return int(match[1]) * units[match[2]]
    return 0


@pytest.mark.parametrize("name", NAMES)
def test_enough_shared_memory_for_dataloader_workers(name):
    run_args = committed(name)["runArgs"]
    assert "--ipc=host" in run_args or _shm_bytes(run_args) >= 2**30


def test_shm_size_parser():
    assert _shm_bytes(["--init", "--shm-size=2g"]) == 2 * 2**30
    assert _shm_bytes(["--shm-size=512m"]) == 512 * 2**20
    assert _shm_bytes(["--gpus", "all"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_one_config_serves_hosts_with_and_without_a_gpu(name):
    data = committed(name)
    # The tooling adds `--gpus all` when the host has the NVIDIA runtime; hard-coded, it would
    # stop the container from starting on a host without one.
    assert not any(arg.startswith("--gpus") for arg in data["runArgs"])
    if TARGETS[name].is_cuda:
        assert data["hostRequirements"]["gpu"] == "optional"
    else:
        assert "gpu" not in data.get("hostRequirements", {})


@pytest.mark.parametrize("name", NAMES)
def test_vscode_gets_python_and_jupyter_and_the_image_interpreter(name):
    vscode = committed(name)["customizations"]["vscode"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(vscode["extensions"])
    assert vscode["settings"]["python.defaultInterpreterPath"] == "/opt/env/bin/python"


@pytest.mark.parametrize("name", NAMES)
def test_post_create_runs_the_quick_smoke_suite_without_requiring_a_gpu(name):
    command = committed(name)["postCreateCommand"]
    assert command.startswith("python -m torchsmoke --quick")
    assert "--require-gpu" not in command


@pytest.mark.parametrize("name", NAMES)
def test_tensorboards_port_is_forwarded_and_labelled(name):
    data = committed(name)
    assert data["forwardPorts"] == [6006, 8888]
    assert data["portsAttributes"]["6006"]["label"] == "TensorBoard"
    assert data["portsAttributes"]["8888"]["label"] == "JupyterLab"


def _initialize(folder, path: str) -> subprocess.CompletedProcess:
    """The committed initializeCommand, run as the CLI runs it: /bin/sh -c, in the project."""
    command = committed(NAMES[0])["initializeCommand"]
    env = {"PATH": path, "LANG": "C.UTF-8"}
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=folder, env=env, capture_output=True, text=True
    )


def test_initialize_stages_the_kit_with_the_torchenv_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "torchenv"
    fake.write_text('#!/bin/sh\necho "$@" >> called\n')
    fake.chmod(0o755)
    result = _initialize(tmp_path, f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "called").read_text().splitlines()[-1] == "stage"


def test_initialize_without_torchenv_uses_a_staged_kit_and_says_so(tmp_path):
    (tmp_path / ".torchenv" / "kit").mkdir(parents=True)
    result = _initialize(tmp_path, "/usr/bin:/bin")
    assert result.returncode == 0
    assert result.stderr.strip() == (
        "torchenv cannot run here: building with the kit staged in .torchenv/ before"
    )


def test_initialize_without_torchenv_or_a_staged_kit_fails_in_one_line(tmp_path):
    result = _initialize(tmp_path, "/usr/bin:/bin")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "pip install torchenv" in result.stderr


def test_a_project_with_a_package_gets_it_editable_before_the_quick_suite():
    t = matrix.get("cuda13")
    assert devcontainer.config(t)["postCreateCommand"] == "python -m torchsmoke --quick"
    command = devcontainer.config(t, package=True)["postCreateCommand"]
    assert command == f"{devcontainer.EDITABLE_INSTALL} && python -m torchsmoke --quick"
    assert "--no-deps --no-build-isolation --editable ." in command  # offline first
