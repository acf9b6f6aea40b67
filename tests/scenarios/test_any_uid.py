"""Run as users run containers: the image's own user, an arbitrary UID (`--user 12345:12345`),
OpenShift's arbitrary UID with GID 0 (`--user 12345:0`), each also on a read-only root with only a
tmpfs /tmp; for the runtime image and the dev image (where `compile` runs).

Every non-GPU check must pass in every case, at once (no failure that a re-run in a fresh
interpreter had to rescue), and a probe of every user and cache lookup finds a name and a
writable place. The read-only arbitrary-UID cases run the full suite, the others `--quick` (CI
time); the image's own user on a writable root is test_image.py's full run. Docker's --tmpfs is
noexec, where inductor cannot load the kernels it compiles: there `compile` skips saying so, and
a second run with `--tmpfs /tmp:exec` proves it passes as that UID on the read-only root.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from torchenv import matrix
from torchsmoke.checks import NAMES

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TARGET = matrix.get("cuda13")
OWN, ARBITRARY, OPENSHIFT = "image-user", "12345:12345", "12345:0"

# Each user and cache lookup the issue names, then a file written where it points.
PROBE = r"""
import getpass, json, os, subprocess, sys
import torch.hub, triton.knobs
from torch._inductor.runtime.cache_dir_utils import cache_dir
pip = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True,
                     text=True, check=True).stdout.strip()
places = {"hub": torch.hub.get_dir(), "inductor": cache_dir(), "triton": triton.knobs.cache.dir,
          "pip": pip, "xdg": os.path.expanduser("~/.cache")}
for path in places.values():
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "probe"), "w") as handle:
        handle.write("ok")
print(json.dumps({"user": getpass.getuser(), "home": os.environ["HOME"], **places}))
"""


def cases() -> list:
    out = []
    for flavor in ("runtime", "dev"):
        for user in (OWN, ARBITRARY, OPENSHIFT):
            for read_only in (False, True):
                if user == OWN and not read_only:
                    continue  # test_image.py runs the full suite so
                full = read_only and user != OWN
                name = f"{flavor}-{user.replace(':', '.')}"
                name += "-read-only" if read_only else "-writable"
                out.append(pytest.param(flavor, user, read_only, full, id=name))
    return out


def run_command(
    image: str, user: str, read_only: bool, reports: Path, argv: list[str], tmp: str = "/tmp"
) -> list:
    command = ["run", "--rm", "--network=none", "--shm-size=2g"]
    if user != OWN:
        command += ["--user", user]
    if read_only:
        command += ["--read-only", "--tmpfs", tmp]
    return [*command, "--volume", f"{reports}:/reports", image, *argv]


def run(engine, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [engine.client, *run_command(*args, **kwargs)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(("flavor", "user", "read_only", "full"), cases())
def test_every_non_gpu_check_passes(
    request, docker_engine, flavor, user, read_only, full, tmp_path
):
    image = request.getfixturevalue("image" if flavor == "runtime" else "dev_image")
    reports = tmp_path / "reports"
    reports.mkdir()
    reports.chmod(0o777)  # whatever UID the container runs as writes its report here
    (reports / "probe.py").write_text(PROBE)
    suite = [
        "python",
        "-m",
        "torchsmoke",
        *TARGET.smoke_expectations(),
        "--json",
        "/reports/r.json",
    ]
    argv = ["bash", "-c", 'python /reports/probe.py > /reports/probe.json && exec "$@"', "run"]
    argv += [*suite, *([] if full else ["--quick"])]
    done = run(docker_engine, image, user, read_only, reports, argv)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-3000:])
    # Every non-GPU check passed at once: no failure, no re-run in a fresh interpreter.
    checks = json.loads((reports / "r.json").read_text())["checks"]
    assert [c["name"] for c in checks] == list(NAMES)
    skips = {"cuda"}  # no GPU here
    if not full or read_only:
        skips.add("compile")  # --quick skips it; a read-only root leaves only a noexec /tmp
    if flavor == "runtime":
        skips.add("tensorboard")  # only the dev flavor ships it
    assert {c["name"]: c["status"] for c in checks} == {
        c["name"]: "skip" if c["name"] in skips else "pass" for c in checks
    }
    assert [c["name"] for c in checks if "attempts" in c["details"]] == []
    if full and read_only:
        # Docker's --tmpfs is noexec, and inductor must load the kernels it compiles from a
        # writable folder: compile says so; with an exec /tmp it passes as this UID.
        compile_reason = next(c["reason"] for c in checks if c["name"] == "compile")
        assert "is mounted noexec" in compile_reason, compile_reason
        argv = ["python", "-m", "torchsmoke", "--only", "compile", "--require-compiler"]
        again = run(docker_engine, image, user, read_only, reports, argv, tmp="/tmp:exec")
        assert again.returncode == 0 and "PASS  compile" in again.stdout, again.stdout[-3000:]
    # Each user and cache lookup gave a name and a writable place.
    uid = "1000" if user == OWN else user.split(":")[0]
    name = "torch" if user == OWN else f"uid{uid}"
    probe = json.loads((reports / "probe.json").read_text())
    home = f"/tmp/torchenv-home-{uid}"
    assert (probe["user"], probe["home"]) == (name, home)
    assert probe["inductor"] == f"/tmp/torchinductor_{name}"
    assert probe["hub"] == f"{home}/.cache/torch/hub" and probe["triton"] == f"{home}/.triton/cache"
    assert probe["pip"] == f"{home}/.cache/pip" and probe["xdg"] == f"{home}/.cache"
