"""Image builds: validate the request, construct the exact command, run it, explain failures.

Command construction is pure (`build_command`), so tests assert the exact command lines and
`invoke build --dry-run` prints them without an engine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import re
import secrets
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchbuild import envfile
from torchenv import credentials, matrix
from torchenv.credentials import BUILD_PROXY_VARS
from torchenv.engine import Engine, containers, images, labels
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.engine.labels import CREATED_LABEL, ENV_REPORT_PATH, MANIFEST_LABEL, MANIFEST_PATH
from torchenv.errors import UserError
from torchenv.hints import diagnose_build
from torchenv.image import package as projectpkg
from torchenv.image import render
from torchenv.image import uv as uvs
from torchenv.image.context import BuildContext
from torchenv.lock import uv_resolver
from torchenv.matrix import DEFAULT_INSTALLER, INSTALLERS, Target, pins
from torchenv.matrix.digests import is_pinned
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

ARCHS_LABEL = labels.CUDA_ARCHS


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

    @functools.cached_property
    def index(self) -> credentials.IndexUrl | None:
        """The index URL, parsed once for the whole build (UserError when malformed)."""
        return credentials.parse_index_url(self.index_url) if self.index_url else None

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
    parsed = t.read_env()
    expected = envfile.parse_text(render.env_file(t), str(t.env_file))
    if parsed != expected:
        raise UserError(
            f"{t.env_file.relative_to(t.root)} does not match targets.toml: run `invoke generate`"
        )
    if not t.dockerfile.exists() or t.dockerfile.read_text() != render.dockerfile(t):
        raise UserError(
            f"{t.dockerfile.relative_to(t.root)} is missing or stale: run `invoke generate`"
        )
    if not is_pinned(req.base) and not req.allow_unpinned_base:
        raise UserError(
            f"base image {req.base} is given by tag alone: pin it by digest (NAME@sha256:...) "
            f"or pass --allow-unpinned-base"
        )
    _check_ids(req.uid, req.gid)
    _check_dockerignore(t.root / ".dockerignore", package=_package(req))
    if req.ca_cert is not None:
        _check_ca(req.ca_cert)
    _ = req.index  # parsed here, once: a malformed URL is refused before anything runs
    if req.conda_channel_alias is not None:
        credentials.refuse_credentials(req.conda_channel_alias, "--conda-channel-alias")
    if req.wheelhouse is not None and not any(Path(req.wheelhouse).glob("*.whl")):
        raise UserError(f"--wheelhouse {req.wheelhouse}: no *.whl files there")
    if req.installer == "uv":
        pin = uvs.read_pin()
        if req.wheelhouse is not None:
            uvs.check_wheelhouse(req.wheelhouse, pin)


def _package(req: BuildRequest) -> bool:
    """Whether the image's last layer is the project's own package (the runtime flavor only: a
    dev container installs it editable from the workspace)."""
    root = req.target.root
    return req.flavor == "runtime" and projectpkg.enabled(root, matrix.project(root))


def _check_dockerignore(path: Path, package: bool = False) -> None:
    """A .dockerignore that leaves everything out (`*`) must let the staged locks in, and the
    project's wheel when its package goes into the image."""
    try:
        lines = {line.strip() for line in path.read_text().splitlines()}
    except OSError:
        return
    if "*" not in lines or "!.torchenv/" in lines:
        return
    staged = [("locks", "the locks the build stages")]
    if package:
        staged.append(("package", "the project's wheel"))
    for folder, what in staged:
        if not lines & {f"!.torchenv/{folder}/", f"!.torchenv/{folder}"}:
            raise UserError(
                f".dockerignore keeps .torchenv/{folder}/ ({what}) out of the build context: add "
                f"the line !.torchenv/{folder}/ to it (torchenv init writes it so)"
            )


ENV_GID = 2000  # the image's torchenv group, owner of /opt/env (the Dockerfile template's ENV_GID)
MAX_ID = 2**31 - 1  # Linux IDs are 32-bit, but 2**31 and above break tools (signed) and -1 is none


