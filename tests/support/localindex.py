"""An offline package index for tests: tiny distributions made here, served as a PEP 503 "simple"
index on 127.0.0.1, so that resolving and building a project needs no network at test time.

- `build_wheel` / `build_sdist` write minimal valid distributions, byte for byte the same on every
  run (fixed timestamps, sorted entries, stored not deflated), so a fixture may carry their sha256.
- `SimpleIndex` serves one or more folders of distribution files (the first folder that has a
  project hides the others' files of that project).
- `standin_torch_family` and `standin_common` make the stand-ins the fixture projects depend on;
  `backend_wheelhouse` downloads the real build backends once, for building those projects.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import html
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from email.parser import HeaderParser
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
# 2020-01-01T00:00:00Z: after 1980 (zip cannot say earlier), the same on every run.
FIXED_MTIME = 1_577_836_800
FIXED_DATE_TIME = (2020, 1, 1, 0, 0, 0)
TORCH_TAG = "cp311-cp311-manylinux_2_28_x86_64"
NVIDIA_TAG = "py3-none-manylinux_2_27_x86_64"
LINUX_X86 = 'platform_system == "Linux" and platform_machine == "x86_64"'
# The real build backends, for building the fixture projects; pip adds what they need on the
# running Python (packaging, pathspec, pluggy, trove-classifiers, tomlkit; tomli before 3.11).
BACKENDS = ("setuptools", "wheel", "hatchling", "flit-core", "pdm-backend", "poetry-core")
DOWNLOAD_TIMEOUT_S = 600

Files = Mapping[str, str | bytes]


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, as pip's `--hash=sha256:` and an index's `#sha256=` carry it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_name(name: str) -> str:
    """The import name a stand-in of project `name` gets: `typing-extensions` -> typing_extensions."""
    return canonicalize_name(name).replace("-", "_")


def metadata_text(
    name: str,
    version: str,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Core metadata 2.1 (METADATA of a wheel, PKG-INFO of an sdist)."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines.append(f"Summary: Stand-in {name} {version} for torchenv's tests (no real code)")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires]
    for extra, reqs in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            base, _, marker = req.partition(";")
            condition = f'extra == "{extra}"'
            if marker.strip():
                condition = f"({marker.strip()}) and {condition}"
            lines.append(f"Requires-Dist: {base.strip()}; {condition}")
    return "\n".join(lines) + "\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _default_files(name: str, version: str) -> dict[str, str | bytes]:
    doc = f'"""Stand-in {name} {version}: no real code, for resolving and installing offline."""\n'
    return {f"{module_name(name)}/__init__.py": f'{doc}\n__version__ = "{version}"\n'}


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    files: Files | None = None,
    tag: str = "py3-none-any",
    *,
    requires_python: str | None = None,
    extras: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write `<name>-<version>-<tag>.whl` into `dest_dir` and return its path.

    `files` (path in the wheel -> text or bytes) is its content; by default the package
    `<name>/__init__.py` with `__version__`. METADATA lists `requires` as Requires-Dist (and each
    extra's requirements with their `extra ==` marker); RECORD has every file's sha256. The bytes
    depend only on the arguments, so the wheel's sha256 is stable across runs and machines.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{module_name(name)}-{version}"
    dist_info = f"{stem}.dist-info"
    content = {**(files if files is not None else _default_files(name, version))}
    purelib = tag.endswith("-none-any")
    py_tags, abi_tags, plat_tags = (part.split(".") for part in tag.split("-"))
    tags = [f"{py}-{abi}-{plat}" for py in py_tags for abi in abi_tags for plat in plat_tags]
    wheel_text = "Wheel-Version: 1.0\nGenerator: torchenv-tests\n"
    wheel_text += f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
    wheel_text += "".join(f"Tag: {t}\n" for t in tags)
    entries: list[tuple[str, bytes]] = [
        (path, data.encode() if isinstance(data, str) else data)
        for path, data in sorted(content.items())
    ]
    meta = metadata_text(name, version, requires, requires_python, extras)
    entries += [
        (f"{dist_info}/METADATA", meta.encode()),
        (f"{dist_info}/WHEEL", wheel_text.encode()),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    target = dest_dir / f"{stem}-{tag}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=FIXED_DATE_TIME)
            info.create_system = 3  # unix, whatever this machine is
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return target


def build_sdist(dest_dir: Path, name: str, version: str, requires: Sequence[str] = ()) -> Path:
    """Write `<name>-<version>.tar.gz` (PKG-INFO, a setuptools pyproject.toml, the package) into
    `dest_dir` and return its path. Building it needs setuptools from the index in use (the backend
    wheelhouse serves it); nothing else is fetched."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = f"{module_name(name)}-{version}"
    deps = "".join(f"    {req!r},\n".replace("'", '"') for req in requires)
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [\n{deps}]\n'
    )
    members: dict[str, str | bytes] = {
        "PKG-INFO": metadata_text(name, version, requires),
        "pyproject.toml": pyproject,
        **_default_files(name, version),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, text in sorted(members.items()):
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    target = dest_dir / f"{root}.tar.gz"
    with target.open("wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=FIXED_MTIME) as gz:
        gz.write(buffer.getvalue())
    return target


def read_metadata(path: Path) -> str:
    """The core metadata text of a wheel (its METADATA) or an sdist (its PKG-INFO)."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            # The top-level .dist-info only: a wheel may vendor others (flit_core's tomli).
            name = next(
                n
                for n in archive.namelist()
                if n.endswith(".dist-info/METADATA") and n.count("/") == 1
            )
            return archive.read(name).decode()
    with tarfile.open(path) as archive:
        member = min(
            (m for m in archive.getmembers() if m.name.endswith("/PKG-INFO")),
            key=lambda m: m.name.count("/"),
        )
        extracted = archive.extractfile(member)
        return extracted.read().decode() if extracted else ""


def project_of(filename: str) -> str | None:
    """The normalized project name of a distribution file, None for anything else."""
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    if filename.endswith((".tar.gz", ".zip")):
        return str(parse_sdist_filename(filename)[0])
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files from the index's folder, without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class SimpleIndex(contextlib.AbstractContextManager["SimpleIndex"]):
    """A PEP 503 index of the distribution files in `folders`, served on 127.0.0.1 (a free port).

    On entry it writes `<root>/simple/index.html`, `<root>/simple/<normalized-name>/index.html`
    (links with `#sha256=`, `data-requires-python` from the file's metadata, and PEP 714
    `data-core-metadata` for wheels) and links the files into `<root>/files/`, then serves `root`
    with `ThreadingHTTPServer` in a daemon thread; on exit it shuts the server down and joins the
    thread. `url` is the index URL to give pip or uv (`http://127.0.0.1:PORT/simple`). When the
    same project is in several folders, the first folder's files are its only files: put a
    wheelhouse of real packages before the stand-ins to let the real ones win. The same tree also
    works as `file://<root>/simple` without the server. Nothing but 127.0.0.1 is touched.
    """

    def __init__(self, *folders: Path, root: Path | None = None) -> None:
        self.folders = [Path(f) for f in folders]
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path()
        self.files: dict[str, Path] = {}  # filename -> source path of every file served
        self.projects: dict[str, list[str]] = {}  # normalized name -> its filenames
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: contextlib.ExitStack | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the index is not serving: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple"

    def write(self) -> None:
        """Write the pages and the file links under `root` (done by __enter__)."""
        owner: dict[str, Path] = {}
        for folder in self.folders:
            for path in sorted(folder.iterdir()):
                project = project_of(path.name)
                if project is None or owner.setdefault(project, folder) != folder:
                    continue
                self.projects.setdefault(project, []).append(path.name)
                self.files[path.name] = path.resolve()
        files_dir = self.root / "files"
        files_dir.mkdir(parents=True, exist_ok=True)
        for filename, source in self.files.items():
            link = files_dir / filename
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source)
        simple = self.root / "simple"
        simple.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="{p}/">{p}</a><br/>\n' for p in sorted(self.projects))
        (simple / "index.html").write_text(_page("Simple index", links))
        for project, filenames in sorted(self.projects.items()):
            anchors = "".join(self._anchor(files_dir, name) for name in filenames)
            (simple / project).mkdir(exist_ok=True)
            (simple / project / "index.html").write_text(_page(f"Links for {project}", anchors))

    def _anchor(self, files_dir: Path, filename: str) -> str:
        source = self.files[filename]
        metadata = read_metadata(source)
        attrs = ""
        requires_python = HeaderParser().parsestr(metadata).get("Requires-Python")
        if requires_python:
            attrs += f' data-requires-python="{html.escape(requires_python)}"'
        if filename.endswith(".whl"):
            (files_dir / f"{filename}.metadata").write_text(metadata)
            digest = hashlib.sha256(metadata.encode()).hexdigest()
            attrs += (
                f' data-core-metadata="sha256={digest}" data-dist-info-metadata="sha256={digest}"'
            )
        href = f"../../files/{filename}#sha256={sha256_of(source)}"
        return f'<a href="{href}"{attrs}>{filename}</a><br/>\n'

    def __enter__(self) -> SimpleIndex:
        self._tmp = contextlib.ExitStack()
        if self._own_root:
            self.root = Path(self._tmp.enter_context(tempfile.TemporaryDirectory(prefix="index-")))
        self.write()
        handler = partial(_QuietHandler, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
        if self._tmp is not None:
            self._tmp.close()


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}</body>\n</html>\n"
    )


def target_pins(target: str = "cuda13") -> dict[str, str]:
    """The torch family's pins of a target in this repository's targets.toml (read directly, so
    these helpers do not depend on how src/ is laid out), e.g. {"torch": "2.14.1", ...}."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    table = tomllib.loads((REPO / "targets.toml").read_text())["targets"][target]
    return {k: table[k] for k in ("torch", "torchvision", "torchaudio", "torchcodec") if k in table}


# The cuda13 lock's versions (envs/cuda13.pip.lock.txt) of the few packages the stand-in torch
# family requires; the real torch requires about twenty more (the other nvidia-* wheels, triton).
TORCH_DEPS = {
    "filelock": "4.3.1",
    "typing-extensions": "4.16.0",
    "sympy": "1.14.0",
    "mpmath": "1.3.0",
    "networkx": "3.6.1",
    "nvidia-cuda-runtime": "13.0.96",
    "nvidia-cublas": "13.1.1.3",
    "pillow": "13.0.0",
    "numpy": "2.4.6",
}
# An older torch than any target's, for pins that exclude the target's torch (`torch==2.0.0`).
OLD_TORCH = "2.0.0"


def standin_torch_family(dest_dir: Path, pins: Mapping[str, str]) -> list[Path]:
    """Stand-in wheels of torch, torchvision, torchaudio and torchcodec at `pins` (see
    `target_pins`), tagged `cp311-cp311-manylinux_2_28_x86_64`, plus what they require, as the real
    ones do: torch needs filelock, typing-extensions, sympy (and so mpmath), networkx and two
    nvidia-* CUDA wheels on Linux x86_64; torchvision needs numpy, torch at its pin and pillow;
    torchaudio needs torch. Also a stand-in torch 2.0.0 (requires nothing) that resolvers can
    find and reject. Returns the paths written. Only `numpy`'s 2.x stand-in is made here:
    `standin_common` adds 1.26.4 (both share the name, so make both in one folder)."""
    deps = TORCH_DEPS
    cuda = [f"{n}=={deps[n]}; {LINUX_X86}" for n in ("nvidia-cuda-runtime", "nvidia-cublas")]
    torch_requires = [
        f"filelock>={deps['filelock']}",
        "typing-extensions>=4.10.0",
        "sympy>=1.13.3",
        "networkx>=2.5.1",
        *cuda,
    ]
    made = [
        build_wheel(dest_dir, "torch", pins["torch"], torch_requires, tag=TORCH_TAG,
                    requires_python=">=3.10"),
        build_wheel(dest_dir, "torch", OLD_TORCH, ["filelock", "typing-extensions"],
                    tag="cp311-cp311-manylinux1_x86_64", requires_python=">=3.8"),
    ]  # fmt: skip
    if "torchvision" in pins:
        vision = ["numpy", f"torch=={pins['torch']}", "pillow!=8.3.*,>=5.3.0"]
        made.append(
            build_wheel(dest_dir, "torchvision", pins["torchvision"], vision, tag=TORCH_TAG)
        )
    if "torchaudio" in pins:
        made.append(
            build_wheel(dest_dir, "torchaudio", pins["torchaudio"], ["torch"], tag=TORCH_TAG)
        )
    if "torchcodec" in pins:
        made.append(build_wheel(dest_dir, "torchcodec", pins["torchcodec"], tag=TORCH_TAG))
    made += [
        build_wheel(dest_dir, "filelock", deps["filelock"], requires_python=">=3.10"),
        build_wheel(dest_dir, "typing-extensions", deps["typing-extensions"],
                    files={"typing_extensions.py": '"""Stand-in."""\n'}),
        build_wheel(dest_dir, "sympy", deps["sympy"], ["mpmath<1.4,>=1.1.0"]),
        build_wheel(dest_dir, "mpmath", deps["mpmath"]),
        build_wheel(dest_dir, "networkx", deps["networkx"], requires_python=">=3.11"),
        build_wheel(dest_dir, "nvidia-cuda-runtime", deps["nvidia-cuda-runtime"], tag=NVIDIA_TAG,
                    files={"nvidia/cuda_runtime/__init__.py": ""}),
        build_wheel(dest_dir, "nvidia-cublas", deps["nvidia-cublas"], tag=NVIDIA_TAG,
                    files={"nvidia/cublas/__init__.py": ""}),
        build_wheel(dest_dir, "pillow", deps["pillow"], tag=TORCH_TAG,
                    files={"PIL/__init__.py": '"""Stand-in."""\n'}),
        build_wheel(dest_dir, "numpy", deps["numpy"], requires_python=">=3.11"),
    ]  # fmt: skip
    return made


# The pure-Python stand-ins the fixture projects depend on: name -> (version, requires, files).
COMMON: dict[str, tuple[str, tuple[str, ...], dict[str, str] | None]] = {
    "tqdm": ("4.67.1", (), None),
    "einops": ("0.8.1", (), None),
    "pytest": ("8.4.2", ("iniconfig>=1", "packaging>=20", "pluggy<2,>=1.5"), None),
    "pluggy": ("1.6.0", (), None),
    "iniconfig": ("2.1.0", (), None),
    "packaging": ("25.0", (), None),
    "pyyaml": ("6.0.3", (), {"yaml/__init__.py": '"""Stand-in pyyaml."""\n'}),
    "ruff": ("0.14.0", (), None),
}
NUMPY_1 = "1.26.4"


def standin_common(dest_dir: Path) -> list[Path]:
    """Tiny py3-none-any stand-ins of the pure-Python packages the fixtures use (`COMMON`), numpy
    1.26.4 (requires-python >=3.9), and an sdist of einops besides its wheel (a fixture asks for
    `--no-binary einops`). pluggy and packaging are stand-ins too; serve the backend wheelhouse
    first to let its real ones (which hatchling imports) hide them."""
    made = [
        build_wheel(dest_dir, name, version, requires, files)
        for name, (version, requires, files) in COMMON.items()
    ]
    made.append(build_wheel(dest_dir, "numpy", NUMPY_1, requires_python=">=3.9"))
    made.append(build_sdist(dest_dir, "einops", COMMON["einops"][0]))
    return made


class WheelhouseUnavailable(RuntimeError):
    """The backend wheelhouse could not be downloaded (no index reachable, no pip)."""


def backend_wheelhouse(dest_dir: Path, packages: Sequence[str] = BACKENDS) -> Path:
    """Fill `dest_dir` once with the real wheels of the build backends and their dependencies:
    `pip download --only-binary :all:` of setuptools, wheel, hatchling, flit-core, pdm-backend,
    poetry-core, with what they need on this Python, from pip's default or configured index (no
    index is named here).

    Tests call it once per session (the `backend_wheels` fixture of tests/support/indexfixtures.py)
    with a folder that outlives the session where they can (pytest's cache) or a session temporary
    folder; a folder already filled (its `.complete` names the same packages and Python) is
    returned as it is.
    When the download is impossible, it raises WheelhouseUnavailable with pip's last lines: the
    fixture turns that into a skip with the reason, or a failure when the CI variable is set.
    """
    marker = dest_dir / ".complete"
    wanted = f"python {sys.version_info[0]}.{sys.version_info[1]}\n" + "\n".join(packages) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return dest_dir
    partial_dir = dest_dir.with_name(dest_dir.name + ".partial")
    if partial_dir.exists():
        shutil.rmtree(partial_dir)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--retries", "1", "--timeout", "30", "--only-binary", ":all:",
            "--dest", str(partial_dir), *packages]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WheelhouseUnavailable(f"pip download of the build backends failed: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise WheelhouseUnavailable(f"pip download of the build backends failed: {tail}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    for path in partial_dir.iterdir():
        os.replace(path, dest_dir / path.name)
    partial_dir.rmdir()
    marker.write_text(wanted)
    return dest_dir
