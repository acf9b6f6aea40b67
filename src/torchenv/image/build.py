"""Image builds: validate the request, construct the exact command, run it, explain failures.

Command construction is pure (`build_command`), so tests assert the exact command lines and
`invoke build --dry-run` prints them without an engine.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shlex
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torchbuild import envfile
from torchenv import credentials, matrix
from torchenv.credentials import BUILD_PROXY_VARS
from torchenv.engine import Engine, images
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.engine.labels import MANIFEST_LABEL
from torchenv.errors import UserError
from torchenv.hints import diagnose_build
from torchenv.image import labelstep, render
from torchenv.image import package as projectpkg
from torchenv.image import uv as uvs
from torchenv.image.context import BuildContext
from torchenv.lock import uv_resolver
from torchenv.matrix import DEFAULT_INSTALLER, INSTALLERS, Target, pins
from torchenv.matrix.digests import is_pinned
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

ARCHS_LABEL = labelstep.ARCHS_LABEL


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
    # With a registry (torchenv.image.reuse): BuildKit's inline cache in the built image, these
    # registry images as the build's cache, and the content key as a label of the image.
    inline_cache: bool = False
    cache_from: tuple[str, ...] = ()
    content_key: str | None = None

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
    _check_dockerignore(t.root / ".dockerignore", package=package_layer(req))
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


def package_layer(req: BuildRequest) -> bool:
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
    if req.inline_cache:
        argv += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    argv += [arg for ref in req.cache_from for arg in ("--cache-from", ref)]
    if req.no_cache:
        argv.append("--no-cache")
    argv.append(".")
    return argv, env


def format_command(argv: list[str], env: dict[str, str]) -> str:
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)])


def run_build(
    req: BuildRequest,
    engine: Engine,
    dry_run: bool = False,
    runner: Runner = subprocess_runner,
    out: Callable[[str], None] = print,
    *,
    wheel: projectpkg.Wheel | None = None,
    on_built: Callable[[str, str], None] | None = None,
) -> list[str]:
    """Build the image and label it with its manifest's sha256; returns the commands run.

    The build's output is streamed through `out`; a failed build ends in one UserError line with
    the likely cause. The image the tag named before, and the unlabelled image of this build,
    are removed when nothing else names them, so a build leaves no `<none>` image of its own.
    SIGTERM is handled as Ctrl-C (a cancelled CI job): the build's process group is stopped,
    the secret file and the wheels linked into .torchenv/wheelhouse/ are removed, KeyboardInterrupt goes on.
    `wheel`: the project's wheel, already built and staged (torchenv.image.reuse needs it for the
    content key first). `on_built(unlabelled id, final id)` runs before the unlabelled image is
    removed (reuse pushes it: it alone holds BuildKit's inline cache).
    """
    with sigterm_as_ctrl_c():
        return _run_build(req, engine, dry_run, runner, out, wheel, on_built)


def _run_build(
    req: BuildRequest,
    engine: Engine,
    dry_run: bool,
    runner: Runner,
    out: Callable[[str], None],
    wheel: projectpkg.Wheel | None = None,
    on_built: Callable[[str, str], None] | None = None,
) -> list[str]:
    validate(req)
    index, root, target = req.index, req.target.root, req.target
    if index is not None and index.has_credentials:
        # The build's output passes the secret's parts through (pip masks a password, not a
        # query token): what is shown and what the error repeats has them replaced.
        shown, full = out, index.full
        out = lambda line: shown(credentials.scrub(line, full))  # noqa: E731
    with credentials.SecretFile(None if dry_run else index) as secret:
        argv, env = build_command(req, engine, labels=provenance(root, runner), index_secret=secret)
        commands = [format_command(argv, env)]
        reads = labelstep.manifest_read_commands(
            engine, req.image, "NAME", "DIR", target.name, target.image_repo
        )
        commands += [shlex.join(argv) for argv in reads]
        key = " and its content key" if req.content_key else ""
        commands[-1] += f"   # then label the image with the manifest file's sha256{key}"
        package = package_layer(req)
        if package and wheel is None:
            tmp = Path(tempfile.gettempdir()) / "torchenv-wheel-XXXXXXXX"
            wheel_argv = projectpkg.build_command(root, tmp, uv_resolver.executable())
            note = f"   # the project's wheel, first; then staged into {projectpkg.PACKAGE_DIR}/"
            commands.insert(0, shlex.join(wheel_argv) + note)
        if dry_run:
            return commands
        before = images.facts(engine.client, req.image, runner)
        if package:
            wheel = wheel or projectpkg.build_wheel(root, runner)
            out(f"torchenv: the project's package {wheel.pin} goes in as the last layer")
        with BuildContext(root, req.wheelhouse, target):
            out(f"torchenv: {format_command(argv, env)}")
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
    kept = labelstep.already_labelled(before, after, req.content_key) if after else None
    final: str | None
    if kept and previous:
        # Nothing changed: the earlier image, labelled when it was built, names it again.
        file_sha, final = kept, previous
        images.tag(engine.client, previous, req.image, runner)
    else:
        if built is None:
            raise UserError(f"the build reported success but the engine has no {req.image}")
        file_sha = labelstep.label(runner, engine, req.image, built, target, req.content_key)
        final = images.image_id(engine.client, req.image, runner)
    try:
        if on_built is not None and built and final:
            on_built(built, final)
    finally:
        leftovers = {i for i in (previous, built) if i and i != final}
        for old in sorted(leftovers & images.dangling_ids(engine.client, runner)):
            images.remove(engine.client, old, runner)
    what = "nothing changed: kept" if kept else "built"
    out(
        f"torchenv: {what} {req.image} (manifest file sha256 {file_sha[:12]}..., "
        f"label {MANIFEST_LABEL})"
    )
    return commands
