"""Run the smoke suite inside a built image, through the docker SDK.

The container is always removed (Ctrl-C included); the JSON and JUnit reports are copied out of it
before removal, so no host directory needs to be writable by the container's user.

The run cannot hang: the logs are followed on a thread while the main thread waits for the
container with the request's timeout (the target's smoke_timeout_s by default). On expiry the
container is stopped and removed, the suite's partial JSON report (it rewrites it after each
check, naming the check now running) is copied out, and `TimedOut` says which check was running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchenv.engine.sdk import Container, DockerClient

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import hints
from torchenv.engine import labels
from torchenv.engine.containers import SHM_SIZE, follow, read_file, tracked, wait
from torchenv.engine.sdk import CallFailed, gpu_request, sdk_errors
from torchenv.errors import UserError
from torchenv.files import check_writable_folder, write_atomic
from torchenv.matrix import Target
from torchenv.run.suite import suite_command

REPORT_DIR = "/tmp/torchsmoke-report"
SMOKE_LABEL = labels.role_key("smoke")  # with the rest of labels.of("smoke", target)
TIMEOUT_EXIT = 124  # `invoke smoke`'s exit status when the suite ran out of time (as timeout(1))


class TimedOut(UserError):
    """The suite ran past its timeout; the message names the check that was running."""


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
    timeout_s: float | None = None  # None: the target's smoke_timeout_s

    @property
    def timeout(self) -> float:
        return self.target.smoke_timeout_s if self.timeout_s is None else self.timeout_s


def parse_args(text: str, flag: str = "--args") -> tuple[str, ...]:
    """--args as the shell would split it; UserError (one line) for an unbalanced quote."""
    try:
        return tuple(shlex.split(text or ""))
    except ValueError as exc:
        raise UserError(f"{flag} {text!r} cannot be split as a shell would: {exc}") from None


# Flags of a single-container smoke run that `--nodes` has no use for, and the reverse.
SINGLE_ONLY = ("quick", "args", "timeout", "require_gpu")
NODES_ONLY = ("nproc_per_node", "rdzv_port")


def check_flags(given: Iterable[str], nodes: bool) -> None:
    """`invoke smoke`'s flags that do not apply with (or without) --nodes: one line."""
    misplaced = [n for n in (SINGLE_ONLY if nodes else NODES_ONLY) if n in set(given)]
    if misplaced:
        flags = ", ".join("--" + n.replace("_", "-") for n in misplaced)
        verb = "does" if len(misplaced) == 1 else "do"
        why = "with --nodes (multi-node runs the ddp check)" if nodes else "without --nodes"
        raise UserError(f"{flags} {verb} not apply {why}: drop it, or add/remove --nodes")


def check_reports(reports: Path | None) -> None:
    """--reports must be a writable folder (or one that can be made): said before the suite runs,
    not after it."""
    if reports is not None:
        check_writable_folder(reports, "--reports")


def parse_timeout(value: object) -> float | None:
    """--timeout SECONDS: a positive number; None (or "") for the target's default."""
    if value is None or str(value).strip() == "":
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(
            f"--timeout {value!r} is not a positive number of seconds: e.g. --timeout 600"
        )
    return seconds


def smoke_args(req: SmokeRequest) -> list[str]:
    """The command run in the container: the target's expectations plus the user's options."""
    # The JSON report always: on a timeout it names the check that was running.
    return suite_command(
        req.target.smoke_expectations(), require_gpu=req.require_gpu, quick=req.quick,
        json_to=f"{REPORT_DIR}/smoke.json",
        junit_to=None if req.reports is None else f"{REPORT_DIR}/smoke.xml", extra=req.extra_args,
    )  # fmt: skip


def wants_gpu(req: SmokeRequest, engine_has_gpu_runtime: bool) -> bool:
    if req.require_gpu or req.gpu == "yes":
        return True
    if req.gpu == "no" or not req.target.is_cuda:
        return False
    return engine_has_gpu_runtime


def run_kwargs(req: SmokeRequest, gpu: bool) -> dict[str, Any]:
    """docker SDK `containers.create` arguments (pure, for the tests and --dry-run)."""
    kwargs = {
        "image": req.image,
        "command": smoke_args(req),
        "shm_size": SHM_SIZE,
        "labels": labels.of("smoke", req.target.name, req.target.image_repo),
        "environment": dict(req.env),
        "detach": True,
        # The suite needs no capability (DDP on loopback sockets, the dataloader's shm) and
        # never more privileges than it starts with.
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }
    # Created as the image's user, so the suite can write there.
    kwargs["entrypoint"] = ["bash", "-c", f'mkdir -p {REPORT_DIR} && exec "$@"', "smoke"]
    if gpu:
        kwargs["device_requests"] = [gpu_request()]
    return kwargs


