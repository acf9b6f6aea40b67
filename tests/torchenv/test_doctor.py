import json

import pytest
from tests.support import doctor_cli

from torchbuild.versions import parse as version_tuple
from torchenv import doctor, engine, matrix
from torchenv.doctor import Row, exit_code, parse_size, render, run_checks
from torchenv.runner import FakeRunner, reply

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


def check(runner=None, *, files=GOOD_FILES, free_gb=100.0, env=None, targets=TARGETS, gpu=False):
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
    )
    return {r.name: r for r in rows}, rows


def test_healthy_gpu_host_is_all_ok():
    by_name, rows = check()
    assert {r.status for r in rows} == {"ok"}, render(rows)
    assert (
        by_name["Docker daemon"].detail == f"engine 20.10.24+dfsg1 (client {DOCKER} 20.10.24+dfsg1)"
    )
    assert by_name["BuildKit"].detail.startswith(f"DOCKER_BUILDKIT=1 {DOCKER} build")
    assert "in /data/docker" in by_name["free disk"].detail
    assert exit_code(rows) == 0


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


@pytest.mark.parametrize("target", CUDA, ids=lambda t: t.name)
def test_driver_against_each_cuda_minimum(target):
    parts = version_tuple(target.min_driver)
    older = ".".join(map(str, (parts[0] - 1, *parts[1:])))
    by_name, rows = check(healthy(smi=smi(older)))
    row = by_name[f"driver for {target.name}"]
    assert row.status == "fail" and row.fix.startswith(
        f"upgrade the NVIDIA driver to >= {target.min_driver}"
    )
    assert f"driver {older} < {target.min_driver}" in row.detail and "NVIDIA H100" in row.detail
    assert exit_code(rows) == 1
    at_minimum, _ = check(healthy(smi=smi(target.min_driver)))
    assert at_minimum[f"driver for {target.name}"].status == "ok"


def test_old_driver_suggests_targets_it_still_runs():
    by_name, _ = check(healthy(smi=smi("560.35.05")))
    assert by_name["driver for cuda118"].status == "ok"
    assert (
        by_name["driver for cuda12"].fix == "upgrade the NVIDIA driver to >= 570.26, or use cuda118"
    )


def test_driver_versions_compare_numerically():
    assert version_tuple("570.26") < version_tuple("575.51.03")
    assert version_tuple("580.9") < version_tuple("580.65.06")
    by_name, _ = check(healthy(smi=smi("575.51.03")))
    assert by_name["driver for cuda12"].status == "ok"
    assert by_name["driver for cuda13"].status == "fail"


def test_no_nvidia_smi_warns_and_explains():
    runner = healthy(smi=None, info=reply(json.dumps({"DockerRootDir": "/data/docker"})))
    by_name, rows = check(runner)
    for target in CUDA:
        row = by_name[f"driver for {target.name}"]
        assert row.status == "warn"
        assert row.detail.startswith("no NVIDIA driver/GPU found (nvidia-smi not found)")
        assert "CUDA targets build fine but their GPU checks will skip" in row.detail
        assert row.fix.startswith(f"to use a GPU install driver >= {target.min_driver}")
    assert by_name["NVIDIA container runtime"].status == "skip"
    assert exit_code(rows) == 0
    required, rows = check(runner, gpu=True)
    assert {required[f"driver for {t.name}"].status for t in CUDA} == {"fail"}
    assert required["NVIDIA container runtime"].status == "fail"
    assert exit_code(rows) == 1


def test_nvidia_smi_failing_counts_as_no_driver():
    broken = reply(returncode=9, stderr="NVIDIA-SMI has failed because it couldn't communicate")
    by_name, _ = check(healthy(smi=broken))
    assert "nvidia-smi failed: NVIDIA-SMI has failed" in by_name["driver for cuda12"].detail


def test_nvidia_runtime_from_toolkit_or_missing_with_gpu():
    no_runtime = reply(json.dumps({"DockerRootDir": "/data/docker", "Runtimes": {"runc": {}}}))
    by_name, _ = check(healthy(info=no_runtime, ctk=reply("NVIDIA Container Toolkit CLI 1.17")))
    assert by_name["NVIDIA container runtime"].detail.startswith("nvidia-ctk found")
    by_name, _ = check(healthy(info=no_runtime))
    row = by_name["NVIDIA container runtime"]
    assert row.status == "fail" and "containers cannot see the GPU" in row.detail
    assert "nvidia-ctk runtime configure --runtime=docker" in row.fix


def test_cpu_only_targets_skip_gpu_probes():
    runner = healthy()
    by_name, _ = check(runner, targets=[matrix.get("cpu")])
    assert not runner.ran("nvidia-smi")
    assert not any(name.startswith(("driver", "NVIDIA")) for name in by_name)
    assert "the largest build (cpu) needs ~4 GB" in by_name["free disk"].detail


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


def test_proxy_passed_as_build_args_and_password_hidden():
    env = {"HTTPS_PROXY": "http://me:secret@proxy.corp:3128", "no_proxy": "localhost,.corp"}
    row = check(env=env)[0]["proxy"]
    assert row.status == "ok" and "secret" not in row.detail
    assert "HTTPS_PROXY=http://me:***@proxy.corp:3128" in row.detail
    assert "no_proxy=localhost,.corp" in row.detail and "build args" in row.detail


