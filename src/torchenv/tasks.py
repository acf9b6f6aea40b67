"""The invoke tasks (`invoke --list`): wiring only, the logic lives in the other modules.

Each task is declared by `command(name, options...)`: the options (src/torchenv/taskopts.py) are
declared once below, typed before the task's body sees them, and the body turns them into the one
request its library module takes. A task's function has the task's name (dashes as underscores);
modules are imported under other names so that no task shadows one.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit

from torchenv import engine, matrix
from torchenv.doctor import gpufit
from torchenv.engine import images, labels
from torchenv.errors import UserError
from torchenv.files import exclusive
from torchenv.image import build as builds
from torchenv.image import generate as generation
from torchenv.image import reuse
from torchenv.matrix import INSTALLERS, table
from torchenv.run import smoke as smokes
from torchenv.taskopts import (
    BUILD_CONFIGURABLE,
    CONFIGURABLE,
    DRY_RUN,
    FLAVOR,
    GID,
    IGNORE_ARCH,
    IMAGE,
    NO_GPU,
    PORT,
    REPORTS,
    RESOLVER,
    SMOKE_OPTIONS,
    TARGET,
    TARGET_ALL,
    UID,
    Given,
    Option,
    after_dashes,
    command,
    config_defaults,
    target_names,
    target_of,
    targets_of,
)  # fmt: skip


@command(
    "matrix", Option("format", "text, json or markdown", "text", choices=("text", "json", "markdown")),
    Option("outdated", "list newer torch releases on each target's index that the pin rules "
           "accept (needs the index)", False, bool),
    TARGET_ALL, aliases=("list",),
)  # fmt: skip
def matrix_(c: Any, o: Given) -> None:
    """Show the target matrix (pins, CUDA, minimum driver, image); --outdated for newer pins."""
    targets = targets_of(o.target, matrix.project_root())
    if o.outdated:
        from torchenv.lock import outdated

        print("\n".join(outdated.check(targets)))
    elif o.format == "json":
        print(json.dumps([t.as_dict() for t in targets], indent=2, default=list))
    else:
        print(table.text(targets) if o.format == "text" else table.markdown(targets))


@command(
    "generate", Option("check", "only check that the generated files are current", False, bool)
)
def generate(c: Any, o: Given) -> None:
    """Write the env files, Dockerfiles, dev containers and README table from targets.toml."""
    root = matrix.project_root()
    if o.check:
        generation.check(root)
        return
    for path in generation.write_all(root):
        print(f"wrote {matrix.rel(path, root)}")


@command(
    "build", TARGET, FLAVOR, *BUILD_CONFIGURABLE,
    Option("no_cache", "build without the build cache", False, bool), UID, GID,
    Option("frozen", "refuse to build when the lock is missing or stale (default: lock first)",
           False, bool),
    Option("allow_unlocked", "where no lock can be made, install from the pins only (no hashes)",
           False, bool, config=True),
    Option("tag", "tag the image with this name (default: the matrix's image name)"), DRY_RUN,
)  # fmt: skip
def build(c: Any, o: Given) -> None:
    """Build a target's image (invoke build --target cuda13)."""
    reuse.check(o.registry, o.no_push and "no_push" in o.explicit)  # before any lock is made
    req = builds.BuildRequest(
        target=target_of(o.target, matrix.project_root()), flavor=o.flavor,
        installer=o.installer, ca_cert=o.ca_cert,
        wheelhouse=o.wheelhouse, base_image=o.base_image or None,
        allow_unpinned_base=o.allow_unpinned_base, index_url=o.index_url or None,
        conda_channel_alias=o.conda_channel_alias or None, no_cache=o.no_cache, uid=o.uid,
        gid=o.gid, tag=o.tag,
    )  # fmt: skip
    from torchenv.lock import gate as lockgate
    from torchenv.lock import make

    def lock(t: matrix.Target) -> str:
        return make.lock_pip(t, index_url=req.index_url)

    with nullcontext() if o.dry_run else exclusive(req.target.root, "locks", "the locks"):
        lockgate.ensure(
            req.target, req.installer, frozen=o.frozen, allow_unlocked=o.allow_unlocked,
            flavor=req.flavor, dry_run=o.dry_run, lock=lock,
        )  # fmt: skip
    eng = engine.for_dry_run() if o.dry_run else engine.detect()
    for line in reuse.build(req, eng, o.registry, push=not o.no_push, dry_run=o.dry_run):
        if o.dry_run:
            print(line)


