"""The doctor's engine checks: daemon, client, BuildKit, NVIDIA runtime, disk, base images and
the build cache, against a host answered by fakes."""

import json

import pytest
from tests.support.fakehost import (
    BASE,
    DOCKER,
    DOWN,
    GOOD_FILES,
    NO_REGISTRY,
    TARGETS,
    UP,
    check,
    healthy,
)  # fmt: skip
from tests.support.fakerunner import reply

from torchenv import engine
from torchenv.doctor import checkup as doctor
from torchenv.doctor.checkup import exit_code, run_checks


def test_daemon_down_fails_but_still_reports_builder():
    down = reply(json.dumps({"Client": UP["Client"], "Server": None}), 1, DOWN)
    runner = healthy(version=down)
    by_name, rows = check(runner)
    daemon = by_name["Docker daemon"]
    assert (daemon.status, daemon.detail) == ("fail", f"Cannot reach the Docker daemon ({DOWN})")
    assert daemon.fix == engine.DAEMON_FIX
    assert by_name["BuildKit"].status == "ok"
    assert not runner.ran(DOCKER, "info")
    assert "in /var/lib/docker" in by_name["free disk"].detail  # fallback data root
    assert exit_code(rows) == 1


def test_no_docker_client():
    by_name, _ = check(healthy(version=None))
    assert by_name["Docker daemon"].status == "fail"
    assert by_name["Docker daemon"].fix == "install Docker: apt-get install docker.io"
    assert by_name["BuildKit"].status == "skip"


def test_client_without_buildkit():
    new = {"Client": {"Version": "28.2.2"}, "Server": UP["Server"]}
    by_name, _ = check(healthy(version=reply(json.dumps(new))))
    assert by_name["BuildKit"].status == "fail"
    assert by_name["BuildKit"].fix.startswith("install the buildx plugin")


def test_nvidia_runtime_from_toolkit_or_missing_with_gpu():
    no_runtime = reply(json.dumps({"DockerRootDir": "/data/docker", "Runtimes": {"runc": {}}}))
    by_name, _ = check(healthy(info=no_runtime, ctk=reply("NVIDIA Container Toolkit CLI 1.17")))
    assert by_name["NVIDIA container runtime"].detail.startswith("nvidia-ctk found")
    by_name, _ = check(healthy(info=no_runtime))
    row = by_name["NVIDIA container runtime"]
    assert row.status == "fail" and "containers cannot see the GPU" in row.detail
    assert "nvidia-ctk runtime configure --runtime=docker" in row.fix


@pytest.mark.parametrize(
    ("free_gb", "status"), [(100, "ok"), (20, "warn"), (11.9, "fail"), (1, "fail")]
)
def test_disk_against_image_sizes(free_gb, status):
    # All four targets: 2 x (2 + 6 + 6 + 6) = 40 GB; the largest alone: 2 x 6 = 12 GB.
    by_name, _ = check(free_gb=free_gb)
    assert by_name["free disk"].status == status
    assert by_name["free disk"].detail.startswith(f"{free_gb:.1f} GB free in /data/docker")


def test_disk_of_a_remote_daemon_is_not_checked():
    by_name, _ = check(env={"DOCKER_HOST": "tcp://build-box:2376"})
    assert by_name["free disk"].status == "skip"


def test_the_base_image_in_the_engine_or_on_its_registry_is_ok():
    by_name, _ = check()
    assert by_name["base image"].detail == f"{BASE} is in the engine"
    runner = healthy(image=reply("", 1, "No such image"), manifest=reply('{"schemaVersion": 2}'))
    by_name, _ = check(runner)
    assert by_name["base image"].detail == f"{BASE} is on its registry (the first build pulls it)"


def test_a_base_image_that_cannot_be_had_fails_with_the_fix():
    runner = healthy(image=reply("", 1, "No such image"), manifest=reply("", 1, NO_REGISTRY))
    by_name, rows = check(runner)
    row = by_name["base image"]
    assert row.status == "fail" and exit_code(rows) == 1
    assert (
        row.detail == f"{BASE} is not in the engine and its registry did not answer ({NO_REGISTRY})"
    )
    assert row.fix.startswith("pass --base-image with an image you have locally")


def test_micromamba_for_the_conda_installer_is_checked_too():
    runner = healthy(manifest=reply("", 1, NO_REGISTRY))
    runner.answers[
        (DOCKER, "image", "inspect", "--format", "{{.Id}}", TARGETS[0].micromamba_ref)
    ] = reply("", 1, "No such image")
    rows = run_checks(
        runner=runner, targets=TARGETS, read_file=GOOD_FILES.get, environ={}, clients=[DOCKER],
        disk_usage=lambda path: (0, 0, 10**12),
        images={"base image": BASE, "micromamba image": TARGETS[0].micromamba_ref},
    )  # fmt: skip
    by_name = {r.name: r for r in rows}
    assert by_name["base image"].status == "ok"
    assert by_name["micromamba image"].status == "fail"
    assert by_name["micromamba image"].fix.startswith("pick an installer that does not need it")


def test_build_cache_size_and_how_to_prune_it():
    by_name, _ = check()
    row = by_name["build cache"]
    assert row.status == "ok"
    assert row.detail.startswith("5.452GB (5.452GB reclaimable, 73 records); to prune it: ")
    assert "docker builder prune" in row.detail
    by_name, _ = check(healthy(df=reply("", 1, "unknown flag: --format")))
    assert by_name["build cache"] == doctor.Row(
        "build cache",
        "skip",
        "docker system df gave no build cache size (unknown flag: --format)",
    )
