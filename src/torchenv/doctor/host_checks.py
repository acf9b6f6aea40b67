"""The doctor's checks of the host itself (`invoke doctor`): the NVIDIA driver against each
CUDA target, the containers' shared memory, proxies and the CA bundle pip uses.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from torchbuild import versions
from torchenv.credentials import PROXY_VARS, redacted
from torchenv.doctor import gpufit
from torchenv.doctor.engine_checks import PROBE_TIMEOUT, GiB, Row
from torchenv.matrix import Target
from torchenv.runner import NOT_FOUND, Runner

SHM_DEFAULT = "64 MB"  # what Docker gives a container's /dev/shm without --shm-size / --ipc=host
SHM_ENOUGH = 1 * GiB  # a daemon-wide default-shm-size at least this large is fine for DataLoaders
DAEMON_JSON = "/etc/docker/daemon.json"

# Where pip gets a CA bundle, in the order it prefers them: PIP_CERT, pip config's cert, then
# the variables requests and Python's ssl read.
CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PIP_CONFIG_LIST = (sys.executable, "-m", "pip", "config", "list")
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader")


# --- NVIDIA driver against each CUDA target ----------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    driver: str | None  # None: no usable driver
    names: tuple[str, ...] = ()
    why: str = ""  # why there is no driver


def probe_gpu(runner: Runner) -> Gpu:
    result = runner(NVIDIA_SMI, timeout=PROBE_TIMEOUT)
    if result.returncode == NOT_FOUND:
        return Gpu(None, why="nvidia-smi not found")
    if not result.ok:
        return Gpu(None, why=f"nvidia-smi failed: {result.first_error_line()}")
    rows = [line.split(",", 1) for line in result.stdout.splitlines() if line.strip()]
    if not rows:
        return Gpu(None, why="nvidia-smi lists no GPU")
    names = tuple(row[1].strip() if len(row) > 1 else "GPU" for row in rows)
    return Gpu(rows[0][0].strip(), names)


def driver_rows(
    cuda_targets: Sequence[Target], gpu: Gpu, require_gpu: bool, all_cuda: Sequence[Target]
) -> list[Row]:
    rows = []
    for target in cuda_targets:
        name = f"driver for {target.name}"
        minimum = target.min_driver or "0"
        if gpu.driver is None:
            rows.append(
                Row(
                    name,
                    "fail" if require_gpu else "warn",
                    f"no NVIDIA driver/GPU found ({gpu.why}): CUDA targets build fine but "
                    "their GPU checks will skip",
                    f"to use a GPU install driver >= {minimum} (CUDA {target.cuda})",
                )
            )
            continue
        gpus = ", ".join(sorted(set(gpu.names)))
        if versions.at_least(gpu.driver, minimum):
            rows.append(
                Row(name, "ok", f"driver {gpu.driver} >= {minimum} (CUDA {target.cuda}); {gpus}")
            )
            continue
        fits = [t.name for t in all_cuda if versions.at_least(gpu.driver, t.min_driver or "0")]
        other = f", or use {' / '.join(fits)}" if fits else ""
        rows.append(
            Row(
                name,
                "fail",
                f"driver {gpu.driver} < {minimum} that CUDA {target.cuda} needs: "
                f"its containers will not start on {gpus}",
                f"upgrade the NVIDIA driver to >= {minimum}{other}",
            )
        )
    return rows


def fit_rows(
    cuda_targets: Sequence[Target], gpus: Sequence[gpufit.HostGpu], known: Sequence[Target]
) -> list[Row]:
    """A row per CUDA target: whether its torch has kernels for every GPU of this host."""
    if not gpus:
        return []  # the driver rows already say there is no GPU
    fits = [gpufit.fit(t, gpus, known) for t in cuda_targets]
    return [Row(f"GPU fit of {f.target}", f.status, f.detail, f.fix) for f in fits]


# --- container shared memory, proxies, CA --------------------------------------------------------


def parse_size(text: str | int) -> int | None:
    """Bytes in a Docker size ("2g", "64m", "1GB", "512MiB", 67108864); None when malformed."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", str(text), re.IGNORECASE)
    if not match:
        return None
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024**power)


def shm_row(read_file: Callable[[str], str | None]) -> Row:
    name = "container /dev/shm"
    fix = "torchenv passes --shm-size for you; for plain docker run use --shm-size=2g or --ipc=host"
    why = "PyTorch DataLoader workers share batches through /dev/shm"
    text = read_file(DAEMON_JSON)
    if text is None:
        return Row(
            name, "warn", f"Docker's default {SHM_DEFAULT} ({DAEMON_JSON} absent); {why}", fix
        )
    try:
        setting = json.loads(text).get("default-shm-size")
    except (json.JSONDecodeError, AttributeError):
        return Row(name, "warn", f"{DAEMON_JSON} is not a JSON object; default {SHM_DEFAULT}", fix)
    if setting is None:
        return Row(
            name, "warn", f"Docker's default {SHM_DEFAULT} (no default-shm-size); {why}", fix
        )
    size = parse_size(setting)
    if size is None:
        return Row(
            name, "warn", f"default-shm-size {setting!r} in {DAEMON_JSON} is unreadable", fix
        )
    if size < SHM_ENOUGH:
        return Row(name, "warn", f"default-shm-size {setting} in {DAEMON_JSON}; {why}", fix)
    return Row(name, "ok", f"default-shm-size {setting} in {DAEMON_JSON}")


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return False
    return host == "localhost" or host.startswith("127.") or host == "::1"


