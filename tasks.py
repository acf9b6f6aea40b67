"""torchenv tasks: `invoke --list`. The logic lives in the `torchenv` package; this is wiring."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import sys
from pathlib import Path

from invoke import Collection, Exit, task

from torchenv import build as builds
from torchenv import engine, generate, matrix, table
from torchenv import smoke as smokes
from torchenv.errors import UserError

ROOT = Path(__file__).resolve().parent


@contextlib.contextmanager
def user_errors():
    """A user mistake ends the task with its one-line message, never a traceback."""
    try:
        yield
    except UserError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


def _target(name: str | None) -> matrix.Target:
    if not name:
        raise UserError(f"--target is required: choose one of {', '.join(matrix.names())}")
    return matrix.get(name)


@task(name="list", help={"format": "text (default) or json or markdown"})
def list_(c, format="text"):
    """Show the target matrix (pins, CUDA, minimum driver, image)."""
    with user_errors():
        targets = matrix.load().values()
        if format == "json":
            print(json.dumps([t.__dict__ for t in targets], indent=2, default=list))
        elif format in ("text", "markdown"):
            print(table.text(targets) if format == "text" else table.markdown(targets))
        else:
            raise UserError(f"unknown format {format!r}: choose text, json or markdown")


@task(
    name="generate",
    help={"check": "only check that the generated files are current (default: write them)"},
)
def generate_(c, check=False):
    """Write the env files, Dockerfiles, dev containers and README table from targets.toml."""
    with user_errors():
        if check:
            stale = generate.stale()
            if stale:
                names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
                raise UserError(f"stale generated files: {names}: run `invoke generate`")
            print("generated files are current")
            return
        for path in generate.write_all():
            print(f"wrote {path.relative_to(ROOT)}")


BUILD_HELP = {
    "target": f"the target to build: {', '.join(matrix.names())}",
    "flavor": "runtime (default) or dev (adds ipykernel, TensorBoard, git)",
    "installer": "conda (default: micromamba) or pip (a venv from the base's Python)",
    "ca_cert": "a CA bundle for a TLS-inspecting proxy, passed as a BuildKit secret (default: none)",
    "wheelhouse": "a folder of wheels: build offline from it (default: none)",
    "base_image": "replace the matrix's digest-pinned base image (default: the matrix's)",
    "allow_unpinned_base": "accept a base image given by tag alone (default: refuse)",
    "index_url": "a mirror of the target's pip index (default: the target's index)",
    "conda_channel_alias": "a conda channel mirror, as micromamba's channel alias (default: none)",
    "no_cache": "build without the build cache (default: use it)",
    "uid": "UID of the image's user (default: 1000)",
    "gid": "GID of the image's user (default: 1000)",
    "tag": "tag the image with this name (default: the matrix's image name)",
    "dry_run": "print the exact commands without running them (default: run)",
}


@task(help=BUILD_HELP)
def build(
    c, target=None, flavor="runtime", installer="conda", ca_cert=None, wheelhouse=None,
    base_image=None, allow_unpinned_base=False, index_url=None, conda_channel_alias=None,
    no_cache=False, uid=1000, gid=1000, tag=None, dry_run=False,
):  # fmt: skip
    """Build a target's image (invoke build --target cuda13)."""
    with user_errors():
        req = builds.BuildRequest(
            target=_target(target), flavor=flavor, installer=installer,
            ca_cert=Path(ca_cert) if ca_cert else None,
            wheelhouse=Path(wheelhouse) if wheelhouse else None,
            base_image=base_image, allow_unpinned_base=allow_unpinned_base, index_url=index_url,
            conda_channel_alias=conda_channel_alias, no_cache=no_cache, uid=int(uid), gid=int(gid),
            tag=tag,
        )  # fmt: skip
        eng = _dry_engine() if dry_run else engine.detect()
        for line in builds.run_build(req, eng, dry_run=dry_run):
            if dry_run:
                print(line)