@command("smoke", TARGET, FLAVOR, *SMOKE_OPTIONS, DRY_RUN)
def smoke(c: Any, o: Given) -> None:
    """Run the smoke suite in a target's image, with the target's expectations."""
    t = target_of(o.target, matrix.project_root())
    if o.no_gpu and o.require_gpu:
        raise UserError("--no-gpu and --require-gpu contradict each other: pick one")
    smokes.check_flags(o.explicit, nodes=bool(o.nodes))
    reports = o.reports
    smokes.check_reports(reports)  # a file or an unwritable folder, said before the run
    if o.nodes:
        _smoke_nodes(t, o.image or t.image(o.flavor), o, reports)
        return
    extra = smokes.parse_args(o.args)
    req = smokes.SmokeRequest(
        target=t, image=o.image or t.image(o.flavor), gpu="no" if o.no_gpu else "auto",
        require_gpu=o.require_gpu, quick=o.quick, extra_args=extra, reports=reports,
        timeout_s=smokes.parse_timeout(o.timeout),
    )  # fmt: skip
    if o.dry_run:
        print(smokes.describe(smokes.run_kwargs(req, gpu=smokes.wants_gpu(req, t.is_cuda))))
        return
    client = engine.docker_sdk_client()
    gpu = smokes.wants_gpu(req, engine.gpu_runtime(client))
    if gpu and not o.ignore_arch:
        gpufit.refuse(t, images.image_label(client, req.image, labels.CUDA_ARCHS))
    if t.is_cuda and not gpu:
        why = "--no-gpu given" if o.no_gpu else "this engine has no NVIDIA runtime"
        print(f"torchenv: running without a GPU ({why}): the GPU checks will skip")
    try:
        code = smokes.run(req, client, gpu)
    except smokes.TimedOut as exc:
        raise Exit(f"error: {exc}", code=smokes.TIMEOUT_EXIT) from None
    if code != 0:
        raise Exit(f"smoke suite failed in {req.image} (exit {code})", code=code)


def _smoke_nodes(t: matrix.Target, image: str, o: Given, reports: Path | None) -> None:
    import dataclasses

    from torchenv.run import multinode, multinode_run

    n, p, port = multinode.validate(o.nodes, o.nproc_per_node, o.rdzv_port)
    req = multinode.MultiNodeRequest(target=t, image=image, nodes=n, nproc=p, rdzv_port=port)
    if o.dry_run:
        print("\n".join(multinode.describe(multinode.plan(req))))
        return
    client = engine.docker_sdk_client()
    if t.is_cuda and not o.no_gpu and engine.gpu_runtime(client):
        req = dataclasses.replace(req, gpus_per_node=p)
    multinode_run.smoke(req, client, reports)


@command("shell", TARGET, FLAVOR, NO_GPU, IGNORE_ARCH, DRY_RUN)
def shell(c: Any, o: Given) -> None:
    """Open a shell in a target's image, the workspace mounted, as you (piped input works too)."""
    from torchenv.run import shell as shells

    req = shells.ShellRequest(
        target=target_of(o.target, matrix.project_root()), flavor=o.flavor, gpu=not o.no_gpu
    )
    if req.target.is_cuda and req.gpu and not o.dry_run and not o.ignore_arch:
        gpufit.refuse(req.target, None)
    code = shells.open_shell(req, dry_run=o.dry_run)
    if code:
        raise Exit(code=code)


@command(
    "test", TARGET, FLAVOR, NO_GPU, REPORTS, IMAGE, IGNORE_ARCH, DRY_RUN,
)  # fmt: skip
def test(c: Any, o: Given) -> None:
    """Run the project's tests in a target's image (invoke test --target cuda13 -- -k mlp)."""
    from torchenv.run import project_tests as projecttest

    root = matrix.project_root()
    req = projecttest.TestRequest(
        target=target_of(o.target, root), project=matrix.project(root), args=after_dashes(c),
        flavor=o.flavor, gpu=not o.no_gpu, reports=o.reports, image=o.image or None,
    )  # fmt: skip
    if req.target.is_cuda and req.gpu and not o.dry_run and not o.ignore_arch:
        gpufit.refuse(req.target, None)
    code = projecttest.run(req, dry_run=o.dry_run)
    if code:
        image = req.image or req.target.image(req.flavor)
        raise Exit(f"the tests failed in {image} (exit {code})", code=code)


@command("notebook", TARGET, PORT, NO_GPU, IMAGE, IGNORE_ARCH, DRY_RUN)
def notebook(c: Any, o: Given) -> None:
    """Start JupyterLab in a target's dev image, the workspace mounted, as you; prints its URL."""
    from torchenv.run import notebook as notebooks

    req = notebooks.NotebookRequest(
        target=target_of(o.target, matrix.project_root()), port=o.port, gpu=not o.no_gpu,
        image=o.image or None,
    )  # fmt: skip
    if req.target.is_cuda and req.gpu and not o.dry_run and not o.ignore_arch:
        gpufit.refuse(req.target, None)
    code = notebooks.run(req, dry_run=o.dry_run)
    if code:
        raise Exit(f"JupyterLab ended with exit {code} in {req.image_name}", code=code)