def describe(kwargs: dict[str, Any]) -> str:
    """The equivalent docker CLI line, for --dry-run and logs."""
    parts = ["docker", "run", "--rm", f"--shm-size={kwargs['shm_size']}"]
    if "device_requests" in kwargs:
        parts.append("--gpus=all")
    parts += [f"--label={k}={v}" for k, v in kwargs["labels"].items()]
    parts += [f"--cap-drop={cap}" for cap in kwargs.get("cap_drop", ())]
    parts += [f"--security-opt={opt}" for opt in kwargs.get("security_opt", ())]
    if "entrypoint" in kwargs:
        parts += ["--entrypoint", kwargs["entrypoint"][0]]
        command = kwargs["entrypoint"][1:] + kwargs["command"]
    else:
        command = kwargs["command"]
    return shlex.join([*parts, kwargs["image"], *command])


def run(req: SmokeRequest, client: DockerClient, gpu: bool) -> int:
    """Run the suite, stream its output, copy the reports out; returns the suite's exit code.

    SIGTERM (a cancelled CI job) is handled like Ctrl-C: the container is removed either way.
    """
    kwargs = run_kwargs(req, gpu)
    with tracked(
        client, kwargs, image=req.image, target=req.target.name, role="smoke container"
    ) as container:
        try:
            with sdk_errors():
                container.start()
        except CallFailed as exc:
            text = exc.text
            if hints.gpu_start_failure(text):
                raise UserError(
                    f"this Docker engine cannot give the container a GPU ({text.strip()}): install "
                    f"the NVIDIA container toolkit, or pass --no-gpu to run the CPU checks only"
                ) from None
            raise UserError(f"cannot start the smoke container: {text}") from None
        # the stubs allow no image and no id; a created container always has both
        print(f"torchenv: testing {req.image} ({container.image.id[:19]})", flush=True)  # type: ignore[union-attr,index]
        follower = follow(container, _show)
        code = wait(container, req.timeout)
        if code is None:  # out of time: stop it, keep what the suite wrote, say where it was
            container.stop(timeout=5)
            follower.join(timeout=10)
            partial = _report_from(container)
            saved = _save_reports(req, container, ("json",))
            raise TimedOut(_timeout_line(req, partial, saved))
        follower.join(timeout=30)
        _save_reports(req, container, ("json", "xml"), say=True)
        return code


REPORT_PATHS = tuple(f"{REPORT_DIR}/smoke.{ext}" for ext in ("json", "xml"))


def _show(line: str) -> None:
    """Print a line of the suite's output, but those naming the container's report paths."""
    if not line.rstrip().endswith(REPORT_PATHS):  # the container's paths mean nothing here
        print(line, end="", flush=True)


def _report_from(container: Container) -> dict[str, Any] | None:
    data = read_file(container, f"{REPORT_DIR}/smoke.json")
    try:
        report = json.loads(data) if data else None
    except json.JSONDecodeError:
        return None
    return report if isinstance(report, dict) else None


def _save_reports(
    req: SmokeRequest, container: Container, exts: tuple[str, ...], say: bool = False
) -> Path | None:
    """Copy the reports to req.reports; the JSON report's host path, None when there is none."""
    if req.reports is None:
        return None
    req.reports.mkdir(parents=True, exist_ok=True)
    saved, copied = None, []
    for ext in exts:
        data = read_file(container, f"{REPORT_DIR}/smoke.{ext}")
        dest = req.reports / f"smoke-{req.target.name}.{ext}"
        if data is None:
            if say:
                print(f"torchenv: the suite wrote no smoke.{ext} report")
            continue
        write_atomic(dest, data)  # a reader never sees half a report
        saved = saved or dest
        copied.append(str(dest))
    if say and copied:
        print(f"torchenv: reports of {req.image}: {', '.join(copied)}")
    return saved


def _timeout_line(req: SmokeRequest, partial: dict[str, Any] | None, saved: Path | None) -> str:
    """The one line a timeout prints: which check was running, what is left."""
    running = (partial or {}).get("running")
    if partial is None:
        where = "before the suite's first check (it wrote no report)"
    elif running:
        where = f"while check {running!r} was running"
    else:
        where = "after its last check"
    done = len((partial or {}).get("checks", []))
    report = f"; partial report ({done} checks done): {saved}" if saved else ""
    return (
        f"smoke suite in {req.image} timed out after {req.timeout:g} s {where}: the container was "
        f"stopped and removed{report}; raise --timeout if it only needs longer"
    )