def proxy_row(environ: Mapping[str, str]) -> Row:
    found = {}
    for var in PROXY_VARS:
        for key in (var, var.lower()):
            if environ.get(key):
                found[key] = environ[key]
    if not found:
        return Row(
            "proxy", "ok", "no HTTP(S)_PROXY/NO_PROXY set: builds reach the network directly"
        )
    shown = ", ".join(
        f"{k}={v if k.lower() == 'no_proxy' else redacted(v)}" for k, v in found.items()
    )
    detail = f"{shown}; torchenv passes these to builds as build args"
    local = [k for k, v in found.items() if k.lower() != "no_proxy" and _is_loopback(v)]
    if local:
        return Row(
            "proxy",
            "warn",
            f"{detail}, but {', '.join(local)} points at localhost, which in a build "
            "container is the container itself",
            "point the proxy at an address containers can reach (e.g. the docker0 bridge "
            "172.17.0.1), or run the proxy there",
        )
    return Row("proxy", "ok", detail)


def _pip_config_certs(runner: Runner) -> list[tuple[str, str]]:
    result = runner(PIP_CONFIG_LIST, timeout=PROBE_TIMEOUT)
    certs = []
    for line in result.stdout.splitlines() if result.ok else []:
        match = re.fullmatch(r"\s*(\S*?)\.cert\s*=\s*'?(.*?)'?\s*", line)
        if match and not match.group(1).startswith(":env:"):  # :env: is PIP_CERT, seen below
            certs.append((f"pip config {match.group(1)}.cert", match.group(2)))
    return certs


CA_SETTING = "--ca-cert, torchenv.ca_cert or INVOKE_TORCHENV_CA_CERT"


def ca_row(
    runner: Runner,
    environ: Mapping[str, str],
    read_file: Callable[[str], str | None],
    ca_cert: str | None = None,
) -> Row:
    """What pip here trusts, and whether builds get it: `ca_cert` is the bundle builds are given
    already (the build's ca_cert option, from its flag or invoke's configuration)."""
    if ca_cert:
        return _configured_ca_row(ca_cert, read_file)
    sources = [("PIP_CERT", environ.get("PIP_CERT", ""))]
    sources += _pip_config_certs(runner)
    sources += [(var, environ.get(var, "")) for var in CA_VARS]
    by_path: dict[str, list[str]] = {}
    for source, path in sources:
        if path:
            by_path.setdefault(path, []).append(source)
    if not by_path:
        detail = "pip uses its default CA bundle (no PIP_CERT, pip config cert, "
        return Row("CA certificates", "ok", detail + "REQUESTS_CA_BUNDLE or SSL_CERT_FILE)")
    path = next(iter(by_path))  # pip's own setting first: the one pip here uses
    said = "; ".join(f"{p} ({', '.join(s)})" for p, s in by_path.items())
    if read_file(path) is None:
        fix = f"fix or unset the setting that names {path}"
        return Row("CA certificates", "warn", f"CA bundle set but missing: {said}", fix)
    return Row(
        "CA certificates",
        "warn",
        f"pip here trusts {said}: behind a TLS-inspecting proxy, pip in a build needs it too",
        f"build with invoke build --ca-cert {path} (passed as a BuildKit secret, never stored "
        "in a layer)",
    )


def _configured_ca_row(ca_cert: str, read_file: Callable[[str], str | None]) -> Row:
    text = read_file(ca_cert)
    if text is None:
        return Row(
            "CA certificates", "fail", f"builds are given {ca_cert} ({CA_SETTING}), which is missing",
            f"fix the path, or unset the setting that names it ({CA_SETTING})",
        )  # fmt: skip
    if "-----BEGIN CERTIFICATE-----" not in text:
        return Row(
            "CA certificates", "fail",
            f"builds are given {ca_cert} ({CA_SETTING}), which is not a PEM certificate bundle",
            "name a PEM bundle (its certificates begin with -----BEGIN CERTIFICATE-----)",
        )  # fmt: skip
    return Row(
        "CA certificates", "ok",
        f"builds are given {ca_cert} ({CA_SETTING}), as a BuildKit secret never stored in a layer",
    )  # fmt: skip