@command(
    "clean", TARGET_ALL,
    Option("dry_run", "show what would be removed and what is kept, remove nothing", False, bool),
)  # fmt: skip
def clean(c: Any, o: Given) -> None:
    """Remove what torchenv made on the engine, found by its labels: images, containers, networks."""
    from torchenv.image import clean as cleans

    names = targets_of(o.target, matrix.project_root())
    client = engine.detect().client
    projects = frozenset(t.image_repo for t in names)  # this project's alone
    steps = cleans.plan(
        cleans.find(client, o.target and names[0].name, projects=projects),
        known_images=[t.image(f) for t in names for f in matrix.FLAVORS], projects=projects,
    )  # fmt: skip
    for line in cleans.describe(steps, o.dry_run):
        print(line)
    failed = [] if o.dry_run else cleans.run(steps, client)
    for line in failed:
        print(line)
    if failed:
        raise UserError(f"{len(failed)} of torchenv's objects could not be removed (above)")


@command(
    "doctor", Option("target", "check only this target's needs (default: all targets)"),
    Option("require_gpu", "fail when no usable GPU/driver is found (default: warn)", False, bool),
    *(opt for opt in BUILD_CONFIGURABLE if opt.name in ("base_image", "installer", "ca_cert")),
)  # fmt: skip
def doctor(c: Any, o: Given) -> None:
    """Check this host before a build: engine, BuildKit, disk, base images, driver, GPU runtime, shm, proxy."""
    from torchenv.doctor import checkup as doctors

    targets = targets_of(o.target, matrix.project_root())
    images = {"base image": str(o.base_image)} if o.base_image else None
    if o.installer == "conda":
        images = images or {"base image": targets[0].base_ref}
        images["micromamba image"] = targets[0].micromamba_ref
    rows = doctors.run_checks(
        targets=targets, require_gpu=o.require_gpu, images=images,
        ca_cert=str(o.ca_cert) if o.ca_cert else None,
    )  # fmt: skip
    print(doctors.render(rows))
    if doctors.exit_code(rows):
        raise Exit("doctor found problems: each failed row above says how to fix it", code=1)


@command(
    "lock", Option("target", "lock this target (default with --check: all targets)"),
    Option("check", "only check that env files and locks agree (drift), write nothing", False,
           bool),
    Option("installer", "the lock this installer reads: uv or pip (the pip lock), conda "
           "(default: both)", choices=INSTALLERS),
    Option("index_url", "resolve against this mirror of the target's index (default: the "
           "target's)"),
    Option("upgrade", "resolve again where a lock is current (default: keep it, so that a new "
           "dependency leaves torch's lock alone)", False, bool),
    RESOLVER, DRY_RUN,
)  # fmt: skip
def lock(c: Any, o: Given) -> None:
    """Write a target's locks (exact versions, sha256) next to its env file; --check for drift."""
    from torchenv.lock import drift, make

    root = matrix.project_root()
    if o.check:
        problems = drift.check_all(targets_of(o.target, root))
        for problem in problems:
            print(problem)
        if problems:
            names = " ".join(t.name for t in targets_of(o.target, root))
            raise Exit(
                f"locks and env files disagree: run `invoke lock --target T` for T in {names}",
                code=1,
            )
        print("locks agree with their env files")
        return
    if o.dry_run:
        for line in make.planned_commands(
            target_of(o.target, root), o.installer, o.index_url, o.resolver
        ):
            print(line)
        return
    with exclusive(root, "locks", "the locks"):
        lines = make.lock_target(
            target_of(o.target, root), installer=o.installer, index_url=o.index_url,
            upgrade=o.upgrade, resolver=o.resolver or None,
        )  # fmt: skip
    for line in lines:
        print(line)


@command(
    "verify",
    Option("target", f"the target whose lock to verify against: {target_names()} (default with "
           "--image: the image's io.torchenv.target label)"),
    Option("image", "verify this image: built here, pulled by digest, derived (default: the "
           "target's runtime image)"),
)  # fmt: skip
def verify(c: Any, o: Given) -> None:
    """Hash what an image holds now; compare with the target's lock and the build's manifest."""
    from torchenv.image import verify as verification

    image, root = o.image, matrix.project_root()
    if image and not o.target:
        t = matrix.get(verification.target_of(image), root)
    else:
        t = target_of(o.target, root)
    differences = verification.verify_image(t, image=image)
    for line in differences:
        print(line)
    if differences:
        raise Exit(f"{image or t.image()} differs from its lock ({len(differences)})", code=1)
    print(f"{image or t.image()} matches its lock")


