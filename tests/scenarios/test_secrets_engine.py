"""Issue 20 on the real engine: a token in the git remote reaches no label, no layer history and no
output (items 1 and 4); a SIGTERM halfway through a build leaves no secret file, no staged wheel
and no build process behind (item 5). The unit tests of credentials, build and the hostile-input
test prove the same with fakes; these prove it where the engine, git and BuildKit really run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tests.support import REPO as ROOT

from images import BUILD, build_args, docker
from torchenv.image.context import WHEELHOUSE_DIR

pytestmark = [pytest.mark.engine, pytest.mark.slow]

SECRET = "S3CRETt0ken"
REMOTE = f"https://ci-token:{SECRET}@gitlab.example.invalid/o/r.git?private_token={SECRET}#x"
PUBLIC = "https://gitlab.example.invalid/o/r.git"


def invoke_in(root: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """`invoke` in a checkout of the kit, with that checkout's own torchenv."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=root, env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def clone_with_a_token(tmp_path) -> Path:
    """A clone of this checkout whose origin is a CI-style remote holding a token twice."""
    clone = tmp_path / "p"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", REMOTE], check=True)
    return clone


def test_a_token_in_the_git_remote_reaches_no_label_history_or_output(
    docker_engine, image, clone_with_a_token
):
    tag = "torchenv-test/secret-remote:0"
    dry = invoke_in(clone_with_a_token, "build", *build_args(), "--tag", tag, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert SECRET not in dry.stdout + dry.stderr
    assert f"SOURCE={PUBLIC} " in dry.stdout
    done = invoke_in(clone_with_a_token, "build", *build_args(), "--tag", tag)
    try:
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
        assert SECRET not in done.stdout + done.stderr
        inspected = docker(docker_engine, "image", "inspect", tag)
        assert inspected.returncode == 0 and SECRET not in inspected.stdout
        labels = json.loads(inspected.stdout)[0]["Config"]["Labels"]
        assert labels["org.opencontainers.image.source"] == PUBLIC
        history = docker(docker_engine, "history", "--no-trunc", tag)
        assert history.returncode == 0 and SECRET not in history.stdout
    finally:
        docker(docker_engine, "image", "rm", tag)


def test_a_token_in_the_index_url_query_is_never_printed_and_leaves_nothing(docker_engine, image):
    tag = "torchenv-test/secret-index:0"
    index = f"https://user:{SECRET}@127.0.0.1:9/simple?token={SECRET}"
    before = set(Path(tempfile.gettempdir()).glob("torchenv-secret-*"))
    done = invoke_in(ROOT, "build", *BUILD, "--index-url", index, "--tag", tag, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert set(Path(tempfile.gettempdir()).glob("torchenv-secret-*")) == before
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_halfway_through_a_build_leaves_no_secret_no_staged_wheel_no_build(
    docker_engine, image, tmp_path
):
    tag = "torchenv-test/sigterm:0"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "placeholder-1.0-py3-none-any.whl").write_bytes(b"")
    staged = ROOT / WHEELHOUSE_DIR / "placeholder-1.0-py3-none-any.whl"
    secrets_before = set(Path(tempfile.gettempdir()).glob("torchenv-secret-*"))

    def secret_dirs() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("torchenv-secret-*")) - secrets_before

    args = [*BUILD, "--installer", "pip", "--index-url", f"https://u:{SECRET}@127.0.0.1:9/simple",
            "--wheelhouse", str(wheels), "--tag", tag, "--no-cache"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "build", *args], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert _wait_for(lambda: staged.exists() and secret_dirs(), 120), "the build never started"
        time.sleep(1.0)  # BuildKit is running now
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out[-2000:], err[-2000:])
    assert "Traceback" not in err and SECRET not in out + err
    assert not staged.exists() and not staged.is_symlink()
    assert secret_dirs() == set()
    left = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", "a build process outlived the SIGTERM"
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0
