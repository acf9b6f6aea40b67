"""Image builds: validate the request, construct the exact command, run it, explain failures.

Command construction is pure (`build_command`), so tests assert the exact command lines and
`invoke build --dry-run` prints them without an engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import secrets
import shlex
import subprocess
import sys
import tarfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import envfile, pins, render
from torchenv import uv as uvs
from torchenv.engine import Engine
from torchenv.errors import UserError
from torchenv.lock import (
    DEFAULT_INSTALLER,
    INSTALLERS,
    explain_hash_mismatch,
    is_pinned,
    unreachable_reason,
)
from torchenv.matrix import ROOT, Target

WHEELHOUSE = ROOT / "wheelhouse"
# Passed through by name only (`--build-arg NAME`): the value comes from the environment, and
# Docker keeps these predefined proxy arguments out of the image history.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
MANIFEST_PATH = "/opt/torchenv/manifest.json"
MANIFEST_LABEL = "io.torchenv.manifest.sha256"


@dataclass(frozen=True)
class BuildRequest:
    target: Target
    flavor: str = "runtime"
    installer: str = DEFAULT_INSTALLER
    ca_cert: Path | None = None
    wheelhouse: Path | None = None
    base_image: str | None = None  # None: the matrix's digest-pinned base
    allow_unpinned_base: bool = False
    index_url: str | None = None  # a mirror replacing the target's pip index
    conda_channel_alias: str | None = None
    no_cache: bool = False
    uid: int = 1000
    gid: int = 1000
    tag: str | None = None  # None: the matrix's image name for the flavor

    @property
    def image(self) -> str:
        return self.tag or self.target.image(self.flavor)

    @property
    def base(self) -> str:
        return self.base_image or self.target.base_ref


def validate(req: BuildRequest) -> None:
    """Refuse, before anything is built, a request that cannot work; UserError says why."""
    t = req.target
    pins.check(t)
    if req.installer not in INSTALLERS:
        raise UserError(
            f"unknown installer {req.installer!r}: choose one of {', '.join(INSTALLERS)}"
        )
    t.image(req.flavor)  # validates the flavor
    parsed = envfile.parse(t.env_file)
    expected = envfile.parse_text(render.env_file(t), str(t.env_file))
    if parsed != expected:
        raise UserError(
            f"{t.env_file.relative_to(ROOT)} does not match targets.toml: run `invoke generate`"
        )
    if not t.dockerfile.exists() or t.dockerfile.read_text() != render.dockerfile(t):
        raise UserError(f"docker/{t.dockerfile.name} is missing or stale: run `invoke generate`")
    if not is_pinned(req.base) and not req.allow_unpinned_base:
        raise UserError(
            f"base image {req.base} is given by tag alone: pin it by digest (NAME@sha256:...) "
            f"or pass --allow-unpinned-base"
        )
    if req.ca_cert is not None:
        _check_ca(req.ca_cert)
    if req.wheelhouse is not None and not any(Path(req.wheelhouse).glob("*.whl")):
        raise UserError(f"--wheelhouse {req.wheelhouse}: no *.whl files there")
    if req.installer == "uv":
        pin = uvs.read_pin()
        if req.wheelhouse is not None:
            uvs.check_wheelhouse(req.wheelhouse, pin)


def _check_ca(path: Path) -> None:
    try:
        head = Path(path).read_text(errors="replace")[:100_000]
    except OSError as exc:
        raise UserError(f"--ca-cert {path}: cannot read it ({exc.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in head:
        raise UserError(f"--ca-cert {path}: not a PEM certificate bundle (no BEGIN CERTIFICATE)")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def provenance() -> dict[str, str]:
    """Values for the OCI labels: source, revision (with -dirty), created (UTC)."""
    revision = _git("rev-parse", "HEAD") or "unknown"
    if revision != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    return {
        "SOURCE": _git("remote", "get-url", "origin") or "local",
        "REVISION": revision,
        "CREATED": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def build_command(
    req: BuildRequest,
    engine: Engine,
    labels: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The exact build command and the extra environment it needs."""
    environ = os.environ if environ is None else environ
    prefix, env = engine.build_prefix()
    t = req.target
    argv = [
        *prefix,
        "--progress=plain",
        "--file", str(t.dockerfile.relative_to(ROOT)),
        "--target", req.flavor,
        "--tag", req.image,
        "--build-arg", f"INSTALLER={req.installer}",
        "--build-arg", f"USER_UID={req.uid}",
        "--build-arg", f"USER_GID={req.gid}",
    ]  # fmt: skip
    if req.base_image:
        argv += ["--build-arg", f"BASE_IMAGE={req.base_image}"]
    if req.index_url:
        argv += ["--build-arg", f"TORCHENV_INDEX_URL={req.index_url}"]
    if req.conda_channel_alias:
        argv += ["--build-arg", f"CONDA_CHANNEL_ALIAS={req.conda_channel_alias}"]
    argv += [arg for var in PROXY_VARS if var in environ for arg in ("--build-arg", var)]
    if req.ca_cert is not None:
        argv += ["--secret", f"id=ca_cert,src={Path(req.ca_cert).resolve()}"]
    for key, value in (labels or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    if req.no_cache:
        argv.append("--no-cache")
    argv.append(".")
    return argv, env


def label_command(engine: Engine, image: str, digest: str) -> list[str]:
    """Adds the manifest digest label: a metadata-only build on top of the built image."""
    prefix, _ = engine.build_prefix()
    return [*prefix, "--quiet", "--label", f"{MANIFEST_LABEL}={digest}", "--tag", image, "-"]


def label_dockerfile(image: str) -> str:
    return f"FROM {image}\n"


def manifest_read_commands(engine: Engine, image: str, name: str) -> list[list[str]]:
    """Copy the manifest out of a created, never started container (no process, no network:
    a third of the time `docker run` takes), then remove the container."""
    return [
        [engine.client, "create", "--name", name, image],
        [engine.client, "cp", f"{name}:{MANIFEST_PATH}", "-"],
        [engine.client, "rm", "--force", name],
    ]


def format_command(argv: list[str], env: dict[str, str]) -> str:
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)])


