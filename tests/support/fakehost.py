"""A host answered by fakes for the doctor's tests: the docker client's, nvidia-smi's and pip's
answers where every check passes (`healthy`), and `check`, which runs every check against them."""

from __future__ import annotations

import json

from tests.support.fakerunner import FakeRunner, reply

from torchbuild.versions import parse as version_tuple
from torchenv import matrix
from torchenv.doctor import checkup as doctor
from torchenv.doctor.checkup import run_checks

DOCKER = "/usr/bin/docker"


TARGETS = list(matrix.load().values())


CUDA = [t for t in TARGETS if t.is_cuda]


NEWEST_MIN = max((t.min_driver for t in CUDA), key=version_tuple)


UP = {"Client": {"Version": "20.10.24+dfsg1"}, "Server": {"Version": "20.10.24+dfsg1"}}


DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


SYSTEM_DF = (
    '{"Reclaimable":"16.48GB (100%)","Size":"16.48GB","TotalCount":"16","Type":"Images"}\n'
    '{"Active":"8","Reclaimable":"5.452GB","Size":"5.452GB","TotalCount":"73","Type":"Build Cache"}\n'
)


INFO = {"DockerRootDir": "/data/docker", "Runtimes": {"runc": {}, "nvidia": {}}}


GOOD_FILES = {"/etc/docker/daemon.json": '{"default-shm-size": "2g"}'}


def smi(driver: str = NEWEST_MIN, name: str = "NVIDIA H100 80GB HBM3"):
    return reply(f"{driver}, {name}\n{driver}, {name}\n")


def healthy(**changes):
    """Answers of a host where every check passes; `changes` replaces or (None) removes some."""
    answers = {
        (DOCKER, "version"): reply(json.dumps(UP)),
        (DOCKER, "info"): reply(json.dumps(INFO)),
        (DOCKER, "image", "inspect"): reply("sha256:" + "1" * 64 + "\n"),
        ("nvidia-smi",): smi(),
        doctor.PIP_CONFIG_LIST: reply(""),
        (DOCKER, "system", "df"): reply(SYSTEM_DF),
    }
    for key, value in changes.items():
        prefix = {"version": (DOCKER, "version"), "info": (DOCKER, "info"), "smi": ("nvidia-smi",),
                  "pip": doctor.PIP_CONFIG_LIST, "ctk": ("nvidia-ctk",),
                  "image": (DOCKER, "image", "inspect"),
                  "manifest": (DOCKER, "manifest", "inspect"),
"df": (DOCKER, "system", "df")}[key]  # fmt: skip
        answers[prefix] = value
    return FakeRunner({k: v for k, v in answers.items() if v is not None})


def check(
    runner=None, *, files=GOOD_FILES, free_gb=100.0, env=None, targets=TARGETS, gpu=False,
    ca_cert=None,
):  # fmt: skip
    """Run every check against fakes; rows by name (a list where a name repeats)."""

    def disk_usage(path):
        if path in ("/data/docker", "/var/lib/docker"):
            return (0, 0, int(free_gb * doctor.GB))
        raise FileNotFoundError(path)

    rows = run_checks(
        runner=runner or healthy(),
        targets=targets,
        require_gpu=gpu,
        read_file=files.get,
        disk_usage=disk_usage,
        environ=env or {},
        clients=[DOCKER],
        ca_cert=ca_cert,
    )
    return {r.name: r for r in rows}, rows


BASE = TARGETS[0].base_ref


NO_REGISTRY = (
    'error pinging v2 registry: Get "https://registry.example/v2/": dial tcp: no such host'
)
