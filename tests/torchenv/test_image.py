"""The real thing: build cuda13 (pip installer, the host's CA, the stand-in base) on the Docker
engine, run the smoke suite in a container from it, and check what the image holds.

Engine tests: they skip without an engine and fail when CI is set (tests/conftest.py). The
stand-in base (`.ci/standin-base.sh`) replaces the registry's python image, which no machine here
can pull.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchenv import matrix
from torchenv.matrix import ROOT
from torchenv.smoke import SMOKE_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TARGET = matrix.get("cuda13")
STANDIN = os.environ.get("TORCHENV_STANDIN_BASE", "torchenv-standin/python:3.11-slim-bookworm")
CA = os.environ.get("TORCHENV_CA_CERT", "/etc/ssl/certs/ca-certificates.crt")
BUILD = [
    "--target",
    "cuda13",
    "--installer",
    "pip",
    "--base-image",
    STANDIN,
    "--allow-unpinned-base",
]
SECRET_MARK = "-----BEGIN CERTIFICATE-----"


def invoke(*args: str, timeout: float = 1200, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False, **kw,
    )  # fmt: skip


def docker(engine, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([engine.client, *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def image(docker_engine) -> str:
    if docker(docker_engine, "image", "inspect", STANDIN).returncode != 0:
        pytest.fail(f"stand-in base {STANDIN} missing: run .ci/standin-base.sh first")
    args = [*BUILD, *(["--ca-cert", CA] if Path(CA).exists() else [])]
    done = invoke("build", *args)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    return TARGET.image()


@pytest.fixture(scope="module")
def inspect(docker_engine, image) -> dict:
    return json.loads(docker(docker_engine, "image", "inspect", image).stdout)[0]


def test_smoke_suite_passes_every_non_gpu_check_in_the_container(image, tmp_path):
    done = invoke("smoke", "--target", "cuda13", "--reports", str(tmp_path), timeout=900)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    report = json.loads((tmp_path / "smoke-cuda13.json").read_text())
    statuses = {c["name"]: c for c in report["checks"]}
    assert [n for n, c in statuses.items() if c["status"] == "fail"] == []
    assert statuses["expect"]["status"] == "pass"  # cu130, torch 2.11.0, python 3.11 as promised
    assert statuses["cuda"]["status"] == "skip" and statuses["cuda"]["reason"]
    # The runtime flavor has no tensorboard: it says so. It has a compiler: compile passes.
    assert statuses["tensorboard"]["status"] == "skip"
    assert statuses["tensorboard"]["reason"].startswith("tensorboard is not installed")
    for name in ("mlp", "cnn", "vision", "audio", "dataloader", "ddp", "checkpoint", "amp"):
        assert statuses[name]["status"] == "pass", statuses[name]
    for name in ("compile", "quantize", "export"):
        assert statuses[name]["status"] == "pass", statuses[name]
    assert statuses["quantize"]["details"]["engine"] in ("x86", "fbgemm", "onednn", "qnnpack")
    assert set(statuses["dataloader"]["details"]["samples_per_s"]) == {"0", "2"}
    assert report["env"]["torch"]["variant"] == "cu130"
    assert (tmp_path / "smoke-cuda13.xml").read_text().count("<testcase") == len(report["checks"])


def test_image_runs_as_non_root_with_labels(inspect):
    config = inspect["Config"]
    assert config["User"] == "1000:1000"
    labels = config["Labels"]
    for key in ("source", "revision", "created"):
        assert labels[f"org.opencontainers.image.{key}"] not in ("", "unknown"), key
    assert labels["io.torchenv.target"] == "cuda13" and labels["io.torchenv.variant"] == "cu130"
    assert labels["io.torchenv.torch"] == "2.11.0" and labels["io.torchenv.cuda"] == "13.0"
    assert "NVIDIA_REQUIRE_CUDA=cuda>=13.0" in config["Env"]


def test_manifest_label_is_the_digest_of_the_baked_manifest(docker_engine, image, inspect):
    done = subprocess.run(
        [docker_engine.client, "run", "--rm", image, "cat", "/opt/torchenv/manifest.json"],
        capture_output=True, check=True,
    )  # fmt: skip
    label = inspect["Config"]["Labels"]["io.torchenv.manifest.sha256"]
    assert hashlib.sha256(done.stdout).hexdigest() == label


def test_env_report_is_baked_in(docker_engine, image):
    done = docker(docker_engine, "run", "--rm", image, "cat", "/opt/torchenv/env-report.json")
    report = json.loads(done.stdout)
    assert report["env"]["torch"]["version"].startswith("2.11.0")
    assert report["env"]["torch"]["variant"] == "cu130"


def test_ca_certificate_never_lands_in_the_image(docker_engine, image, inspect):
    history = docker(
        docker_engine, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image
    ).stdout
    assert SECRET_MARK not in history and "ca-certificates.crt" not in history
    assert not [e for e in inspect["Config"]["Env"] if e.startswith(("PIP_CERT", "SSL_CERT_FILE"))]
    done = docker(docker_engine, "run", "--rm", image, "bash", "-c",
                  "ls /run/secrets 2>/dev/null; grep -rl -- '-----BEGIN CERT' /opt/env /opt/torchenv "
                  "/tmp 2>/dev/null | grep -v -e certifi -e /test -e pip/_vendor || true")  # fmt: skip
    assert done.stdout.strip() == "", done.stdout


def test_user_can_pip_install_into_the_environment(docker_engine, image):
    done = docker(docker_engine, "run", "--rm", "--network=none", image, "bash", "-c",
                  "test -w /opt/env/lib/python3.11/site-packages && echo writable")  # fmt: skip
    assert done.stdout.strip() == "writable"


def test_smoke_on_an_image_not_built_says_how_to_build_it():
    done = invoke("smoke", "--target", "cuda13", "--image", "torchenv/never-built:0", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is not built yet: run `invoke build --target cuda13`" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_smoke_leaves_no_container(docker_engine, image, signum):
    import docker as sdk

    client = sdk.from_env()
    # As from a terminal: a process a script starts in the background inherits SIGINT ignored.
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "smoke", "--target", "cuda13", "--reports", ""],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    flt = {"label": f"{SMOKE_LABEL}=cuda13"}
    deadline = time.monotonic() + 60
    while not client.containers.list(filters=flt) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.containers.list(filters=flt), "the smoke container never started"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert client.containers.list(all=True, filters=flt) == []


def test_unreachable_index_fails_with_a_hint_and_leaves_nothing(docker_engine, image):
    tag = "torchenv-test/unreachable:0"
    done = invoke(
        "build", *BUILD, "--index-url", "http://127.0.0.1:9/simple", "--tag", tag, timeout=600
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot reach the package index" in done.stderr, done.stderr
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0


def test_wheelhouse_build_is_offline_and_leaves_no_links(docker_engine, image, tmp_path):
    """With --wheelhouse, pip uses only those wheels: a wheelhouse without torch must fail for
    want of it (never by reaching an index), and the staged links are gone afterwards."""
    wheel = tmp_path / "placeholder-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    tag = "torchenv-test/offline:0"
    done = invoke("build", *BUILD, "--wheelhouse", str(tmp_path), "--tag", tag, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "offline: installing from the wheelhouse only" in done.stdout
    assert "No matching distribution found" in done.stdout  # nothing was fetched from an index
    assert not (ROOT / "wheelhouse" / wheel.name).exists()
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0


def test_verify_matches_the_lock_and_catches_a_changed_pin(image):
    from torchenv import lock as locks
    from torchenv import verify

    assert verify.verify_image(TARGET, image=image) == []
    files, labels = verify.read_image(image)
    text = TARGET.pip_lock.read_text().replace("torch==2.11.0", "torch==2.12.0")
    changed = locks.parse_pip_lock(text, TARGET.pip_lock, TARGET.name)
    found = verify.verify_manifest(
        files[verify.MANIFEST_PATH], labels.get(verify.MANIFEST_LABEL), changed
    )
    assert any("torch" in line and "2.12.0" in line for line in found), found


def test_dev_flavor_passes_every_non_gpu_check_tensorboard_included(docker_engine, image, tmp_path):
    """The dev flavor adds tensorboard (and git) to the runtime image, which has the compiler:
    every check but cuda passes there, tensorboard serving its logs included."""
    args = [*BUILD, "--flavor", "dev", *(["--ca-cert", CA] if Path(CA).exists() else [])]
    done = invoke("build", *args)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    done = invoke("smoke", "--target", "cuda13", "--flavor", "dev", "--reports", str(tmp_path))
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    checks = json.loads((tmp_path / "smoke-cuda13.json").read_text())["checks"]
    not_passed = {c["name"]: c["reason"] for c in checks if c["status"] != "pass"}
    assert list(not_passed) == ["cuda"], not_passed
    served = next(c for c in checks if c["name"] == "tensorboard")["details"]["served"]
    assert served["runs"] == ["."] and served["command"][0] == "/opt/env/bin/tensorboard"