TLS_HINT = (
    "TLS verification failed: behind a TLS-inspecting proxy pass --ca-cert PATH "
    "(for example /etc/ssl/certs/ca-certificates.crt)"
)
# Network failures are recognised by the same table the lock task uses (lock.unreachable_reason);
# they come first, because pip also prints "No matching distribution" after them.
NETWORK_HINT = (
    "cannot reach the package index ({reason}): set HTTPS_PROXY/NO_PROXY, use --index-url "
    "MIRROR, or --wheelhouse DIR for an offline build"
)
NO_SUCH_VERSION = (
    "the index has no such version: check the pins (invoke list), or point --index-url at a "
    "mirror that has them"
)
# What else a failed build printed -> the likely cause and what to do; the first match wins.
_DIAGNOSES = (
    ("No matching distribution found",
     NO_SUCH_VERSION),
    ("was not found in the provided package locations",  # uv, offline
     "the wheelhouse lacks a locked package: fill it with pip download --no-deps -d DIR -r "
     "envs/TARGET.pip.lock.txt"),
    ("was not found in the package registry",  # uv
     NO_SUCH_VERSION),
    ("failed to resolve source metadata",
     "cannot pull the base image: no registry reachable? pass --base-image with a local image "
     "(and --allow-unpinned-base if it has no digest)"),
    ("pull access denied",
     "cannot pull the base image: pass --base-image with an image you have locally"),
    ("buildx component is missing",
     "this docker client needs the buildx plugin for BuildKit: install it, or use engine "
     "20.10's own client /usr/bin/docker"),
)  # fmt: skip