@command(
    "refresh-digest",
    Option("key", "base_digest or micromamba_digest", "base_digest",
           choices=("base_digest", "micromamba_digest")),
    Option("image", "resolve this tag (default: the matrix's base_image / micromamba_image)"),
)  # fmt: skip
def refresh_digest(c: Any, o: Given) -> None:
    """Re-pin a base image: resolve its tag's digest on a registry and rewrite targets.toml."""
    from torchenv.matrix import digests

    digest = digests.refresh_digest(o.image, key=o.key, root=matrix.project_root())
    print(f"{o.key} = {digest}; now run `invoke generate`")


@command(
    "export", TARGET,
    Option("format", "docker-archive (`docker save`) or oci-archive (needs skopeo)",
           "docker-archive", choices=("docker-archive", "oci-archive")),
    Option("out", "the archive file (default: <target>[-dev].<format>.tar here)", kind=Path),
    FLAVOR, IMAGE, DRY_RUN,
)  # fmt: skip
def export(c: Any, o: Given) -> None:
    """Save a target's image as one archive file, e.g. for `apptainer build` on a cluster."""
    from torchenv.image import export as exports

    t = target_of(o.target, matrix.project_root())
    req = exports.ExportRequest(
        image=o.image or t.image(o.flavor), format=o.format,
        out=o.out or exports.default_out(t.name, o.flavor, o.format), target=t.name,
        flavor=o.flavor,
    )  # fmt: skip
    exports.validate(req)  # before looking for an engine: bad input first
    if o.dry_run:
        print("\n".join(exports.plan(req, engine.for_dry_run().client)))
        return
    for line in exports.export(req, engine.detect().client):
        print(line, flush=True)


@command(
    "k8s", TARGET,
    Option("nodes", "pods (nodes) of the Indexed Job", 2, int, low=1, high=64),
    Option("gpus_per_node", "nvidia.com/gpu per pod, one rank per GPU (0: CPU and gloo)", 0, int,
           low=0, high=16),
    Option("image", "image reference, NAME@sha256:... (default: the digest `invoke push` "
           "recorded)"),
    Option("flavor", "runtime or dev, for the recorded digest", "runtime", choices=matrix.FLAVORS),
    Option("output", "write the manifest here (default: stdout)", kind=Path),
)  # fmt: skip
def k8s(c: Any, o: Given) -> None:
    """Write a Kubernetes manifest (Indexed Job + headless Service) that runs the DDP smoke suite."""
    import sys

    from torchenv.files import write_atomic
    from torchenv.image import publish as publishes
    from torchenv.run import k8s as kube

    t = target_of(o.target, matrix.project_root())
    if o.output is not None:  # a folder or an unwritable path, said before anything else
        from torchenv.files import check_writable_file

        check_writable_file(o.output, "--output")
    kube.check_gpus_per_node(o.gpus_per_node)
    ref, source = publishes.resolve_image(t, o.image, o.flavor)
    text = kube.checked_manifest(t, ref, source, o.nodes, o.gpus_per_node)
    if o.output is None:
        print(text, end="")
        return
    try:
        write_atomic(o.output, text)
    except OSError as exc:
        raise UserError(f"cannot write {o.output}: {exc.strerror}") from None
    print(f"wrote {o.output} (image {ref}, {source})", file=sys.stderr)


@command(
    "push", TARGET,
    Option("registry", "HOST[:PORT]/NAMESPACE, e.g. ghcr.io/my-org (log in with docker login "
           "first)"),
    FLAVOR, Option("reports", "folder for the record pushed-<target>.json", "reports", Path),
    DRY_RUN,
)  # fmt: skip
def push(c: Any, o: Given) -> None:
    """Push a target's image to a registry; print and record its reference by digest."""
    from torchenv.image import publish as publishes

    t = target_of(o.target, matrix.project_root())
    if not o.registry:
        raise UserError("--registry is required: HOST[:PORT]/NAMESPACE, e.g. ghcr.io/my-org")
    if o.dry_run:
        print("\n".join(publishes.describe(t, o.registry, o.flavor)))
        return
    reports = o.reports or t.root  # `--reports ""`: the record goes to the project's root
    pushed = publishes.push(t, o.registry, engine.docker_sdk_client(), o.flavor, reports)
    print(f"pushed {pushed.image}: digest {pushed.digest}")
    print(f"recorded in {publishes.record_path(t, o.flavor, reports)}")
    print(pushed.reference)


TASKS = (
    matrix_, generate, build, smoke, test, shell, notebook, clean, doctor, lock, verify,
    refresh_digest, export, k8s, push,
)  # fmt: skip
ns = Collection(*TASKS)
ns.configure({"run": {"echo": True}, "torchenv": config_defaults(CONFIGURABLE)})