def _dry_engine() -> engine.Engine:
    """For --dry-run: the real engine when there is one, else the commands a 20.10 client runs."""
    try:
        return engine.detect()
    except UserError:
        return engine.Engine("docker", "unknown", "unknown", "builtin")


@task(
    help={
        "target": f"the target whose image to test: {', '.join(matrix.names())}",
        "flavor": "runtime (default) or dev",
        "no_gpu": "never request GPUs (default: request them for CUDA targets when the engine can)",
        "require_gpu": "request GPUs and fail when the container sees none (default: off)",
        "quick": "the suite's quick mode (default: full)",
        "reports": "folder for smoke-<target>.json and .xml (default: reports/)",
        "image": "test this image instead of the target's (default: the matrix's image name)",
        "args": "more arguments for the suite, e.g. '--only mlp,cnn' (default: none)",
        "dry_run": "print the equivalent docker command without running it (default: run)",
    }
)
def smoke(
    c, target=None, flavor="runtime", no_gpu=False, require_gpu=False, quick=False,
    reports="reports", image=None, args="", dry_run=False,
):  # fmt: skip
    """Run the smoke suite in a target's image, with the target's expectations."""
    with user_errors():
        t = _target(target)
        if no_gpu and require_gpu:
            raise UserError("--no-gpu and --require-gpu contradict each other: pick one")
        req = smokes.SmokeRequest(
            target=t, image=image or t.image(flavor), gpu="no" if no_gpu else "auto",
            require_gpu=require_gpu, quick=quick, extra_args=tuple(shlex.split(args)),
            reports=Path(reports) if reports else None,
        )  # fmt: skip
        if dry_run:
            print(smokes.describe(smokes.run_kwargs(req, gpu=t.is_cuda and not no_gpu)))
            return
        client = engine.docker_sdk_client()
        has_gpu = smokes.has_gpu_runtime(client)
        gpu = smokes.wants_gpu(req, has_gpu)
        if t.is_cuda and not gpu:
            why = "--no-gpu given" if no_gpu else "this engine has no NVIDIA runtime"
            print(f"torchenv: running without a GPU ({why}): the GPU checks will skip")
        code = smokes.run(req, client, gpu)
        if code != 0:
            raise Exit(f"smoke suite failed in {req.image} (exit {code})", code=code)


@task(
    help={
        "target": f"the target: {', '.join(matrix.names())}",
        "flavor": "runtime or dev (default: dev, it has git and TensorBoard)",
        "no_gpu": "do not request GPUs for CUDA targets (default: request them)",
        "dry_run": "print the docker command without running it (default: run)",
    }
)
def shell(c, target=None, flavor="dev", no_gpu=False, dry_run=False):
    """Open an interactive shell in a target's image, the workspace mounted, as you."""
    with user_errors():
        t = _target(target)
        argv = [
            "docker", "run", "--rm", "-it", f"--shm-size={smokes.SHM_SIZE}",
            "--user", f"{os.getuid()}:{os.getgid()}", "--env", "HOME=/tmp",
            # The image has no passwd entry for your UID: torch.compile needs a user name.
            "--env", f"USER={getpass.getuser()}",
            "--volume", f"{Path.cwd()}:/workspace", "--workdir", "/workspace",
        ]  # fmt: skip
        if t.is_cuda and not no_gpu:
            argv.append("--gpus=all")
        argv += [t.image(flavor), "bash"]
        if dry_run:
            print(shlex.join(argv))
            return
        argv[0] = engine.detect().client
        c.run(shlex.join(argv), pty=True, echo=True)


def _tool(name: str) -> str:
    """A linter from this Python's environment (works without activating the venv)."""
    here = Path(sys.executable).parent / name
    return shlex.quote(str(here)) if here.exists() else name


@task
def lint(c):
    """Lint: ruff on the Python, hadolint on the Dockerfiles, generated files current."""
    dockerfiles = " ".join(str(t.dockerfile.relative_to(ROOT)) for t in matrix.load().values())
    c.run(f"{_tool('ruff')} check .", echo=True)
    c.run(f"{_tool('ruff')} format --check .", echo=True)
    c.run(f"{_tool('hadolint')} {dockerfiles}", echo=True)
    generate_(c, check=True)