def diagnose(output: str) -> str | None:
    """The likely cause of a failed build, from what it printed; None when unknown."""
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in output:
        return explain_hash_mismatch(output)
    if uv_mismatch := uvs.explain_hash_mismatch(output):
        return uv_mismatch
    reason = unreachable_reason(output)
    if reason == "TLS verification failed":
        return TLS_HINT
    if reason:
        return NETWORK_HINT.format(reason=reason)
    return next((hint for needle, hint in _DIAGNOSES if needle in output), None)


def stream(
    argv: list[str], env: dict[str, str], cwd: Path = ROOT, tail: int = 400
) -> tuple[int, str]:
    """Run a command, echoing its output live; returns (exit code, the last lines)."""
    lines: deque[str] = deque(maxlen=tail)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
    except FileNotFoundError:
        raise UserError(
            f"{argv[0]} not found: install Docker (apt-get install docker.io)"
        ) from None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
        return proc.wait(), "".join(lines)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
        raise


@dataclass
class StagedWheelhouse:
    """Links the wheels of --wheelhouse DIR into wheelhouse/ for one build, then removes them."""

    source: Path | None
    linked: list[Path] = field(default_factory=list)

    def __enter__(self) -> StagedWheelhouse:
        if self.source is None or Path(self.source).resolve() == WHEELHOUSE.resolve():
            return self
        for wheel in sorted(Path(self.source).glob("*.whl")):
            dest = WHEELHOUSE / wheel.name
            if dest.exists():
                continue
            try:
                os.link(wheel, dest)
            except OSError:
                dest.symlink_to(wheel.resolve())  # different filesystem: BuildKit copies it
            self.linked.append(dest)
        return self

    def __exit__(self, *exc: object) -> None:
        for path in self.linked:
            path.unlink(missing_ok=True)


def run_build(req: BuildRequest, engine: Engine, dry_run: bool = False) -> list[str]:
    """Build the image and label it with its manifest digest; returns the commands run."""
    validate(req)
    argv, env = build_command(req, engine, labels=provenance())
    commands = [format_command(argv, env)]
    reads = manifest_read_commands(engine, req.image, "NAME")
    commands += [shlex.join(argv) for argv in reads]
    commands[-1] += "   # then label the image with the manifest's sha256"
    if dry_run:
        return commands
    with StagedWheelhouse(req.wheelhouse):
        print(f"torchenv: {commands[0]}", flush=True)
        code, output = stream(argv, env)
    if code != 0:
        cause = diagnose(output)
        raise UserError(
            f"building {req.image} failed (exit {code})"
            + (f": {cause}" if cause else ": see the build output above")
        )
    digest = _manifest_digest(engine, req.image)
    prefix_env = engine.build_prefix()[1]
    done = subprocess.run(
        label_command(engine, req.image, digest), input=label_dockerfile(req.image),
        env={**os.environ, **prefix_env}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"labelling {req.image} failed: {last}")
    print(f"torchenv: built {req.image} ({MANIFEST_LABEL}={digest[:12]}...)")
    return commands


def _manifest_digest(engine: Engine, image: str) -> str:
    create, copy, remove = manifest_read_commands(
        engine, image, f"torchenv-manifest-{os.getpid()}-{secrets.token_hex(4)}"
    )
    done = subprocess.run(create, capture_output=True, check=False)
    try:
        if done.returncode == 0:
            done = subprocess.run(copy, capture_output=True, check=False)
        content = None
        if done.returncode == 0:
            with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
                member = tar.extractfile(tar.getmembers()[0])
                content = member.read() if member else None
    finally:
        subprocess.run(remove, capture_output=True, check=False)
    if content is None:
        why = done.stderr.decode(errors="replace").strip()[:200]
        raise UserError(f"{image} has no readable {MANIFEST_PATH}: {why}")
    return hashlib.sha256(content).hexdigest()
