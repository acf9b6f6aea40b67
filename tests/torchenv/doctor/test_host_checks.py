"""The doctor's host checks: the NVIDIA driver against each CUDA target, shared memory, proxies
and the CA bundle, against a host answered by fakes."""

import json

import pytest
from tests.support.fakehost import (
    CUDA,
    GOOD_FILES,
    check,
    healthy,
    smi,
)  # fmt: skip
from tests.support.fakerunner import reply

from torchbuild.versions import parse as version_tuple
from torchenv import matrix
from torchenv.doctor.checkup import exit_code, parse_size


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


def test_cpu_only_targets_skip_gpu_probes():
    runner = healthy()
    by_name, _ = check(runner, targets=[matrix.get("cpu")])
    assert not runner.ran("nvidia-smi")
    assert not any(name.startswith(("driver", "NVIDIA")) for name in by_name)
    assert "the largest build (cpu) needs ~4 GB" in by_name["free disk"].detail


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


def test_a_ca_bundle_builds_are_given_already_is_not_asked_for_again():
    """The doctor told you to pass --ca-cert when INVOKE_TORCHENV_CA_CERT already named it."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    pip = reply(f"global.cert='{bundle}'\n")
    files = {**GOOD_FILES, bundle: "-----BEGIN CERTIFICATE-----\n"}
    row = check(healthy(pip=pip), files=files, ca_cert=bundle)[0]["CA certificates"]
    assert row.status == "ok" and row.fix == ""
    assert row.detail.startswith(f"builds are given {bundle} (--ca-cert, torchenv.ca_cert or ")
    missing = check(healthy(pip=pip), files=files, ca_cert="/nope.pem")[0]["CA certificates"]
    assert missing.status == "fail" and "/nope.pem (" in missing.detail
    assert "which is missing" in missing.detail
    files["/not-pem.txt"] = "hello"
    not_pem = check(files=files, ca_cert="/not-pem.txt")[0]["CA certificates"]
    assert not_pem.status == "fail" and "not a PEM certificate bundle" in not_pem.detail
