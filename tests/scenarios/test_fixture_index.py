"""The offline test index and the fixture projects work together, without the network.

tests/support/localindex.py serves stand-in distributions (the cuda13 target's torch family and
the small packages the fixtures name) and the real build backends' wheels (downloaded once per
session) on 127.0.0.1. Here every fixture project under tests/fixtures/projects that is a Python
project builds its wheel from that index alone (uv build, no configuration, no cache), declaring
what its shape says; flat-setuptools' dependencies resolve with the stand-in torch family for
Python 3.11 on manylinux_2_28 with the stand-ins' hashes, and the result installs with
--require-hashes; pip installs from the same index and builds the einops sdist.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tests.support.fixtureprojects import (
    PROJECTS,
    SHAPES,
    copy_project,
    has_build_backend,
    offline_env,
    uv_binary,
)
from tests.support.localindex import SimpleIndex, read_metadata, sha256_of, target_pins

# The session fixtures standin_wheels, backend_wheels, standin_index and build_index.
pytest_plugins = ["tests.support.indexfixtures"]

EXPECTED_SHAPES = {
    "dependency-groups", "dynamic-deps", "environment-yaml", "environment-yaml-other-torch",
    "flat-setuptools", "flit", "hatchling", "minimal-plus-requirements", "numpy-lt-2",
    "pdm-backend", "poetry-core", "requirements-includes", "self-extra", "setup-cfg",
    "setup-py-only", "src-layout", "three-problems", "torch-marker-win32",
}  # fmt: skip
# What each built wheel declares: its requirements outside any extra, and its extras. The
# development groups of PDM, Poetry and PEP 735, and requirements*.txt outside setuptools'
# dynamic table, are not in a wheel's metadata: they are what torchenv must read itself.
DECLARED: dict[str, tuple[set[str], set[str]]] = {
    "dependency-groups": ({"tqdm"}, set()),
    "dynamic-deps": ({"einops", "tqdm"}, set()),
    "flat-setuptools": ({"einops", "tqdm"}, set()),
    "flit": ({"einops"}, {"test"}),
    "hatchling": ({"pyyaml", "tqdm"}, {"test"}),
    "minimal-plus-requirements": (set(), set()),
    "numpy-lt-2": ({"numpy", "tqdm"}, set()),
    "pdm-backend": ({"tqdm"}, set()),
    "poetry-core": ({"tqdm"}, {"shapes"}),
    "self-extra": ({"einops"}, {"test", "dev", "my-test", "all"}),
    "setup-cfg": ({"einops", "pyyaml"}, {"test"}),
    "setup-py-only": ({"einops", "tqdm"}, {"test"}),
    "src-layout": ({"numpy", "tqdm"}, set()),
    "three-problems": (set(), set()),
    "torch-marker-win32": ({"torch", "tqdm"}, set()),
}
BUILDABLE = [shape for shape in SHAPES if has_build_backend(PROJECTS / shape)]


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # a TMPDIR of its own: uv leaves a uv-setuptools-*.lock where TMPDIR is for each build
    with tempfile.TemporaryDirectory(prefix="fixture-index-") as scratch:
        env = offline_env({"TMPDIR": scratch})
        return subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
        )


def test_every_shape_is_there_with_its_readme_and_package():
    assert set(SHAPES) == EXPECTED_SHAPES
    assert set(BUILDABLE) == set(DECLARED)
    for shape in SHAPES:
        readme = (PROJECTS / shape / "README.md").read_text().splitlines()
        assert len(readme) == 1 and readme[0], shape
        assert list((PROJECTS / shape).glob("**/mypkg/__init__.py")), shape


def test_the_requirement_hashes_are_the_standin_wheels():
    script = PROJECTS / "make_hashes.py"
    done = run([sys.executable, str(script), "--check"], cwd=PROJECTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (PROJECTS / "requirements-includes" / "requirements.txt").read_bytes()[:3] == (
        b"\xef\xbb\xbf"
    )


@pytest.mark.slow
@pytest.mark.parametrize("shape", BUILDABLE)
def test_each_project_builds_its_wheel_offline(shape: str, build_index: SimpleIndex, tmp_path):
    project = copy_project(shape, tmp_path)
    out = tmp_path / "dist"
    done = run(
        [uv_binary(), "build", "--wheel", "--no-config", "--no-cache",
         "--index-url", build_index.url, "--python", sys.executable,
         "--out-dir", str(out), str(project)],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("mypkg-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "mypkg/__init__.py" in archive.namelist()
    metadata = read_metadata(wheel).splitlines()
    requires = [Requirement(line.split(":", 1)[1]) for line in metadata if line.startswith("Requires-Dist:")]  # fmt: skip
    plain = {canonicalize_name(r.name) for r in requires if "extra" not in str(r.marker or "")}
    extras = {line.split(":", 1)[1].strip() for line in metadata if line.startswith("Provides-Extra:")}  # fmt: skip
    assert (plain, extras) == DECLARED[shape]


@pytest.mark.slow
def test_flat_setuptools_resolves_with_the_torch_family(standin_index, standin_wheels, tmp_path):
    pins = target_pins("cuda13")
    family = tmp_path / "family.in"
    family.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    lock = tmp_path / "lock.txt"
    done = run(
        [uv_binary(), "pip", "compile", "--no-config", "--no-cache", "--index-url", standin_index.url,
         "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
         "--generate-hashes", "--no-header", "--no-annotate", "--output-file", str(lock),
         str(PROJECTS / "flat-setuptools" / "pyproject.toml"), str(family)],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = lock.read_text()
    pinned = dict(
        line.split(" ")[0].split("==") for line in text.splitlines() if "==" in line
    )  # fmt: skip
    assert pinned == {
        **pins,
        "einops": "0.8.1", "tqdm": "4.67.1", "numpy": "2.4.6", "pillow": "13.0.0",
        "filelock": "4.3.1", "typing-extensions": "4.16.0", "sympy": "1.14.0",
        "mpmath": "1.3.0", "networkx": "3.6.1",
        "nvidia-cuda-runtime": "13.0.96", "nvidia-cublas": "13.1.1.3",
    }  # fmt: skip
    served = {sha256_of(path) for path in standin_wheels.iterdir()}
    hashes = {
        line.split("sha256:")[1].split()[0] for line in text.splitlines() if "sha256:" in line
    }
    assert hashes and hashes <= served
    torch_wheel = next(standin_wheels.glob(f"torch-{pins['torch']}-*.whl"))
    assert sha256_of(torch_wheel) in hashes

    # The lock installs as it is, hashes required, into a Python 3.11 venv of this machine.
    venv = tmp_path / "venv"
    assert run([uv_binary(), "venv", "--no-config", "--python", sys.executable, str(venv)], cwd=tmp_path).returncode == 0  # fmt: skip
    done = run(
        [uv_binary(), "pip", "install", "--no-config", "--no-cache", "--python", str(venv / "bin" / "python"),
         "--index-url", standin_index.url, "--require-hashes", "-r", str(lock)],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    probe = "import torch, torchvision, tqdm; print(torch.__version__, torchvision.__version__)"
    done = run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path)
    assert done.stdout.split() == [pins["torch"], pins["torchvision"]], done.stderr


@pytest.mark.slow
def test_pip_installs_from_the_index_and_builds_the_sdist(build_index: SimpleIndex, tmp_path):
    target = tmp_path / "site"
    done = run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target),
         "--index-url", build_index.url, "--no-binary", "einops", "einops==0.8.1", "pytest", "numpy<2"],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    installed = {p.name for p in target.glob("*.dist-info")}
    # pytest's pluggy and packaging are the real ones: the wheelhouse hides their stand-ins.
    assert {
        "einops-0.8.1.dist-info",
        "numpy-1.26.4.dist-info",
        "pytest-8.4.2.dist-info",
    } <= installed
    assert not {"pluggy-1.6.0.dist-info", "packaging-25.0.dist-info"} & installed
