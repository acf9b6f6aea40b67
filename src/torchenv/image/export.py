"""Export a built image to one archive file, for machines without a Docker engine (HPC clusters:
`apptainer build torch.sif docker-archive:FILE`, or `oci-archive:FILE`).

- docker-archive: `docker save` (the format every Docker engine writes, 20.10 included).
- oci-archive: `docker save`, then `skopeo copy docker-archive:... oci-archive:...` (an engine
  before 25 cannot write OCI itself, and Apptainer reads `docker save` output as oci-archive only
  from Docker 25 on).

The archive appears at its path in one rename once it is complete; every intermediate file lives
in a hidden work folder next to it that is removed whatever happens (a failure, Ctrl-C). Command
construction is pure (`commands`), so tests assert the exact command lines.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torchenv.engine.images import require_image
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner

FORMATS = ("docker-archive", "oci-archive")
SKOPEO = "skopeo"
SAVED = "docker-archive.tar"  # names inside the work folder
CONVERTED = "oci-archive.tar"


@dataclass(frozen=True)
class ExportRequest:
    image: str  # NAME:TAG of a built image
    format: str  # one of FORMATS
    out: Path
    target: str = ""  # the target and flavor that build `image`, for the not-built message
    flavor: str = "runtime"


def default_out(target: str, flavor: str, fmt: str) -> Path:
    """`cuda13.docker-archive.tar`, `cuda13-dev.oci-archive.tar`, in the current folder."""
    name = target if flavor == "runtime" else f"{target}-{flavor}"
    return Path(f"{name}.{fmt}.tar")


def validate(req: ExportRequest) -> Path:
    """Refuse a format or an output path that cannot work; returns the absolute output path."""
    if req.format not in FORMATS:
        raise UserError(f"unknown export format {req.format!r}: choose {' or '.join(FORMATS)}")
    if not req.image or req.image.startswith("-") or any(c.isspace() for c in req.image):
        # `--image --help` must not become an option of `docker save`
        raise UserError(f"--image {req.image!r} is not an image reference: e.g. NAME:TAG")
    if req.format == "oci-archive" and shutil.which(SKOPEO) is None:
        raise UserError(
            "--format oci-archive needs skopeo (apt-get install skopeo), "
            "or use --format docker-archive"
        )
    out = Path(os.path.abspath(req.out))
    if out.is_dir():
        raise UserError(f"--out {req.out} is a folder: give a file name, e.g. {req.out}/image.tar")
    if not out.parent.is_dir():
        raise UserError(
            f"the folder of --out {req.out} does not exist (or is no folder): create it or "
            f"choose another path"
        )
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {out.parent}: choose another --out")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {req.out} exists and is not a regular file: choose another path")
    return out


def oci_reference(image: str) -> str:
    """The name the image carries inside the OCI archive: its tag (`2.11.0-cu130`)."""
    name, _, tag = image.rpartition(":")
    return tag if name and "/" not in tag else "latest"


def commands(req: ExportRequest, client: str, work: Path) -> list[list[str]]:
    """The exact commands that write the archive into `work` (its last one writes `result`)."""
    save = [client, "save", "--output", str(work / SAVED), "--", req.image]
    if req.format == "docker-archive":
        return [save]
    convert = [
        SKOPEO, "copy", "--quiet", f"docker-archive:{work / SAVED}",
        f"oci-archive:{work / CONVERTED}:{oci_reference(req.image)}",
    ]  # fmt: skip
    return [save, convert]


def result(req: ExportRequest, work: Path) -> Path:
    return work / (SAVED if req.format == "docker-archive" else CONVERTED)


def plan(req: ExportRequest, client: str) -> list[str]:
    """The commands as `invoke export --dry-run` prints them (XXXXXX: the work folder's suffix)."""
    out = Path(os.path.abspath(req.out))
    work = out.parent / f".{out.name}.XXXXXX.tmp"
    lines = [shlex.join(argv) for argv in commands(req, client, work)]
    return [*lines, shlex.join(["mv", str(result(req, work)), str(out)])]


def _require_image(req: ExportRequest, client: str, runner: Runner) -> None:
    require_image(client, req.image, req.target, req.flavor, runner)


def export(req: ExportRequest, client: str, runner: Runner = subprocess_runner) -> Iterator[str]:
    """Write the archive, yielding a line per step; UserError (and nothing left) on failure."""
    out = validate(req)
    _require_image(req, client, runner)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    with sigterm_as_ctrl_c():  # a cancelled job cleans up too
        try:
            for argv in commands(req, client, work):
                yield f"$ {shlex.join(argv)}"
                done = runner(argv)
                if not done.ok:
                    raise UserError(
                        f"{os.path.basename(argv[0])} {argv[1]} failed: {done.first_error_line()}"
                    )
            os.replace(result(req, work), out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    size = out.stat().st_size / 1e9
    yield f"wrote {req.out} ({req.format}, {size:.2f} GB)"
