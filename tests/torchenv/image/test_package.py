"""torchenv.image.package: the project's own wheel, built from the working tree for the image's last
layer: only when the project has a package, pure Python only, nothing left in the tree."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from torchenv.errors import UserError
from torchenv.image import package as projectpkg
from torchenv.matrix import Project
from torchenv.runner import Result

SAMPLE = Path(__file__).parents[2] / "sample-project"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))


@pytest.fixture(params=["uv", "pip"])
def builder(request, monkeypatch) -> str:
    """The wheel is built with uv where the host has it, else with pip: both, with a fake."""
    uv = "/opt/uv/bin/uv" if request.param == "uv" else None
    monkeypatch.setattr(projectpkg.uv_resolver, "executable", lambda: uv)
    return str(request.param)


def test_enabled_follows_the_matrix_else_a_project_table(tmp_path: Path, sample: Path):
    assert projectpkg.enabled(sample, Project())
    assert not projectpkg.enabled(sample, Project(package=False))
    assert not projectpkg.enabled(tmp_path, Project())  # no pyproject.toml
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 99\n")
    assert not projectpkg.enabled(tmp_path, Project())  # no [project] table
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(UserError, match=r"^pyproject.toml: .*fix the TOML syntax"):
        projectpkg.enabled(tmp_path, Project())


def test_package_true_without_a_project_table_is_one_line(tmp_path: Path):
    with pytest.raises(UserError, match=r"package = true in targets.toml, but .* no \[project\]"):
        projectpkg.build_wheel(tmp_path)


def fake_build(wheel_name: str, code: int = 0, stderr: str = ""):
    """A runner that 'builds' `wheel_name` into --wheel-dir, as setuptools would, droppings too."""
    calls = []

    def runner(args, **kwargs):
        calls.append((list(args), kwargs))
        root = Path(args[-1])
        (root / "build" / "lib").mkdir(parents=True)
        (root / "sample.egg-info").mkdir()
        if code == 0:
            flag = "--out-dir" if "--out-dir" in args else "--wheel-dir"
            out = Path(args[args.index(flag) + 1])
            with zipfile.ZipFile(out / wheel_name, "w") as zf:
                zf.writestr("sample/__init__.py", "")
        return Result(tuple(args), code, "", stderr)

    return runner, calls


def test_the_wheel_is_staged_alone_and_the_build_leaves_nothing_in_the_tree(sample, builder):
    runner, calls = fake_build("sample-0.2.0-py3-none-any.whl")
    stale = sample / projectpkg.PACKAGE_DIR / "sample-0.1.0-py3-none-any.whl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    wheel = projectpkg.build_wheel(sample, runner)
    assert wheel.pin == "sample==0.2.0"
    assert sorted(p.name for p in wheel.path.parent.iterdir()) == [wheel.path.name]
    assert not (sample / "build").exists() and not (sample / "sample.egg-info").exists()
    args, kwargs = calls[0]
    if builder == "uv":
        assert args[:3] == ["/opt/uv/bin/uv", "build", "--wheel"]
    else:
        assert args[1:4] == ["-m", "pip", "wheel"] and "--no-deps" in args
    env = kwargs["env"]
    assert env == {"SOURCE_DATE_EPOCH": projectpkg.EPOCH, "TMPDIR": env["TMPDIR"]}
    assert not Path(env["TMPDIR"]).exists()  # the build's own temporary folder went with it


def test_a_build_folder_the_project_had_is_kept(sample: Path, builder: str):
    (sample / "build").mkdir()
    (sample / "build" / "mine.txt").write_text("the project's own")
    projectpkg.build_wheel(sample, fake_build("sample-0.1.0-py3-none-any.whl")[0])
    assert (sample / "build" / "mine.txt").read_text() == "the project's own"


def test_a_platform_wheel_is_refused_in_one_line(sample: Path, builder: str):
    runner, _ = fake_build("sample-0.1.0-cp311-cp311-linux_x86_64.whl")
    with pytest.raises(UserError, match=r"wheel for one Python and platform.*package = false"):
        projectpkg.build_wheel(sample, runner)
    assert not (sample / projectpkg.PACKAGE_DIR).exists()


def test_a_failing_build_is_one_line_with_its_last_error(sample: Path, builder: str):
    runner, _ = fake_build("x", code=1, stderr="noise\nerror: invalid command 'bdist_wheel'\n")
    with pytest.raises(UserError) as exc:
        projectpkg.build_wheel(sample, runner)
    assert str(exc.value).startswith("building the project's package failed (exit 1): error: inv")
    assert not (sample / "build").exists()


@pytest.mark.slow
def test_the_sample_builds_the_same_wheel_twice_for_real(sample: Path):
    first = projectpkg.build_wheel(sample)
    data = first.path.read_bytes()
    second = projectpkg.build_wheel(sample)
    assert second.path == first.path and second.path.read_bytes() == data
    assert first.path.name == "sample-0.1.0-py3-none-any.whl"
    assert "sample/__init__.py" in zipfile.ZipFile(first.path).namelist()
    assert sorted(p.name for p in sample.iterdir()) == sorted(
        [*(p.name for p in SAMPLE.iterdir()), ".torchenv"]
    )