def _check_ids(uid: int, gid: int) -> None:
    """The image user's IDs: 1..2**31-1; not root's 0 (the image's user is not root), and the
    group not the environment's group (groupadd would fail on a GID in use)."""
    for flag, value in (("--uid", uid), ("--gid", gid)):
        if not 1 <= value <= MAX_ID:
            raise UserError(f"{flag} {value} is out of range: give an ID from 1 to {MAX_ID}")
    if gid == ENV_GID:
        raise UserError(
            f"--gid {gid} is the image's environment group (torchenv, {ENV_GID}): give another"
        )


def _check_ca(path: Path) -> None:
    if any(ch in f"{path}{Path(path).resolve()}" for ch in ",\"'\n\r"):
        # The path goes into `--secret id=ca_cert,src=PATH`, a comma-separated list: a comma or a
        # quote there would change the secret's spec.
        raise UserError(
            f"--ca-cert {str(path)!r}: the path holds a comma, quote or newline, which the "
            "build's secret spec cannot carry: copy the bundle to a plain path"
        )
    try:
        head = Path(path).read_text(errors="replace")[:100_000]
    except OSError as exc:
        raise UserError(f"--ca-cert {path}: cannot read it ({exc.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in head:
        raise UserError(f"--ca-cert {path}: not a PEM certificate bundle (no BEGIN CERTIFICATE)")


def provenance(root: Path, runner: Runner = subprocess_runner) -> dict[str, str]:
    """Values for the OCI labels of the project at `root`: source, revision (with -dirty),
    created (UTC)."""

    def git(*args: str) -> str:
        done = runner(["git", *args], cwd=root, timeout=10)
        return done.stdout.strip() if done.ok else ""

    revision = git("rev-parse", "HEAD") or "unknown"
    if revision != "unknown" and git("status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    return {
        # The remote's public part only: a CI remote carries a token (https://ci-token:T@host/r).
        "SOURCE": credentials.public_url(git("remote", "get-url", "origin")) or "local",
        "REVISION": revision,
        "CREATED": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def build_command(
    req: BuildRequest,
    engine: Engine,
    labels: dict[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    index_secret: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The exact build command and the extra environment it needs.

    An index URL with credentials is passed without them as a build argument, and whole as the
    BuildKit secret `index_url` read from `index_secret` (see torchenv.credentials)."""
    environ = os.environ if environ is None else environ
    prefix, env = engine.build_prefix()
    t = req.target
    argv = [
        *prefix,
        "--progress=plain",
        "--file", str(t.dockerfile.relative_to(t.root)),
        "--target", req.flavor,
        "--tag", req.image,
        "--build-arg", f"INSTALLER={req.installer}",
        "--build-arg", f"USER_UID={req.uid}",
        "--build-arg", f"USER_GID={req.gid}",
    ]  # fmt: skip
    if req.base_image:
        argv += ["--build-arg", f"BASE_IMAGE={req.base_image}"]
    index = req.index
    if index is not None:
        argv += ["--build-arg", f"TORCHENV_INDEX_URL={index.public}"]
        if index.has_credentials:
            src = index_secret or "<a private temporary file holding the URL>"
            argv += ["--secret", f"id={credentials.SECRET_ID},src={src}"]
    if req.conda_channel_alias:
        argv += ["--build-arg", f"CONDA_CHANNEL_ALIAS={req.conda_channel_alias}"]
    argv += [arg for var in BUILD_PROXY_VARS if var in environ for arg in ("--build-arg", var)]
    if req.ca_cert is not None:
        argv += ["--secret", f"id=ca_cert,src={Path(req.ca_cert).resolve()}"]
    for key, value in (labels or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    if req.no_cache:
        argv.append("--no-cache")
    argv.append(".")
    return argv, env


def label_command(
    engine: Engine, image: str, digest: str, cuda_archs: Sequence[str] = (), project: str = ""
) -> tuple[list[str], dict[str, str]]:
    """Adds the label with the manifest file's sha256, the GPU architectures torch has kernels
    for (measured at build time: the env report's arch_list) and torchenv's own labels (`invoke
    clean` finds the image by them): a metadata-only build on top of the built image, named by
    its ID (label_dockerfile). BuildKit cannot build `FROM <image id>` (moby/buildkit#1105) and
    would look a tag up on a registry (a docker-container builder pulls it from Docker Hub), so
    this step runs the engine's own builder, which takes the local image by ID and pulls nothing."""
    own = labels.cli_args(labels.of_image(image, project or None))
    archs = ["--label", f"{ARCHS_LABEL}={' '.join(cuda_archs)}"] if cuda_archs else []
    argv = [
        engine.client,
        "build",
        "--quiet",
        "--label",
        f"{MANIFEST_LABEL}={digest}",
        *archs,
        *own,
    ]
    return [*argv, "--tag", image, "-"], {"DOCKER_BUILDKIT": "0"}


def label_dockerfile(image_id: str) -> str:
    return f"FROM {image_id}\n"


def manifest_read_commands(
    engine: Engine, image: str, name: str, folder: str, target: str = "", project: str = ""
) -> list[list[str]]:
    """Copy the manifest and the env report into `folder` out of a created, never started
    container (no process, no network: a third of the time `docker run` takes), then remove it.
    The container carries torchenv's labels (an interrupt between create and rm leaves what
    `invoke clean` finds) and is made from the local image only (`--pull never`)."""
    own = labels.cli_args(labels.of("manifest", target, project or None)) if target else []
    copies = [
        (MANIFEST_PATH, f"{folder}/manifest.json"),
        (ENV_REPORT_PATH, f"{folder}/env-report.json"),
    ]
    return containers.copy_out_commands(engine.client, image, name, copies, own)


def format_command(argv: list[str], env: dict[str, str]) -> str:
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)])


def _comparable(facts: dict[str, object]) -> tuple[object, object]:
    """An image's layers and configuration, without the build time and the label step's labels."""
    config = dict(facts.get("Config") or {})  # type: ignore[call-overload]
    own = {CREATED_LABEL, MANIFEST_LABEL, ARCHS_LABEL, *labels.of_image("", "-").keys()}
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items() if k not in own}
    config.pop("Image", None)  # the engine's note of the parent image, not the image
    rootfs = facts.get("RootFS") or {}
    return (rootfs.get("Layers") if isinstance(rootfs, dict) else None), config


def already_labelled(previous: dict[str, object] | None, built: dict[str, object]) -> str | None:
    """The manifest sha256 of `previous` when it is the labelled form of the image just built:
    the same layers and configuration, only the build time differing (a rebuild with nothing
    changed). Then the earlier image is kept as it is, and the label step is not needed."""
    if previous is None:
        return None
    config = previous.get("Config")
    found = (config.get("Labels") or {}) if isinstance(config, dict) else {}
    digest = found.get(MANIFEST_LABEL)
    if not digest or _comparable(previous) != _comparable(built):
        return None
    return str(digest)


def run_build(
    req: BuildRequest,
    engine: Engine,
    dry_run: bool = False,
    runner: Runner = subprocess_runner,
    out: Callable[[str], None] = print,
) -> list[str]:
    """Build the image and label it with its manifest's sha256; returns the commands run.

    The build's output is streamed through `out`; a failed build ends in one UserError line with
    the likely cause. The image the tag named before, and the unlabelled image of this build,
    are removed when nothing else names them, so a build leaves no `<none>` image of its own.
    SIGTERM is handled as Ctrl-C (a cancelled CI job): the build's process group is stopped,
    the secret file and the wheels linked into .torchenv/wheelhouse/ are removed, KeyboardInterrupt goes on.
    """
    with sigterm_as_ctrl_c():
        return _run_build(req, engine, dry_run, runner, out)


def _run_build(
    req: BuildRequest,
    engine: Engine,
    dry_run: bool,
    runner: Runner,
    out: Callable[[str], None],
) -> list[str]:
    validate(req)
    index, root = req.index, req.target.root
    if index is not None and index.has_credentials:
        # The build's output passes the secret's parts through (pip masks a password, not a
        # query token): what is shown and what the error repeats has them replaced.
        shown, full = out, index.full
        out = lambda line: shown(credentials.scrub(line, full))  # noqa: E731
    with credentials.SecretFile(None if dry_run else index) as secret:
        argv, env = build_command(req, engine, labels=provenance(root, runner), index_secret=secret)
        commands = [format_command(argv, env)]
        project = req.target.image_repo
        reads = manifest_read_commands(engine, req.image, "NAME", "DIR", req.target.name, project)
        commands += [shlex.join(argv) for argv in reads]
        commands[-1] += "   # then label the image with the manifest file's sha256"
        package = _package(req)
        if package:
            tmp = Path(tempfile.gettempdir()) / "torchenv-wheel-XXXXXXXX"
            wheel_argv = projectpkg.build_command(root, tmp, uv_resolver.executable())
            note = f"   # the project's wheel, first; then staged into {projectpkg.PACKAGE_DIR}/"
            commands.insert(0, shlex.join(wheel_argv) + note)
        if dry_run:
            return commands
        before = images.facts(engine.client, req.image, runner)
        if package:
            wheel = projectpkg.build_wheel(root, runner)
            out(f"torchenv: the project's package {wheel.pin} goes in as the last layer")
        with BuildContext(root, req.wheelhouse, req.target):
            out(f"torchenv: {commands[1 if package else 0]}")
            done = runner(argv, env=env, cwd=root, on_line=lambda line: out(line.rstrip("\n")))
    if not done.ok:
        if done.returncode == NOT_FOUND:
            raise UserError(f"{argv[0]} not found: install Docker (apt-get install docker.io)")
        cause = diagnose_build(done.stdout + done.stderr)
        if cause and index is not None and index.has_credentials:
            cause = credentials.scrub(cause, index.full)
        raise UserError(
            f"building {req.image} failed (exit {done.returncode})"
            + (f": {cause}" if cause else ": see the build output above")
        )
    previous = str(before["Id"]) if before else None
    after = images.facts(engine.client, req.image, runner)
    built = str(after["Id"]) if after else None
    kept = already_labelled(before, after) if after else None
    final: str | None
    if kept and previous:
        # Nothing changed: the earlier image, labelled when it was built, names it again.
        file_sha, final = kept, previous
        images.tag(engine.client, previous, req.image, runner)
    else:
        if built is None:
            raise UserError(f"the build reported success but the engine has no {req.image}")
        file_sha, cuda_archs = _manifest_file_sha256(runner, engine, built, req.target, project)
        label_argv, label_env = label_command(engine, req.image, file_sha, cuda_archs, project)
        labelled = runner(label_argv, env=label_env, input=label_dockerfile(built))
        if not labelled.ok:
            last = (labelled.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"labelling {req.image} failed: {last}")
        final = images.image_id(engine.client, req.image, runner)
    leftovers = ({previous, built} - {final, None}) & images.dangling_ids(engine.client, runner)
    for old in sorted(i for i in leftovers if i):
        images.remove(engine.client, old, runner)
    what = "nothing changed: kept" if kept else "built"
    out(
        f"torchenv: {what} {req.image} (manifest file sha256 {file_sha[:12]}..., "
        f"label {MANIFEST_LABEL})"
    )
    return commands


def archs_of_report(text: str | None) -> list[str]:
    """The env report's arch_list (torch's kernel architectures); [] for a CPU build or no report."""
    try:
        found = json.loads(text or "{}")["env"]["torch"].get("arch_list") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [str(a) for a in found if re.fullmatch(r"(?:sm|compute)_[0-9]+[a-z]?", str(a))]


def _manifest_file_sha256(
    runner: Runner, engine: Engine, image: str, target: Target, project: str
) -> tuple[str, list[str]]:
    """The sha256 of the manifest file's bytes and the env report's kernel architectures, copied
    out of a created, never started container."""
    name = f"torchenv-manifest-{os.getpid()}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="torchenv-manifest-") as tmp:
        dest = Path(tmp) / "manifest.json"
        create, copy, copy_report, remove = manifest_read_commands(
            engine, image, name, tmp, target.name, project
        )
        done = runner(create, timeout=120)
        try:
            if done.ok:
                done = runner(copy, timeout=300)
            if done.ok:
                runner(copy_report, timeout=120)
        finally:
            runner(remove, timeout=120)
        if not done.ok or not dest.is_file():
            raise UserError(f"{image} has no readable {MANIFEST_PATH}: {done.stderr.strip()[:200]}")
        report = dest.with_name("env-report.json")
        archs = archs_of_report(report.read_text() if report.is_file() else None)
        return hashlib.sha256(dest.read_bytes()).hexdigest(), archs
