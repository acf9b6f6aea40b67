"""Run the smoke suite inside a built image, through the docker SDK.

The container is always removed (Ctrl-C included); the JSON and JUnit reports are copied out of it
before removal, so no host directory needs to be writable by the container's user.
"""

from __future__ import annotations

import io
import shlex
import signal
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import labels
from torchenv.errors import UserError
from torchenv.matrix import Target

REPORT_DIR = "/tmp/torchsmoke-report"
SMOKE_LABEL = "io.torchenv.smoke"  # with the rest of labels.of("smoke", target)
SHM_SIZE = "2g"  # DataLoader workers need more than Docker's default 64 MB /dev/shm
TIMEOUT_S = 900


@dataclass(frozen=True)
class SmokeRequest:
    target: Target
    image: str
    gpu: str = "auto"  # auto: when the engine has an NVIDIA runtime | yes | no
    require_gpu: bool = False
    quick: bool = False
    extra_args: tuple[str, ...] = ()
    reports: Path | None = None  # where smoke-<target>.json/.xml go on the host
    env: dict[str, str] = field(default_factory=dict)


def smoke_args(req: SmokeRequest) -> list[str]:
    """The command run in the container: the target's expectations plus the user's options."""
    args = ["python", "-m", "torchsmoke", *req.target.smoke_expectations()]
    if req.require_gpu:
        args.append("--require-gpu")
    if req.quick:
        args.append("--quick")
    if req.reports is not None:
        args += ["--json", f"{REPORT_DIR}/smoke.json", "--junit", f"{REPORT_DIR}/smoke.xml"]
    return [*args, *req.extra_args]


def wants_gpu(req: SmokeRequest, engine_has_gpu_runtime: bool) -> bool:
    if req.require_gpu or req.gpu == "yes":
        return True
    if req.gpu == "no" or not req.target.is_cuda:
        return False
    return engine_has_gpu_runtime


def run_kwargs(req: SmokeRequest, gpu: bool) -> dict:
    """docker SDK `containers.create` arguments (pure, for the tests and --dry-run)."""
    kwargs = {
        "image": req.image,
        "command": smoke_args(req),
        "shm_size": SHM_SIZE,
        "labels": labels.of("smoke", req.target.name),
        "environment": dict(req.env),
        "detach": True,
    }
    if req.reports is not None:
        # Created as the image's user, so the suite can write there.
        kwargs["entrypoint"] = ["bash", "-c", f'mkdir -p {REPORT_DIR} && exec "$@"', "smoke"]
    if gpu:
        import docker.types

        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return kwargs


def describe(kwargs: dict) -> str:
    """The equivalent docker CLI line, for --dry-run and logs."""
    parts = ["docker", "run", "--rm", f"--shm-size={kwargs['shm_size']}"]
    if "device_requests" in kwargs:
        parts.append("--gpus=all")
    parts += [f"--label={k}={v}" for k, v in kwargs["labels"].items()]
    if "entrypoint" in kwargs:
        parts += ["--entrypoint", kwargs["entrypoint"][0]]
        command = kwargs["entrypoint"][1:] + kwargs["command"]
    else:
        command = kwargs["command"]
    return shlex.join([*parts, kwargs["image"], *command])


def has_gpu_runtime(client) -> bool:
    runtimes = client.info().get("Runtimes") or {}
    return "nvidia" in runtimes


def _copy_out(container, src: str, dest: Path) -> None:
    stream, _ = container.get_archive(src)
    data = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=data) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        if member is not None:
            dest.write_bytes(member.read())


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(req: SmokeRequest, client, gpu: bool) -> int:
    """Run the suite, stream its output, copy the reports out; returns the suite's exit code.

    SIGTERM (a cancelled CI job) is handled like Ctrl-C: the container is removed either way.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(req, client, gpu)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(req: SmokeRequest, client, gpu: bool) -> int:
    import docker.errors

    kwargs = run_kwargs(req, gpu)
    try:
        container = client.containers.create(**kwargs)
    except docker.errors.ImageNotFound:
        raise UserError(
            f"image {req.image} is not built yet: run `invoke build --target {req.target.name}`"
        ) from None
    except docker.errors.APIError as exc:
        raise UserError(f"cannot create the smoke container: {exc.explanation or exc}") from None
    try:
        try:
            container.start()
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "capabilities: [[gpu]]" in text or "nvidia" in text.lower():
                raise UserError(
                    f"this Docker engine cannot give the container a GPU ({text.strip()}): install "
                    f"the NVIDIA container toolkit, or pass --no-gpu to run the CPU checks only"
                ) from None
            raise UserError(f"cannot start the smoke container: {text}") from None
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="", flush=True)
        code = int(container.wait(timeout=TIMEOUT_S).get("StatusCode", 1))
        if req.reports is not None:
            req.reports.mkdir(parents=True, exist_ok=True)
            for ext in ("json", "xml"):
                try:
                    _copy_out(
                        container,
                        f"{REPORT_DIR}/smoke.{ext}",
                        req.reports / f"smoke-{req.target.name}.{ext}",
                    )
                except docker.errors.NotFound:
                    print(f"torchenv: the suite wrote no smoke.{ext} report")
        return code
    finally:
        container.remove(force=True)
