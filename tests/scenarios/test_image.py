"""The real thing: build cuda13 (the default installer, uv; the host's CA; the stand-in base) on
the Docker engine, run the smoke suite in a container from it, and check what the image holds.
The pip installer is proved end to end too, at the cost of one more environment install: its
image must hold the lock, file for file the same as the uv image, and train.

Engine tests: they skip without an engine and fail when CI is set (tests/conftest.py). The
stand-in base (`.ci/standin-base.sh`) replaces the registry's python image, which no machine here
can pull.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support import REPO as ROOT
from tests.support import manifests as baked

from images import BUILD, CA, docker, invoke
from torchenv import matrix
from torchenv.kit import UV_REQUIREMENTS
from torchenv.run.shell import SHELL_LABEL
from torchenv.run.smoke import SMOKE_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TARGET = matrix.get("cuda13")
PIP_TAG = "torchenv-test/cuda13-pip:0"
SECRET_MARK = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class PipBuild:
    tag: str
    output: str  # what `invoke build` printed
    token: str  # the token in the index URL it was given


@pytest.fixture(scope="module")
def pip_build(docker_engine, image):
    """The same target with the pip installer, under a test tag; removed afterwards. It is built
    through an index URL with a user and a token, without the build cache, so that pip really runs
    with the token (a step from an earlier run's cache never saw it): one pip install proves both
    the pip image and what becomes of the credentials."""
    token = f"tok-{os.getpid()}-{time.time_ns()}"
    args = [*BUILD, "--installer", "pip", "--tag", PIP_TAG, "--no-cache"]
    args += ["--index-url", default_index_with("torchenv-user", token)]
    try:
        done = invoke("build", *args, *(["--ca-cert", CA] if Path(CA).exists() else []))
        assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
        yield PipBuild(PIP_TAG, done.stdout + done.stderr, token)
    finally:
        docker(docker_engine, "image", "rm", "--force", PIP_TAG)


@pytest.fixture(scope="module")
def pip_image(pip_build) -> str:
    return pip_build.tag


@pytest.fixture(scope="module")
def inspect(docker_engine, image) -> dict:
    return json.loads(docker(docker_engine, "image", "inspect", image).stdout)[0]


def test_smoke_suite_passes_every_non_gpu_check_in_the_container(image, tmp_path):
    done = invoke("smoke", "--target", "cuda13", "--reports", str(tmp_path), timeout=900)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    # the host paths of the reports and the image tested; never the container's paths
    assert (
        f"reports of {image}: {tmp_path}/smoke-cuda13.json, {tmp_path}/smoke-cuda13.xml"
        in done.stdout
    )
    assert (
        f"testing {image} (sha256:" in done.stdout and "/tmp/torchsmoke-report" not in done.stdout
    )
    report = json.loads((tmp_path / "smoke-cuda13.json").read_text())
    statuses = {c["name"]: c for c in report["checks"]}
    assert [n for n, c in statuses.items() if c["status"] == "fail"] == []
    assert statuses["expect"]["status"] == "pass"  # cu130, torch 2.14.1, python 3.11 as promised
    assert statuses["cuda"]["status"] == "skip" and statuses["cuda"]["reason"]
    # The runtime flavor has no tensorboard: it says so. It has a compiler: compile passes.
    assert statuses["tensorboard"]["status"] == "skip"
    assert statuses["tensorboard"]["reason"].startswith("tensorboard is not installed")
    for name in ("mlp", "cnn", "vision", "audio", "dataloader", "ddp", "checkpoint", "amp"):
        assert statuses[name]["status"] == "pass", statuses[name]
    for name in ("compile", "quantize", "export"):
        assert statuses[name]["status"] == "pass", statuses[name]
    # Data in (issue 19): files made in the check round-trip through torchvision, PIL and
    # torchaudio (TorchCodec over the base's FFmpeg); every CUDA library loads without a GPU.
    for name in ("image_io", "audio_io", "cuda_libs"):
        assert statuses[name]["status"] == "pass", statuses[name]
    audio = statuses["audio_io"]["details"]
    assert "torchcodec" in json.dumps(audio) and "flac" in json.dumps(audio).lower()
    assert set(statuses["image_io"]["details"]["formats"]) == {"jpeg", "png", "webp"}
    libs = statuses["cuda_libs"]["details"]
    assert libs["loaded"] > 30 and "libcufile_rdma.so.1" in libs["optional"]
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
    assert labels["io.torchenv.torch"] == "2.14.1" and labels["io.torchenv.cuda"] == "13.0"
    # measured in the image at build time (its env report), what `invoke smoke` checks GPUs by
    assert labels["io.torchenv.cuda-archs"] == "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"
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
    assert report["env"]["torch"]["version"].startswith(TARGET.torch)
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_shell_leaves_no_container(docker_engine, image, signum):
    """The signal goes to the invoke process alone (a CI runner cancelling the job): neither the
    docker client nor the container gets it, so the kit must remove the container itself."""
    import docker as sdk

    client = sdk.from_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "shell", "--target", "cuda13", "--flavor", "runtime"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write("sleep 120\n")  # piped: the shell reads it; the pipe stays open
    proc.stdin.flush()
    flt = {"label": f"{SHELL_LABEL}=cuda13"}
    deadline = time.monotonic() + 60
    while not client.containers.list(filters=flt) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.containers.list(filters=flt), "the shell's container never started"
    time.sleep(1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert client.containers.list(all=True, filters=flt) == []


def test_unreachable_index_fails_with_a_hint_and_leaves_nothing(docker_engine, image):
    tag = "torchenv-test/unreachable:0"
    done = invoke(
        "build", *BUILD, "--index-url", "http://127.0.0.1:9/simple", "--tag", tag, timeout=600
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot reach the package index" in done.stderr, done.stderr
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0


@pytest.fixture(scope="module")
def uv_wheel(tmp_path_factory) -> Path:
    """uv's wheel, as the kit's uv-requirements.txt pins it (pip checks its sha256)."""
    folder = tmp_path_factory.mktemp("uv-wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--platform", "manylinux_2_17_x86_64", "-d", str(folder),
         "-r", str(UV_REQUIREMENTS)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return next(folder.glob("uv-*.whl"))


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_wheelhouse_build_is_offline_and_leaves_no_links(
    docker_engine, image, tmp_path, uv_wheel, installer
):
    """With --wheelhouse, the installer uses only those wheels: a wheelhouse without torch must
    fail for want of it (never by reaching an index), and the staged links are gone afterwards.
    For uv the wheelhouse holds uv's own wheel: its stage installs uv from there, offline too."""
    wheels = [tmp_path / "placeholder-1.0-py3-none-any.whl"]
    wheels[0].write_bytes(b"")
    if installer == "uv":
        wheels.append(tmp_path / uv_wheel.name)
        wheels[1].write_bytes(uv_wheel.read_bytes())
    tag = f"torchenv-test/offline-{installer}:0"
    # --no-cache: the uv stage must run here, not come from an earlier run's build cache
    args = [*BUILD, "--installer", installer, "--wheelhouse", str(tmp_path), "--tag", tag,
            "--no-cache"]  # fmt: skip
    done = invoke("build", *args, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "offline: installing from the wheelhouse only" in done.stdout
    if installer == "uv":
        assert "uv 0.13.9" in done.stdout  # the uv stage installed it from the wheelhouse
        assert "was not found in the provided package locations" in done.stdout
        assert "the wheelhouse lacks a locked package" in done.stderr
    else:
        assert "No matching distribution found" in done.stdout  # nothing came from an index
    assert not any((ROOT / ".torchenv" / "wheelhouse" / wheel.name).exists() for wheel in wheels)
    assert docker(docker_engine, "image", "inspect", tag).returncode != 0


def test_verify_matches_the_lock_and_catches_a_changed_pin(image):
    from torchenv.image import verify
    from torchenv.lock import lockfile as locks

    assert verify.verify_image(TARGET, image=image) == []
    files, labels = baked.read_image(image)
    text = TARGET.pip_lock.read_text().replace(f"torch=={TARGET.torch}", "torch==2.12.0")
    assert "torch==2.12.0" in text
    changed = locks.parse_pip_lock(text, TARGET.pip_lock, TARGET.name)
    found = baked.verify_manifest(
        files[verify.MANIFEST_PATH], labels.get(verify.MANIFEST_LABEL), changed
    )
    assert any("torch" in line and "2.12.0" in line for line in found), found


def test_dev_flavor_passes_every_non_gpu_check_tensorboard_included(dev_image, tmp_path):
    """The dev flavor adds tensorboard (and git) to the runtime image, which has the compiler:
    every check but cuda passes there, tensorboard serving its logs included."""
    done = invoke("smoke", "--target", "cuda13", "--flavor", "dev", "--reports", str(tmp_path))
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    checks = json.loads((tmp_path / "smoke-cuda13.json").read_text())["checks"]
    not_passed = {c["name"]: c["reason"] for c in checks if c["status"] != "pass"}
    assert list(not_passed) == ["cuda"], not_passed
    served = next(c for c in checks if c["name"] == "tensorboard")["details"]["served"]
    assert served["runs"] == ["."] and served["command"][0] == "/opt/env/bin/tensorboard"


def test_uv_never_lands_in_the_image(docker_engine, image):
    done = docker(docker_engine, "run", "--rm", "--network=none", image, "bash", "-c",
                  "command -v uv; ls -d /opt/uv /usr/local/bin/uv 2>/dev/null; "
                  "cat /opt/torchenv/build-info.json")  # fmt: skip
    assert json.loads(done.stdout) == {"target": "cuda13", "installer": "uv", "lock": "hashes"}


def test_bytecode_is_compiled_at_build_time_for_read_only_containers(docker_engine, image):
    """uv compiled every module at build time, as checked-hash .pyc files (reproducible, and an
    edited source is still noticed): a read-only container imports without writing any."""
    probe = (
        "import importlib.util, torch, torchvision, torchaudio\n"
        "for m in (torch, torchvision, torchaudio):\n"
        "    pyc = importlib.util.cache_from_source(m.__file__)\n"
        "    print(int.from_bytes(open(pyc, 'rb').read(8)[4:8], 'little'))\n"
    )
    # /tmp stays writable, as on any read-only root (torch's import looks for a temp dir); the
    # environment itself is read-only, so no .pyc can be written there
    done = docker(docker_engine, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network=none",
                  image, "python", "-c", probe)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "3", "3"]  # flags: hash-based, checked


def _files(manifest: dict) -> dict[tuple[str, str], dict[str, str]]:
    """{(name, version): {path: sha256}} without what each installer writes its own way: the
    .dist-info bookkeeping (INSTALLER, RECORD, REQUESTED), the .pyc files and the console
    scripts in bin/ (each installer has its own template for them)."""
    own = (".dist-info/", "../../../bin/")
    return {
        (d["name"], d["version"]): {
            path: f["sha256"]
            for path, f in d["files"].items()
            if not any(part in path for part in own) and not path.endswith(".pyc")
        }
        for d in manifest["distributions"]
    }


def test_pip_installs_the_same_lock_file_for_file(image, pip_image):
    """The lock was resolved by pip; uv must install exactly the same files from it."""
    from torchenv.image import verify

    assert verify.verify_image(TARGET, image=pip_image) == []
    uv_files, _ = baked.read_image(image)
    pip_files, _ = baked.read_image(pip_image)
    assert json.loads(pip_files[verify.BUILD_INFO_PATH])["installer"] == "pip"
    uv_manifest = json.loads(uv_files[verify.MANIFEST_PATH])
    pip_manifest = json.loads(pip_files[verify.MANIFEST_PATH])
    ours, theirs = _files(uv_manifest), _files(pip_manifest)
    assert sorted(ours) == sorted(theirs)
    different = [key for key in ours if ours[key] != theirs[key]]
    assert different == [], different
    assert sum(len(files) for files in ours.values()) > 10_000


def test_pip_image_trains(docker_engine, pip_image):
    done = docker(docker_engine, "run", "--rm", "--network=none", "--shm-size=1g", pip_image,
                  "python", "-m", "torchsmoke", "--quick", "--only", "mlp,vision,audio")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed, 0 failed" in done.stdout


# --- verify: what the image holds now, after someone changed it ---------------------------------

SITE = "/opt/env/lib/python3.11/site-packages"


def tiny_wheel(folder: Path, name: str = "tiny", version: str = "1.0") -> Path:
    """A pure-Python wheel made here, so that `pip install` needs no index."""
    import base64
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"x = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: torchenv-test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    rows = [
        f"{path},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_pip_and_uv_in_the_image_cannot_replace_torch(docker_engine, image, tmp_path):
    """PIP_CONSTRAINT and UV_CONSTRAINT hold the torch family: a wheel of another torch, offered
    with no index, is refused by both installers, and the image's torch stays."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        reason = "uv is not installed on the host (pip install -e '.[dev]' installs it)"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "torch", "2.10.0")
    wheels.chmod(0o755)
    torch = matrix.get("cuda13").torch
    script = (
        "pip install --no-index --find-links /wheels torch==2.10.0; echo pip=$?; "
        "uv pip install --python /opt/env/bin/python --no-index --find-links /wheels "
        "torch==2.10.0; echo uv=$?; python -c 'import torch; print(\"torch\", torch.__version__)'"
    )
    done = docker(docker_engine, "run", "--rm", "--network=none", "-v", f"{wheels}:/wheels:ro",
                  "-v", f"{uv}:/usr/local/bin/uv:ro", image, "bash", "-c", script)  # fmt: skip
    out = done.stdout + done.stderr
    assert "pip=1" in out and f"(constraint) torch=={torch}" in out, out
    assert "uv=1" in out and f"torch=={torch}" in out.split("pip=1", 1)[1], out
    assert f"torch {torch}" in done.stdout, out


@pytest.fixture
def derived(docker_engine, image, tmp_path_factory):
    """Make images FROM the built one (each a small layer), removed after the test: a child image
    would keep the built one alive past a rebuild (see the rebuild test)."""
    made: list[str] = []

    def make(name: str, dockerfile: str, wheel: bool = False) -> str:
        tag = f"torchenv-test/verify-{name}:0"
        context = tmp_path_factory.mktemp(name)
        if wheel:
            tiny_wheel(context)
        (context / "Dockerfile").write_text(f"FROM {image}\n{dockerfile}\n")
        done = docker(docker_engine, "build", "--quiet", "--tag", tag, str(context))
        assert done.returncode == 0, done.stderr
        made.append(tag)
        return tag

    yield make
    for tag in made:
        docker(docker_engine, "image", "rm", "--force", tag)


def test_verify_hashes_the_untouched_image_and_finds_nothing(image):
    from torchenv.image import verify

    notes: list[str] = []
    assert verify.verify_image(TARGET, image=image, out=notes.append) == []
    assert "as it is now" in notes[0] and "user 1000:1000, no network, read-only" in notes[0]


def test_verify_names_a_package_installed_by_a_derived_image(derived):
    tag = derived("pip", "COPY tiny-1.0-py3-none-any.whl /tmp/\n"
                  "RUN pip install --no-index --no-deps /tmp/tiny-1.0-py3-none-any.whl", wheel=True)  # fmt: skip
    done = invoke("verify", "--target", "cuda13", "--image", tag, timeout=900)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert "extra: tiny 1.0 is installed, not locked" in lines
    assert "added: tiny 1.0 (not in the build's manifest)" in lines
    assert f"{tag} differs from its lock (2)" in done.stderr


def test_verify_names_a_package_installed_in_a_committed_container(docker_engine, image, tmp_path):
    from torchenv.image import verify

    wheel = tiny_wheel(tmp_path, "handmade", "2.0").read_bytes()
    name, tag = f"torchenv-test-commit-{os.getpid()}", "torchenv-test/verify-commit:0"
    try:
        done = subprocess.run(
            [docker_engine.client, "run", "-i", "--name", name, "--network", "none", image, "bash", "-c",
             "cat > /tmp/handmade-2.0-py3-none-any.whl && "
             "pip install -q --no-index --no-deps /tmp/handmade-2.0-py3-none-any.whl"],
            input=wheel, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert docker(docker_engine, "commit", name, tag).returncode == 0
        found = verify.verify_image(TARGET, image=tag, out=lambda line: None)
        assert found == [
            "extra: handmade 2.0 is installed, not locked",
            "added: handmade 2.0 (not in the build's manifest)",
        ]
    finally:
        docker(docker_engine, "rm", "--force", name)
        docker(docker_engine, "image", "rm", "--force", tag)


def test_verify_names_an_edited_a_deleted_and_an_unowned_file(derived):
    from torchenv.image import verify

    tag = derived(
        "files",
        f"RUN echo '# edited' >> {SITE}/torch/version.py && rm {SITE}/torchvision/version.py "
        f"&& echo 'import os' > {SITE}/sitecustomize.py",
    )
    found = verify.verify_image(TARGET, image=tag, out=lambda line: None)
    assert found == [
        "changed file: torch/version.py (torch)",
        "deleted file: torchvision/version.py (torchvision)",
        "unowned file: lib/python3.11/site-packages/sitecustomize.py (no distribution owns it)",
    ]


def test_smoke_past_its_timeout_stops_names_the_check_and_keeps_a_partial_report(
    docker_engine, image, tmp_path
):
    """The full suite (its checks take about 8 s here, after a few seconds of start-up) with a
    6 s timeout: it is stopped in the middle of its checks."""
    import docker as sdk

    start = time.monotonic()
    done = invoke("smoke", "--target", "cuda13", "--reports", str(tmp_path), "--timeout", "6",
                  timeout=300)  # fmt: skip
    elapsed = time.monotonic() - start
    assert done.returncode == 124 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    report = json.loads((tmp_path / "smoke-cuda13.json").read_text())
    assert report["partial"] is True and report["running"], report
    assert f"while check {report['running']!r} was running" in errors[0]
    assert f"partial report ({len(report['checks'])} checks done)" in errors[0]
    assert report["running"] not in [c["name"] for c in report["checks"]]
    assert elapsed < 6 + 60, elapsed
    leftovers = sdk.from_env().containers.list(all=True, filters={"label": f"{SMOKE_LABEL}=cuda13"})
    assert leftovers == []


def default_index_with(user: str, token: str) -> str:
    """pip's own default index URL (taken from pip, which accepts any credentials there) with a
    user and a token in it, as a private mirror's URL would carry them."""
    from pip._internal.models.index import PyPI

    return PyPI.simple_url.replace("https://", f"https://{user}:{token}@", 1)


def stream_holds(argv: list[str], needle: bytes) -> bool:
    """Whether a command's (large) output contains `needle`, read in chunks."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    tail, found = b"", False
    for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
        if needle in tail + chunk:
            found = True
        tail = chunk[-len(needle) :]
    assert proc.wait() == 0
    return found


def test_index_credentials_reach_pip_but_no_history_config_or_layer(docker_engine, pip_build):
    """The pip image's build went through an index URL with a user and a token: pip used them (it
    prints the URL with the password hidden; uv, which reads the same variable, prints no index),
    and the token is nowhere in the image: not in `docker history`, not in its config, not in any
    layer of `docker save`."""
    output, token, tag = pip_build.output, pip_build.token, pip_build.tag
    assert token not in output
    assert "index credentials from a BuildKit secret" in output
    # pip was given the credentials: it masks the password, the build's output the user too
    assert "***:****@" in output and "torchenv-user" not in output
    history = docker(docker_engine, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    assert "TORCHENV_INDEX_URL=https://" in history.stdout and token not in history.stdout
    assert token not in docker(docker_engine, "image", "inspect", tag).stdout
    assert not stream_holds([docker_engine.client, "save", tag], token.encode())


def test_a_rebuild_keeps_an_unchanged_image_and_leaves_no_dangling_image(docker_engine, image):
    """A rebuild with nothing changed keeps the labelled image as it is (only the build time
    would differ). A rebuild after an edit moves the tag to a new image, and neither the image it
    named before nor the unlabelled one stays behind as `<none>`."""

    def dangling() -> set[str]:
        listing = docker(docker_engine, "image", "ls", "-q", "--no-trunc", "-f", "dangling=true")
        return set(listing.stdout.split())

    def image_id() -> str:
        return docker(docker_engine, "image", "inspect", "-f", "{{.Id}}", image).stdout.strip()

    def rebuild() -> str:
        done = invoke("build", *BUILD, *(["--ca-cert", CA] if Path(CA).exists() else []))
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
        return done.stdout.strip().splitlines()[-1]

    before, first = dangling(), image_id()
    assert rebuild().startswith(f"torchenv: nothing changed: kept {image}")
    assert image_id() == first and dangling() - before == set()

    edited = ROOT / "src" / "torchsmoke" / "core.py"
    original = edited.read_text()
    try:
        edited.write_text(original + "\n# an edit, for this test\n")
        assert rebuild().startswith(f"torchenv: built {image}")
    finally:
        edited.write_text(original)
    assert image_id() != first  # the tag moved
    assert dangling() - before == set()
    assert docker(docker_engine, "image", "inspect", first).returncode != 0
    rebuild()  # the committed source again, for the tests after this one
