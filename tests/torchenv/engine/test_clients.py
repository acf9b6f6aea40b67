import json
import os

import docker
import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.engine import Engine, EngineError, detect
from torchenv.engine import clients as engine
from torchenv.errors import UserError

NEW = "/usr/local/bin/docker"
OLD = "/usr/bin/docker"
DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is it running?"


def version(client: str, server: str | None = "20.10.24+dfsg1", stderr: str = DOWN):
    """What `docker version --format '{{json .}}'` answers, with the daemon up or (None) down."""
    data = {"Client": {"Version": client}, "Server": {"Version": server} if server else None}
    return reply(json.dumps(data) + "\n", 0 if server else 1, "" if server else stderr + "\n")


BUILDX_MISSING = reply(returncode=1, stderr="docker: 'buildx' is not a docker command.")
BUILDX_OK = reply("github.com/docker/buildx v0.24.0 d0e5e86\n")


def test_no_client_at_all():
    with pytest.raises(EngineError) as exc:
        detect(FakeRunner(), clients=[NEW, OLD])
    assert str(exc.value).endswith(": install Docker: apt-get install docker.io")
    assert "\n" not in str(exc.value)


def test_no_candidates_found_on_this_host(monkeypatch):
    monkeypatch.setattr(engine, "candidate_clients", list)
    with pytest.raises(UserError, match="no docker client found"):
        detect(FakeRunner())


def test_daemon_down():
    fake = FakeRunner({(NEW, "version"): version("28.2.2", None)})
    with pytest.raises(EngineError) as exc:
        detect(fake, clients=[NEW, OLD])
    assert str(exc.value) == (
        f"Cannot reach the Docker daemon ({DOWN}): start it (sudo systemctl start docker, "
        "or dockerd &) or set DOCKER_HOST"
    )
    assert not fake.ran(NEW, "buildx")


def test_daemon_permission_denied_says_docker_group():
    denied = "permission denied while trying to connect to the Docker daemon socket"
    fake = FakeRunner({(OLD, "version"): version("20.10.24", None, stderr=denied)})
    with pytest.raises(EngineError, match=r"docker group .*usermod"):
        detect(fake, clients=[OLD])


def test_daemon_probe_timeout_is_unreachable():
    fake = FakeRunner({(OLD, "version"): reply(returncode=124, stderr="timed out after 30s")})
    with pytest.raises(EngineError, match=r"^Cannot reach the Docker daemon \(timed out"):
        detect(fake, clients=[OLD])


def test_new_client_with_buildx():
    fake = FakeRunner({(NEW, "version"): version("28.2.2"), (NEW, "buildx"): BUILDX_OK})
    found = detect(fake, clients=[NEW, OLD])
    assert found == Engine(NEW, "28.2.2", "20.10.24+dfsg1", "buildx")
    assert found.build_prefix() == ([NEW, "buildx", "build", "--load"], {})


def test_new_client_without_buildx_falls_back_to_engine_2010_client():
    fake = FakeRunner(
        {
            (NEW, "version"): version("28.2.2"),
            (NEW, "buildx"): BUILDX_MISSING,
            (OLD, "version"): version("20.10.24+dfsg1"),
            (OLD, "buildx"): BUILDX_MISSING,
        }
    )
    found = detect(fake, clients=[NEW, OLD])
    assert found == Engine(OLD, "20.10.24+dfsg1", "20.10.24+dfsg1", "builtin")
    assert found.build_prefix() == ([OLD, "build"], {"DOCKER_BUILDKIT": "1"})


def test_buildx_anywhere_beats_builtin():
    fake = FakeRunner(
        {
            (OLD, "version"): version("20.10.24"),
            (OLD, "buildx"): BUILDX_MISSING,
            (NEW, "version"): version("28.2.2"),
            (NEW, "buildx"): BUILDX_OK,
        }
    )
    assert detect(fake, clients=[OLD, NEW]).client == NEW


