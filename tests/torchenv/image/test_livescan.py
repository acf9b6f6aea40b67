"""The live scan: the exact locked-down `docker run` line, the driver run for real here, and the
one-line errors."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.errors import UserError
from torchenv.image import livescan

DOCKER = "/usr/bin/docker"


@pytest.mark.parametrize(
    ("config_user", "user"),
    [("1000:1000", "1000:1000"), ("torch", "torch"), ("", "65534:65534"), (None, "65534:65534"),
     ("0", "65534:65534"), ("root:root", "65534:65534"), ("0:0", "65534:65534")],
    ids=["numeric", "by name", "unset", "none", "uid 0", "root by name", "0:0"],
)  # fmt: skip
def test_scans_as_the_images_user_unless_that_is_root(config_user, user):
    assert livescan.scan_user(config_user) == user


def test_the_container_has_no_network_no_writes_no_privileges():
    argv = livescan.scan_command(DOCKER, "img:1", "1000:1000", "torchenv-verify-x", "cuda13")
    assert argv == [
        DOCKER, "run", "--rm", "--interactive", "--name", "torchenv-verify-x",
        "--network", "none", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--user", "1000:1000",
        "--env", "PYTHONDONTWRITEBYTECODE=1",
        "--label", "io.torchenv.managed=true", "--label", "io.torchenv.target=cuda13",
        "--label", "io.torchenv.verify=cuda13",
        "--entrypoint", "python", "img:1", "-",
    ]  # fmt: skip


def test_the_driver_hashes_an_environment_and_reads_files(tmp_path):
    """The program sent to the container, run here by a fresh venv's Python (stdlib only)."""
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "loose.py").write_text("x = 1\n")
    baked = tmp_path / "baked.json"
    baked.write_bytes(b'{"a": 1}\n')
    done = subprocess.run(
        [str(env / "bin" / "python"), "-"],
        input=livescan.driver((str(baked), str(tmp_path / "absent"))),
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    answer = livescan.parse(done.stdout)
    assert answer["files"][str(baked)] == "eyJhIjogMX0K"  # base64 of the file
    assert answer["files"][str(tmp_path / "absent")] is None
    location = site.relative_to(env).as_posix()
    assert list(answer["manifest"]["unowned"]) == [f"{location}/loose.py"]
    assert answer["manifest"]["format"] == "torchenv-manifest/1"


def scan_with(answer: str, code: int = 0) -> tuple[FakeRunner, livescan.Scan | Exception]:
    runner = FakeRunner(
        {
            (DOCKER, "run"): reply(answer, code, "" if code == 0 else "exec: python: not found"),
            (DOCKER, "container", "rm"): reply("", 1, "No such container"),
        }
    )
    try:
        return runner, livescan.scan(DOCKER, "img:1", "cuda13", ("/f",), {"User": ""}, runner)
    except UserError as exc:
        return runner, exc


def test_scan_parses_the_answer_and_always_removes_the_container():
    answer = {"manifest": {"distributions": []}, "files": {"/f": "aGk="}, "user": "65534:65534",
              "seconds": 1.5}  # fmt: skip
    runner, scan = scan_with("noise\n" + livescan.MARK + json.dumps(answer) + "\n")
    assert scan == livescan.Scan({"distributions": []}, {"/f": b"hi"}, "65534:65534", 1.5)
    run = next(c for c in runner.calls if c.args[1] == "run")
    assert run.input == livescan.driver(("/f",)) and "65534:65534" in run.args
    name = run.args[run.args.index("--name") + 1]
    assert runner.calls[-1].args == (DOCKER, "container", "rm", "--force", name)


def test_an_image_without_python_is_one_line():
    runner, error = scan_with("", 127)
    assert str(error) == (
        "cannot hash img:1's environment with its `python` (exec: python: not found): "
        "is Python 3.8+ on its PATH?"
    )
    assert runner.calls[-1].args[:4] == (DOCKER, "container", "rm", "--force")


def test_a_missing_image_says_build_or_pull():
    runner = FakeRunner({(DOCKER, "image", "inspect"): reply("", 1, "No such image")})
    with pytest.raises(
        UserError,
        match=r"^no image x:1 on this engine: build it \(invoke build\) or pull it \(docker pull x:1\) first$",
    ):
        livescan.image_config(DOCKER, "x:1", runner)


def test_the_driver_sends_the_hosts_manifest_code():
    source = Path(livescan.MANIFEST_SOURCE).read_text()
    assert repr(source) in livescan.driver(())
