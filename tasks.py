"""torchenv tasks: `invoke --list`. The logic lives in the `torchenv` package; this is wiring."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from pathlib import Path

from invoke import Collection, Exit, task

from torchbuild.envfile import EnvFileError
from torchenv import build as builds
from torchenv import engine, generate, matrix, table
from torchenv import smoke as smokes
from torchenv.errors import UserError
from torchenv.matrix import DEFAULT_INSTALLER
from torchenv.runner import subprocess_runner

ROOT = Path(__file__).resolve().parent


def _names() -> str:
    """The target names for help texts; a broken targets.toml must not break `invoke --list`
    (the task itself then fails with the matrix's one-line error)."""
    try:
        return ", ".join(matrix.names())
    except UserError:
        return "see `invoke list`"


def _int(value: object, flag: str, wanted: str = "a numeric ID") -> int:
    try:
        return int(str(value))
    except ValueError:
        raise UserError(f"{flag} {value!r} is not a whole number: give {wanted}") from None


def _run_all(commands: list[list[str]], dry_run: bool, check: bool = False) -> None:
    """Print each command; run it unless dry_run (streamed); with check, the first failure ends."""
    for argv in commands:
        print(shlex.join(argv))
        if dry_run:
            continue
        done = subprocess_runner(argv, cwd=ROOT, on_line=lambda line: print(line, end=""))
        if check and not done.ok:
            raise UserError(f"{Path(argv[0]).name} failed (exit {done.returncode}): see above")


@contextlib.contextmanager
def user_errors():
    """A user mistake ends the task with its one-line message, never a traceback."""
    try:
        yield
    except (UserError, EnvFileError) as exc:
        # one line, whatever a value held (issue 20: a newline in a flag's value)
        raise Exit("error: " + " ".join(str(exc).splitlines()), code=1) from None
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
            problems = generate.problems()
            for line in problems:
                print(line)
            if problems:
                raise UserError(f"{len(problems)} generated file(s) need attention (above)")
            print("generated files are current")
            return
        for path in generate.write_all():
            print(f"wrote {path.relative_to(ROOT)}")


# Build defaults, overridable for every build from invoke's configuration: an invoke.yaml
# (`torchenv: {ca_cert: /etc/ssl/certs/ca-certificates.crt}`) or INVOKE_TORCHENV_<KEY> variables
# (INVOKE_TORCHENV_BASE_IMAGE=...). A flag given on the command line wins.
BUILD_DEFAULTS = {
    "installer": DEFAULT_INSTALLER,
    "ca_cert": None,
    "base_image": None,
    "allow_unpinned_base": False,
    "index_url": None,
    "conda_channel_alias": None,
    "wheelhouse": None,
}
_CONFIGURABLE = " (configurable: INVOKE_TORCHENV_{key})"

BUILD_HELP = {
    "target": f"the target to build: {_names()}",
    "flavor": "runtime (default) or dev (adds ipykernel, TensorBoard, git)",
    "installer": "uv (default), pip (both: the pip lock into a venv) or conda (micromamba)",
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
for _key in BUILD_DEFAULTS:
    BUILD_HELP[_key] += _CONFIGURABLE.format(key=_key.upper())


def _configured(c, key: str, given: object) -> object:
    """A build option: the flag when given, else invoke's configuration (torchenv.<key>)."""
    if given not in (None, False):
        return given
    return c.config.get("torchenv", {}).get(key, BUILD_DEFAULTS[key])


@task(help=BUILD_HELP, auto_shortflags=False)
def build(
    c, target=None, flavor="runtime", installer=None, ca_cert=None, wheelhouse=None,
    base_image=None, allow_unpinned_base=False, index_url=None, conda_channel_alias=None,
    no_cache=False, uid="1000", gid="1000", tag=None, dry_run=False,
):  # fmt: skip
    """Build a target's image (invoke build --target cuda13)."""
    with user_errors():
        opt = {
            key: _configured(c, key, value)
            for key, value in (
                ("installer", installer), ("ca_cert", ca_cert), ("wheelhouse", wheelhouse),
                ("base_image", base_image), ("allow_unpinned_base", allow_unpinned_base),
                ("index_url", index_url), ("conda_channel_alias", conda_channel_alias),
            )
        }  # fmt: skip
        req = builds.BuildRequest(
            target=_target(target), flavor=flavor, installer=str(opt["installer"]),
            ca_cert=Path(str(opt["ca_cert"])) if opt["ca_cert"] else None,
            wheelhouse=Path(str(opt["wheelhouse"])) if opt["wheelhouse"] else None,
            base_image=opt["base_image"] or None,  # type: ignore[arg-type]
            allow_unpinned_base=bool(opt["allow_unpinned_base"]),
            index_url=opt["index_url"] or None,  # type: ignore[arg-type]
            conda_channel_alias=opt["conda_channel_alias"] or None,  # type: ignore[arg-type]
            no_cache=no_cache, uid=_int(uid, "--uid"), gid=_int(gid, "--gid"), tag=tag,
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
    auto_shortflags=False,
    help={
        "target": f"the target whose image to test: {_names()}",
        "flavor": "runtime (default) or dev",
        "no_gpu": "never request GPUs (default: request them for CUDA targets when the engine can)",
        "require_gpu": "request GPUs and fail when the container sees none (default: off)",
        "quick": "the suite's quick mode (default: full)",
        "reports": "folder for smoke-<target>.json and .xml (default: reports/)",
        "image": "test this image instead of the target's (default: the matrix's image name)",
        "args": "more arguments for the suite, e.g. '--only mlp,cnn' (default: none)",
        "timeout": "stop the suite after this many seconds, exit 124 (default: the target's "
        "smoke_timeout_s in targets.toml)",
        "dry_run": "print the equivalent docker command without running it (default: run)",
        "nodes": "multi-node DDP: this many containers on a private network, torchrun (default: one)",
        "nproc_per_node": "with --nodes: processes (ranks) per node (default: 1)",
        "rdzv_port": "with --nodes: node 0's rendezvous port, also on 127.0.0.1 (default: 29400)",
    },
)
def smoke(
    c, target=None, flavor="runtime", no_gpu=False, require_gpu=False, quick=False,
    reports="reports", image=None, args="", timeout=None, dry_run=False, nodes=None,
    nproc_per_node="1", rdzv_port="29400",
):  # fmt: skip
    """Run the smoke suite in a target's image, with the target's expectations."""
    with user_errors():
        t = _target(target)
        if no_gpu and require_gpu:
            raise UserError("--no-gpu and --require-gpu contradict each other: pick one")
        if nodes is not None:
            smokes.check_reports(Path(reports) if reports else None)  # issue 20: before the run
            _smoke_nodes(t, image or t.image(flavor), nodes, nproc_per_node, rdzv_port,
                         no_gpu, reports, dry_run)  # fmt: skip
            return
        smokes.check_reports(Path(reports) if reports else None)  # issue 20: before the run
        req = smokes.SmokeRequest(
            target=t, image=image or t.image(flavor), gpu="no" if no_gpu else "auto",
            require_gpu=require_gpu, quick=quick, extra_args=smokes.parse_args(args),
            reports=Path(reports) if reports else None, timeout_s=smokes.parse_timeout(timeout),
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
        try:
            code = smokes.run(req, client, gpu)
        except smokes.TimedOut as exc:
            raise Exit(f"error: {exc}", code=smokes.TIMEOUT_EXIT) from None
        if code != 0:
            raise Exit(f"smoke suite failed in {req.image} (exit {code})", code=code)


def _smoke_nodes(t, image, nodes, nproc, rdzv_port, no_gpu, reports, dry_run) -> None:
    from torchenv import multinode

    n, p, port = multinode.validate(nodes, nproc, rdzv_port)
    req = multinode.MultiNodeRequest(target=t, image=image, nodes=n, nproc=p, rdzv_port=port)
    if dry_run:
        print("\n".join(multinode.describe(multinode.plan(req))))
        return
    client = engine.docker_sdk_client()
    if t.is_cuda and not no_gpu and smokes.has_gpu_runtime(client):
        req = dataclasses.replace(req, gpus_per_node=p)
    multinode.smoke(req, client, Path(reports) if reports else None)


@task(
    help={
        "target": f"the target: {_names()}",
        "flavor": "runtime or dev (default: dev, it has git and TensorBoard)",
        "no_gpu": "do not request GPUs for CUDA targets (default: request them when the engine can)",
        "dry_run": "print the docker command without running it (default: run)",
    }
)
def shell(c, target=None, flavor="dev", no_gpu=False, dry_run=False):
    """Open a shell in a target's image, the workspace mounted, as you (piped input works too)."""
    from torchenv import shell as shells

    with user_errors():
        req = shells.ShellRequest(target=_target(target), flavor=flavor, gpu=not no_gpu)
        req.target.image(flavor)  # validates the flavor
        code = shells.open_shell(req, dry_run=dry_run)
        if code:
            raise Exit(code=code)


@task
def lint(c):
    """Lint: ruff and mypy --strict on the Python, hadolint on the Dockerfiles, generated files current."""
    from torchenv import lint as lints

    with user_errors():
        _run_all(lints.lint_commands(), dry_run=False, check=True)
    generate_(c, check=True)


@task(
    help={
        "target": "only this target's (default: all of torchenv's)",
        "dry_run": "show what would be removed and what is kept, remove nothing (default: remove)",
    }
)
def clean(c, target=None, dry_run=False):
    """Remove what torchenv made on the engine, found by its labels: images, containers, networks."""
    from torchenv import clean as cleans

    with user_errors():
        names = [_target(target)] if target else list(matrix.load().values())
        client = engine.detect().client
        steps = cleans.plan(
            cleans.find(client, target and names[0].name),
            known_images=[t.image(f) for t in names for f in matrix.FLAVORS],
        )
        for line in cleans.describe(steps, dry_run):
            print(line)
        failed = [] if dry_run else cleans.run(steps, client)
        for line in failed:
            print(line)
        if failed:
            raise UserError(f"{len(failed)} of torchenv's objects could not be removed (above)")


@task(
    help={
        "target": "check only this target's needs (default: all targets)",
        "require_gpu": "fail when no usable GPU/driver is found (default: warn)",
    }
)
def doctor(c, target=None, require_gpu=False):
    """Check this host before a build: engine, BuildKit, disk, base images, driver, GPU runtime, shm, proxy."""
    from torchenv import doctor as doctors

    with user_errors():
        targets = [_target(target)] if target else list(matrix.load().values())
        base = _configured(c, "base_image", None)
        images = {"base image": str(base)} if base else None
        if _configured(c, "installer", None) == "conda":
            images = images or {"base image": targets[0].base_ref}
            images["micromamba image"] = targets[0].micromamba_ref
        rows = doctors.run_checks(targets=targets, require_gpu=require_gpu, images=images)
        print(doctors.render(rows))
        if doctors.exit_code(rows):
            raise Exit("doctor found problems: each failed row above says how to fix it", code=1)


@task(
    help={
        "target": "lock this target (default with --check: all targets)",
        "check": "only check that env files and locks agree (drift), write nothing (default: write)",
        "installer": "the lock this installer reads: uv or pip (the pip lock), conda (default: both)",
        "index_url": "resolve against this mirror of the target's index (default: the target's)",
        "dry_run": "print the resolver commands without running them (default: run)",
    }
)
def lock(c, target=None, check=False, installer=None, index_url=None, dry_run=False):
    """Write a target's locks (exact versions, sha256) next to its env file; --check for drift."""
    from torchenv import drift, resolve

    with user_errors():
        if check:
            targets = [_target(target)] if target else list(matrix.load().values())
            problems = drift.check_all(targets)
            for problem in problems:
                print(problem)
            if problems:
                raise Exit("locks and env files disagree: run `invoke lock --target X`", code=1)
            print("locks agree with their env files")
            return
        if dry_run:
            for line in resolve.planned_commands(_target(target), installer, index_url):
                print(line)
            return
        for line in resolve.lock_target(_target(target), installer=installer, index_url=index_url):
            print(line)


@task(
    help={
        "target": f"the target whose lock to verify against: {_names()} (default with --image: "
        "the image's io.torchenv.target label)",
        "image": "verify this image: built here, pulled by digest, derived (default: the "
        "target's runtime image)",
    }
)
def verify(c, target=None, image=None):
    """Hash what an image holds now; compare with the target's lock and the build's manifest."""
    from torchenv import verify as verifies

    with user_errors():
        t = matrix.get(verifies.target_of(image)) if image and not target else _target(target)
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
    from torchenv import digests

    with user_errors():
        digest = digests.refresh_digest(image, key=key)
        print(f"{key} = {digest}; now run `invoke generate`")


@task(
    help={
        "target": f"the target whose image to export: {_names()}",
        "format": "docker-archive (default: `docker save`) or oci-archive (needs skopeo)",
        "out": "the archive file (default: <target>[-dev].<format>.tar here)",
        "flavor": "runtime (default) or dev",
        "image": "export this image instead of the target's (default: the matrix's image name)",
        "dry_run": "print the commands without running them (default: run)",
    }
)
def export(
    c, target=None, format="docker-archive", out=None, flavor="runtime", image=None, dry_run=False
):
    """Save a target's image as one archive file, e.g. for `apptainer build` on a cluster."""
    from torchenv import export as exports

    with user_errors():
        t = _target(target)
        hint = f"invoke build --target {t.name}" + ("" if flavor == "runtime" else " --flavor dev")
        req = exports.ExportRequest(
            image=image or t.image(flavor), format=format,
            out=Path(out) if out else exports.default_out(t.name, flavor, format), build_hint=hint,
        )  # fmt: skip
        exports.validate(req)  # before looking for an engine: bad input first
        if dry_run:
            print("\n".join(exports.plan(req, _dry_engine().client)))
            return
        for line in exports.export(req, engine.detect().client):
            print(line, flush=True)


@task(
    name="k8s",
    help={
        "target": f"the target: {_names()}",
        "nodes": "pods (nodes) of the Indexed Job (default: 2)",
        "gpus_per_node": "nvidia.com/gpu per pod, one rank per GPU (default: 0, CPU and gloo)",
        "image": "image reference, NAME@sha256:... (default: the digest `invoke push` recorded)",
        "flavor": "runtime (default) or dev, for the recorded digest",
        "output": "write the manifest here (default: stdout)",
    },
)
def k8s_(c, target=None, nodes="2", gpus_per_node="0", image=None, flavor="runtime", output=None):
    """Write a Kubernetes manifest (Indexed Job + headless Service) that runs the DDP smoke suite."""
    import sys

    from torchenv import k8s, multinode
    from torchenv import publish as publishes

    with user_errors():
        t = _target(target)
        if output:  # issue 20: a folder or an unwritable path, said before anything else
            from torchenv.files import check_writable_file

            check_writable_file(Path(output), "--output")
        n, _, _ = multinode.validate(nodes, 1, multinode.RDZV_PORT)
        gpus = _int(gpus_per_node, "--gpus-per-node", "a GPU count, 0 for none")
        k8s.check_gpus_per_node(gpus)
        ref, source = publishes.resolve_image(t, image, flavor)
        text = k8s.checked_manifest(t, ref, source, n, gpus)
        if output:
            from torchenv.files import write_atomic

            write_atomic(Path(output), text)
            print(f"wrote {output} (image {ref}, {source})", file=sys.stderr)
        else:
            print(text, end="")


@task(
    help={
        "target": f"the target: {_names()}",
        "registry": "HOST[:PORT]/NAMESPACE, e.g. ghcr.io/my-org (log in with docker login first)",
        "flavor": "runtime (default) or dev",
        "reports": "folder for the record pushed-<target>.json (default: reports/)",
        "dry_run": "print the docker commands without running them (default: run)",
    }
)
def push(c, target=None, registry=None, flavor="runtime", reports="reports", dry_run=False):
    """Push a target's image to a registry; print and record its reference by digest."""
    from torchenv import publish as publishes

    with user_errors():
        t = _target(target)
        if not registry:
            raise UserError("--registry is required: HOST[:PORT]/NAMESPACE, e.g. ghcr.io/my-org")
        if dry_run:
            print("\n".join(publishes.describe(t, registry, flavor)))
            return
        pushed = publishes.push(
            t, registry, engine.docker_sdk_client(), flavor, Path(reports) if reports else ROOT
        )
        print(f"pushed {pushed.image}: digest {pushed.digest}")
        print(f"recorded in {publishes.record_path(t, flavor, Path(reports))}")
        print(pushed.reference)


ns = Collection(
    list_, generate_, build, smoke, shell, lint, clean, doctor, lock, verify, refresh_digest,
    export, k8s_, push,
)  # fmt: skip
ns.configure({"run": {"echo": True}, "torchenv": dict(BUILD_DEFAULTS)})
ns.configure({"run": {"echo": True}})
