"""`invoke export`: the image as one archive for Apptainer on HPC, proved as far as this machine
can without Apptainer: skopeo reads the archive, umoci unpacks it into a rootfs that holds the
environment and the variables, and the suite passes under Apptainer's run semantics reproduced
with Docker (read-only image, the host user's UID and passwd entry, the host's HOME and /tmp
mounted, no USER or ENTRYPOINT from the image, an environment of the image's variables only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import REPO
from tests.support.fakerunner import FakeRunner, reply

from images import STANDIN, docker, invoke
from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import export
from torchenv.image.render import STARTUP_PTH_LINE
from torchsmoke.checks import NAMES

TARGET = matrix.get("cuda13")
REF = TARGET.image().rpartition(":")[2]  # the name inside the OCI archive
HOST_UID = 23456  # an HPC user: not the image's user, not root


def run(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], done.stderr


# --- pure: names, validation, the exact commands ------------------------------------------------


def test_default_out_names_target_flavor_and_format():
    assert export.default_out("cuda13", "runtime", "oci-archive") == Path("cuda13.oci-archive.tar")
    assert export.default_out("cpu", "dev", "docker-archive") == Path("cpu-dev.docker-archive.tar")


def test_the_commands_for_each_format(tmp_path: Path):
    req = export.ExportRequest("torchenv/cuda13:2.14.1-cu130", "docker-archive", tmp_path / "a")
    work = tmp_path / "w"
    save = ["/usr/bin/docker", "save", "--output", f"{work}/docker-archive.tar", "--", req.image]
    assert export.commands(req, "/usr/bin/docker", work) == [save]
    oci = export.ExportRequest(req.image, "oci-archive", tmp_path / "a")
    assert export.commands(oci, "/usr/bin/docker", work) == [
        save,
        ["skopeo", "copy", "--quiet", f"docker-archive:{work}/docker-archive.tar",
         f"oci-archive:{work}/oci-archive.tar:2.14.1-cu130"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("image", "ref"),
    [("torchenv/cuda13:2.14.1-cu130", "2.14.1-cu130"), ("localhost:5000/x", "latest")],
)
def test_oci_reference_is_the_tag(image: str, ref: str):
    assert export.oci_reference(image) == ref


def test_dry_run_prints_the_commands_and_the_final_rename():
    done = invoke("export", "--target", "cuda13", "--format", "oci-archive", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [lines[0].split()[0], "save"], ["skopeo", "copy"], ["mv", lines[2].split()[1]]
    ]  # fmt: skip
    assert lines[2].endswith(" " + str(REPO / "cuda13.oci-archive.tar"))


def fake_runner(fail_at: str) -> FakeRunner:
    """docker and skopeo that write part of their output, then `fail_at` fails or is interrupted."""

    def step(name: str, output: int, prefix: str = ""):
        def answer(argv: tuple[str, ...]):
            Path(argv[output].removeprefix(prefix).split(":")[0]).write_bytes(b"partial")
            if fail_at == "interrupt" and name == "copy":
                raise KeyboardInterrupt
            return reply(returncode=int(name == fail_at), stderr=f"{name}: disk full")

        return answer

    return FakeRunner(
        {
            ("docker", "image", "inspect"): reply("sha256:0"),
            ("docker", "save"): step("save", 3),
            ("skopeo", "copy"): step("copy", -1, "oci-archive:"),
        }
    )


@pytest.mark.parametrize(
    ("fail_at", "message"),
    [
        ("save", "docker save failed: save: disk full"),
        ("copy", "skopeo copy failed: copy: disk full"),
    ],
)
def test_a_failed_export_is_one_line_and_leaves_nothing(tmp_path: Path, fail_at, message):
    req = export.ExportRequest("torchenv/cuda13:x", "oci-archive", tmp_path / "out.tar")
    with pytest.raises(UserError) as info:
        list(export.export(req, "docker", runner=fake_runner(fail_at)))
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_export_leaves_nothing(tmp_path: Path):
    req = export.ExportRequest("torchenv/cuda13:x", "oci-archive", tmp_path / "out.tar")
    with pytest.raises(KeyboardInterrupt):
        list(export.export(req, "docker", runner=fake_runner("interrupt")))
    assert list(tmp_path.iterdir()) == []


# --- bad input: one line, nothing left ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "zip", "--out", "{tmp}/x.tar"],
            "--format 'zip' is unknown: choose one of docker-archive, oci-archive",
        ),
        (["--out", "{tmp}"], "--out {tmp} is a folder: give a file name"),
        (
            ["--out", "{tmp}/missing/x.tar"],
            "the folder of --out {tmp}/missing/x.tar does not exist",
        ),
        (["--out", "/proc/1/x.tar"], "cannot write to /proc/1: choose another --out"),
        (
            ["--flavor", "fat", "--out", "{tmp}/x.tar"],
            "--flavor 'fat' is unknown: choose one of runtime, dev",
        ),
    ],
    ids=["format", "out-is-a-folder", "out-folder-missing", "out-folder-not-writable", "flavor"],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, args: list[str], message: str):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = invoke("export", "--target", "cuda13", *args)
    assert_one_line_error(done, message.replace("{tmp}", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_oci_archive_without_skopeo_says_what_to_install(tmp_path: Path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no skopeo there
    done = invoke(
        "export", "--target", "cuda13", "--format", "oci-archive", "--out", str(tmp_path / "x.tar"),
        env=env,
    )  # fmt: skip
    assert_one_line_error(done, "--format oci-archive needs skopeo (apt-get install skopeo)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.engine
def test_an_image_not_built_is_one_line_and_leaves_nothing(tmp_path: Path):
    done = invoke(
        "export", "--target", "cuda13", "--image", "torchenv/never-built:0", "--out",
        str(tmp_path / "x.tar"),
    )  # fmt: skip
    assert_one_line_error(
        done, "image torchenv/never-built:0 is not built yet: run `invoke build --target cuda13`"
    )
    assert list(tmp_path.iterdir()) == []


# --- the real archives ---------------------------------------------------------------------------


def skopeo_config(transport: str, path: Path) -> dict:
    done = run("skopeo", "inspect", "--config", f"{transport}:{path}", timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def diff_ids(engine, image: str) -> list[str]:
    done = docker(engine, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image)
    return json.loads(done.stdout)


@pytest.mark.engine
@pytest.mark.slow  # the stand-in base: only where .ci/run made it
def test_docker_archive_is_what_docker_save_wrote(docker_engine, tmp_path: Path):
    """docker-archive on a small image (the stand-in base): the whole path, to the final file."""
    out = tmp_path / "base.tar"
    done = invoke("export", "--target", "cuda13", "--image", STANDIN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"wrote {out} (docker-archive, ")
    assert list(tmp_path.iterdir()) == [out]
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [STANDIN]
    config = skopeo_config("docker-archive", out)
    assert config["rootfs"]["diff_ids"] == diff_ids(docker_engine, STANDIN)


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_export_stopped_midway_leaves_nothing(image, tmp_path: Path, signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "export", "--target", "cuda13", "--format", "oci-archive",
         "--out", str(tmp_path / "x.tar")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".x.tar.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmp_path.glob(".x.tar.*.tmp")), "the export never started"
        time.sleep(3)  # docker save is writing into the work folder now
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def oci_archive(docker_engine, image, tmp_path_factory) -> Iterator[Path]:
    """The runtime image exported as an OCI archive by `invoke export`."""
    folder = tmp_path_factory.mktemp("export")
    out = folder / "cuda13.oci-archive.tar"
    done = invoke("export", "--target", "cuda13", "--format", "oci-archive", "--out", str(out))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert list(folder.iterdir()) == [out]  # the work folder is gone
    yield out
    shutil.rmtree(folder)  # several GB


@pytest.fixture(scope="module")
def config(oci_archive) -> dict:
    return skopeo_config("oci-archive", oci_archive)


@pytest.fixture(scope="module")
def bundle(oci_archive, tmp_path_factory) -> Iterator[Path]:
    """umoci's runtime bundle (rootfs/ and config.json) unpacked from the archive."""
    folder = tmp_path_factory.mktemp("umoci")
    with tarfile.open(oci_archive) as tar:
        tar.extractall(folder / "layout", filter="tar")
    done = run("umoci", "unpack", "--rootless", "--image", f"{folder / 'layout'}:{REF}",
               str(folder / "bundle"), timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(folder / "layout")
    yield folder / "bundle"
    shutil.rmtree(folder)  # an unpacked image, several GB


@pytest.mark.engine
@pytest.mark.slow
def test_skopeo_reads_the_image_layers_variables_and_labels(docker_engine, image, config):
    assert config["rootfs"]["diff_ids"] == diff_ids(docker_engine, image)  # the very layers
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["PATH"].startswith("/opt/env/bin:") and env["TORCHENV_TARGET"] == "cuda13"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_REQUIRE_CUDA"] == "cuda>=13.0"
    assert config["config"]["Labels"]["io.torchenv.variant"] == "cu130"


@pytest.mark.engine
@pytest.mark.slow
def test_umoci_unpacks_a_rootfs_with_the_environment_and_the_variables(bundle, config):
    rootfs = bundle / "rootfs"
    site = rootfs / "opt/env/lib/python3.11/site-packages"
    torch = matrix.get("cuda13").torch
    assert [p.name for p in site.glob(f"torch-{torch}*.dist-info")], "torch is missing"
    assert (rootfs / "opt/torchenv/lib/torchsmoke/__main__.py").is_file()
    assert STARTUP_PTH_LINE in (site / "torchenv.pth").read_text().splitlines()
    python = os.readlink(rootfs / "opt/env/bin/python")  # the venv's link to the base's Python
    assert (rootfs / python.lstrip("/")).exists() or (rootfs / "opt/env/bin" / python).exists()
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert set(config["config"]["Env"]) <= set(process["env"])
    assert process["args"] == ["python", "-m", "torchsmoke"]


@pytest.mark.engine
@pytest.mark.slow
def test_the_suite_passes_under_apptainer_run_semantics(docker_engine, image, config, bundle):
    """`apptainer exec --cleanenv torch.sif python -m torchsmoke` as Docker can play it."""
    host = bundle.parent / "host"
    home, tmp = host / "home" / "hpcuser", host / "tmp"
    home.mkdir(parents=True)
    tmp.mkdir()
    tmp.chmod(0o1777)
    os.chown(home, HOST_UID, HOST_UID)
    # Apptainer gives the calling user a passwd and a group entry in the container.
    passwd, group = host / "passwd", host / "group"
    passwd.write_text((bundle / "rootfs/etc/passwd").read_text()
                      + f"hpcuser:x:{HOST_UID}:{HOST_UID}::/home/hpcuser:/bin/bash\n")  # fmt: skip
    group.write_text((bundle / "rootfs/etc/group").read_text() + f"hpcuser:x:{HOST_UID}:\n")
    env_check = (
        "import json, os, getpass; "
        "print(json.dumps({'env': sorted(os.environ), 'user': getpass.getuser(), 'home': os.environ['HOME']}))"
    )
    suite = ["python", "-m", "torchsmoke", *TARGET.smoke_expectations(), "--json", "report.json"]
    argv = [
        docker_engine.client, "run", "--rm", "--read-only",
        "--user", f"{HOST_UID}:{HOST_UID}", "--entrypoint", "",
        "--volume", f"{home}:/home/hpcuser", "--env", "HOME=/home/hpcuser",
        "--workdir", "/home/hpcuser", "--volume", f"{tmp}:/tmp",
        "--volume", f"{passwd}:/etc/passwd:ro", "--volume", f"{group}:/etc/group:ro",
        "--shm-size=2g", image,
        "bash", "-c", f'python -c "{env_check}" > seen.json && exec "$@"', "exec", *suite,
    ]  # fmt: skip
    done = run(*argv)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-3000:])
    checks = json.loads((home / "report.json").read_text())["checks"]
    assert [c["name"] for c in checks] == list(NAMES)  # the whole suite ran
    assert {c["name"]: c["status"] for c in checks} == {
        # no GPU here; the runtime flavor ships no tensorboard. compile runs: the host's /tmp,
        # mounted as Apptainer mounts it, lets compiled code load.
        c["name"]: "skip" if c["name"] in ("cuda", "tensorboard") else "pass"
        for c in checks
    }
    seen = json.loads((home / "seen.json").read_text())
    assert (seen["user"], seen["home"]) == ("hpcuser", "/home/hpcuser")  # nothing to fix here
    image_vars = {item.split("=", 1)[0] for item in config["config"]["Env"]}
    assert set(seen["env"]) - image_vars <= {"HOME", "HOSTNAME", "PWD", "SHLVL", "_"}, seen["env"]


def test_an_image_that_looks_like_an_option_is_refused(tmp_path):
    """Issue 20: `export --image --help` never puts --help on docker save's command line."""
    for bad in ("--help", "-x", "a b", ""):
        req = export.ExportRequest(image=bad, format="docker-archive", out=tmp_path / "x.tar")
        with pytest.raises(UserError, match="is not an image reference"):
            export.validate(req)