def test_proxy_on_localhost_warns():
    row = check(env={"http_proxy": "http://127.0.0.1:3128"})[0]["proxy"]
    assert row.status == "warn" and "http_proxy points at localhost" in row.detail


@pytest.mark.parametrize(
    ("daemon_json", "status"),
    [(None, "warn"), ("{}", "warn"), ('{"default-shm-size": "64M"}', "warn"),
     ("not json", "warn"), ('{"default-shm-size": "2G"}', "ok")],
)  # fmt: skip
def test_shared_memory(daemon_json, status):
    files = {} if daemon_json is None else {"/etc/docker/daemon.json": daemon_json}
    row = check(files=files)[0]["container /dev/shm"]
    assert row.status == status
    if status == "warn":
        assert row.fix == (
            "torchenv passes --shm-size for you; "
            "for plain docker run use --shm-size=2g or --ipc=host"
        )


@pytest.mark.parametrize(
    ("text", "size"),
    [("64m", 64 * 2**20), ("2g", 2 * 2**30), ("1GiB", 2**30), ("512MB", 512 * 2**20),
     (67108864, 67108864), ("lots", None)],
)  # fmt: skip
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_ca_from_pip_config_and_env():
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    pip = reply(f":env:.cert='{bundle}'\nglobal.cert='{bundle}'\nglobal.timeout='60'\n")
    files = {**GOOD_FILES, bundle: "-----BEGIN CERTIFICATE-----"}
    row = check(healthy(pip=pip), files=files, env={"PIP_CERT": bundle})[0]["CA certificates"]
    assert row.status == "warn"
    assert f"{bundle} (PIP_CERT, pip config global.cert)" in row.detail
    assert row.fix.startswith(f"build with invoke build --ca-cert {bundle}")
    missing = check(env={"REQUESTS_CA_BUNDLE": "/nope.pem"})[0]["CA certificates"]
    assert "missing: /nope.pem (REQUESTS_CA_BUNDLE)" in missing.detail
    assert check()[0]["CA certificates"].status == "ok"


def test_render_aligns_and_shows_fixes():
    rows = [Row("a", "ok", "fine", "unused"), Row("longer name", "fail", "broken", "do this")]
    assert render(rows).splitlines() == [
        "check        status  detail",
        "a            ok      fine",
        "longer name  fail    broken",
        "                     fix: do this",
        "1 ok, 0 warn, 1 fail, 0 skip",
    ]
    assert exit_code(rows) == 1 and exit_code(rows[:1]) == 0


def test_main_prints_table_and_rejects_unknown_target(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "run_checks", lambda **kw: [Row("x", "warn", "careful", "fix")])
    assert doctor_cli.main(["--target", "cpu"]) == 0
    assert "x      warn    careful" in capsys.readouterr().out
    assert doctor_cli.main(["--target", "nope"]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err


@pytest.mark.engine
def test_real_doctor_on_this_machine():
    rows = run_checks()
    print(render(rows))
    by_name = {r.name: r for r in rows}
    assert by_name["Docker daemon"].status == "ok"
    assert by_name["BuildKit"].status == "ok"
    if doctor.probe_gpu(doctor.subprocess_runner).driver is None:  # no GPU on the dev/CI machines
        for target in CUDA:
            row = by_name[f"driver for {target.name}"]
            assert row.status == "warn", row
            assert "no NVIDIA driver/GPU found" in row.detail
            assert "GPU checks will skip" in row.detail and target.min_driver in row.fix


BASE = TARGETS[0].base_ref
NO_REGISTRY = (
    'error pinging v2 registry: Get "https://registry.example/v2/": dial tcp: no such host'
)


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


def test_gpu_fit_row_per_cuda_target_names_the_gpu_it_cannot_run_and_the_target_that_can():
    runner = healthy()
    fit_query = tuple(doctor.gpufit.QUERY)
    runner.answers = {**runner.answers, fit_query: reply("0, Tesla V100-SXM2-16GB, 7.0\n")}
    by_name, _ = check(runner)
    row = by_name["GPU fit of cuda13"]
    assert row.status == "fail" and "GPU 0 Tesla V100-SXM2-16GB is sm_70" in row.detail
    measured = [t.name for t in CUDA if t.cuda_archs]
    assert "cuda13" in measured and row.fix.startswith(("use ", "no target"))
    unmeasured = [t.name for t in CUDA if not t.cuda_archs]
    for name in unmeasured:
        assert by_name[f"GPU fit of {name}"].status == "skip"


def test_gpu_fit_ok_on_a_gpu_the_kernels_cover():
    runner = healthy()
    runner.answers = {**runner.answers, tuple(doctor.gpufit.QUERY): reply("0, NVIDIA H100, 9.0\n")}
    by_name, _ = check(runner)
    assert by_name["GPU fit of cuda13"].status == "ok"
    assert "sm_90" in by_name["GPU fit of cuda13"].detail