def test_only_new_client_without_buildx_has_no_buildkit():
    fake = FakeRunner({(NEW, "version"): version("28.2.2"), (NEW, "buildx"): BUILDX_MISSING})
    with pytest.raises(EngineError) as exc:
        detect(fake, clients=[NEW, OLD])
    assert str(exc.value) == (
        f"no BuildKit (clients: {NEW} 28.2.2): install the buildx plugin, or use Docker engine "
        "20.10's own client /usr/bin/docker with DOCKER_BUILDKIT=1"
    )


def test_client_that_cannot_reach_daemon_is_not_chosen():
    fake = FakeRunner(
        {
            (NEW, "version"): version("28.2.2", None),
            (NEW, "buildx"): BUILDX_OK,
            (OLD, "version"): version("20.10.24"),
        }
    )
    assert detect(fake, clients=[NEW, OLD]).builder == "builtin"


def test_server_version_from_components_and_unparsable_output():
    components = [
        {"Name": "containerd", "Version": "1.6"},
        {"Name": "Engine", "Version": "20.10.5"},
    ]
    data = {"Client": {"Version": "20.10.5"}, "Server": {"Components": components}}
    fake = FakeRunner({(OLD, "version"): reply(json.dumps(data))})
    assert engine.probe_client(OLD, fake).server_version == "20.10.5"
    garbled = engine.probe_client(OLD, FakeRunner({(OLD,): reply("?", 1, "bad")}))
    assert (garbled.client_version, garbled.server_version, garbled.error) == (
        "unknown",
        None,
        "bad",
    )


@pytest.mark.parametrize(
    ("text", "expected"), [("20.10.24+dfsg1", 20), ("28.2.2", 28), ("v23.0", 23), ("dev", None)]
)
def test_major(text, expected):
    assert engine.major(text) == expected


def test_candidate_clients_dedupes_by_real_path(tmp_path, monkeypatch):
    real = tmp_path / "docker"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    link = tmp_path / "link-docker"
    link.symlink_to(real)
    monkeypatch.setattr(engine.shutil, "which", lambda name: str(link))
    monkeypatch.setattr(engine, "WELL_KNOWN_CLIENTS", (str(real), str(tmp_path / "absent")))
    assert engine.candidate_clients() == [str(link)]


def test_docker_sdk_client_unreachable_is_one_line(monkeypatch):
    def refuse():
        raise docker.errors.DockerException("Error while fetching server API version: refused")

    monkeypatch.setattr(docker, "from_env", refuse)
    with pytest.raises(UserError) as exc:
        engine.docker_sdk_client()
    assert str(exc.value).startswith("Cannot reach the Docker daemon (Error while fetching")
    assert "\n" not in str(exc.value)


@pytest.mark.engine
def test_real_engine_can_build(docker_engine):
    found = docker_engine
    assert engine.major(found.server_version) is not None
    prefix, env = found.build_prefix()
    assert prefix[0] == found.client and os.access(found.client, os.X_OK)
    if found.builder == "builtin":
        assert env == {"DOCKER_BUILDKIT": "1"}
        assert engine.major(found.client_version) < engine.LEGACY_BUILDKIT_BEFORE
    assert engine.docker_sdk_client().ping()


def test_the_gpu_runtime_probe_reads_the_sdk_clients_info_with_the_same_rule():
    import requests

    class Sdk:
        def __init__(self, runtimes=None, error=None):
            self.runtimes, self.error = runtimes, error

        def info(self):
            if self.error is not None:
                raise self.error
            return {"Runtimes": self.runtimes}

    assert engine.gpu_runtime(Sdk({"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}))  # type: ignore[arg-type]
    assert not engine.gpu_runtime(Sdk({"runc": {}}))  # type: ignore[arg-type]
    assert not engine.gpu_runtime(Sdk(error=requests.exceptions.ConnectionError("gone")))  # type: ignore[arg-type]


def test_a_dry_run_without_an_engine_shows_what_a_builtin_client_runs():
    found = engine.for_dry_run(FakeRunner())  # no docker at all
    assert (found.client, found.builder) == ("docker", "builtin")