@task(
    help={
        "target": "only this target (default: all)",
        "dry_run": "print the commands without running them (default: run)",
    }
)
def clean(c, target=None, dry_run=False):
    """Remove torchenv's images (runtime and dev) and stopped smoke containers."""
    with user_errors():
        targets = [_target(target)] if target else list(matrix.load().values())
        images = [t.image(f) for t in targets for f in matrix.FLAVORS]
        client_path = "docker" if dry_run else engine.detect().client
        commands = [
            [
                client_path,
                "container",
                "prune",
                "--force",
                "--filter",
                f"label={smokes.SMOKE_LABEL}",
            ],
            [client_path, "image", "rm", "--force", *images],
        ]
        for argv in commands:
            if dry_run:
                print(shlex.join(argv))
            else:
                c.run(shlex.join(argv), echo=True, warn=True)


@task(
    help={
        "target": "check only this target's needs (default: all targets)",
        "require_gpu": "fail when no usable GPU/driver is found (default: warn)",
    }
)
def doctor(c, target=None, require_gpu=False):
    """Check this host before a build: engine, BuildKit, disk, driver, GPU runtime, shm, proxy."""
    from torchenv import doctor as doctors

    with user_errors():
        targets = [_target(target)] if target else None
        rows = doctors.run_checks(targets=targets, require_gpu=require_gpu)
        print(doctors.render(rows))
        if doctors.exit_code(rows):
            raise Exit("doctor found problems: each failed row above says how to fix it", code=1)


@task(
    help={
        "target": "lock this target (default with --check: all targets)",
        "check": "only check that env files and locks agree (drift), write nothing (default: write)",
        "installer": "pip or conda (default: both)",
        "index_url": "resolve against this mirror of the target's index (default: the target's)",
        "dry_run": "print the resolver commands without running them (default: run)",
    }
)
def lock(c, target=None, check=False, installer=None, index_url=None, dry_run=False):
    """Write a target's locks (exact versions, sha256) next to its env file; --check for drift."""
    from torchenv import lock as locks

    with user_errors():
        if check:
            targets = [_target(target)] if target else list(matrix.load().values())
            problems = locks.check_all(targets)
            for problem in problems:
                print(problem)
            if problems:
                raise Exit("locks and env files disagree: run `invoke lock --target X`", code=1)
            print("locks agree with their env files")
            return
        if dry_run:
            for line in locks.planned_commands(_target(target), installer, index_url):
                print(line)
            return
        for line in locks.lock_target(_target(target), installer=installer, index_url=index_url):
            print(line)


@task(
    help={
        "target": f"the target whose image to verify: {', '.join(matrix.names())}",
        "image": "verify this image (default: the target's runtime image)",
    }
)
def verify(c, target=None, image=None):
    """Compare a built image's package manifest with the target's lock; fail on any difference."""
    from torchenv import verify as verifies

    with user_errors():
        t = _target(target)
        differences = verifies.verify_image(t, image=image)
        for line in differences:
            print(line)
        if differences:
            raise Exit(f"{image or t.image()} differs from its lock ({len(differences)})", code=1)
        print(f"{image or t.image()} matches its lock")


@task(
    name="refresh-digest",
    help={
        "key": "base_digest (default) or micromamba_digest",
        "image": "resolve this tag (default: the matrix's base_image / micromamba_image)",
    },
)
def refresh_digest(c, key="base_digest", image=None):
    """Re-pin a base image: resolve its tag's digest on a registry and rewrite targets.toml."""
    from torchenv import lock as locks

    with user_errors():
        digest = locks.refresh_digest(image, key=key)
        print(f"{key} = {digest}; now run `invoke generate`")


ns = Collection(
    list_, generate_, build, smoke, shell, lint, clean, doctor, lock, verify, refresh_digest
)
ns.configure({"run": {"echo": True}})
