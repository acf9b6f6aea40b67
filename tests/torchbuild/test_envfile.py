import sys
from pathlib import Path

import pytest

from torchbuild import envfile
from torchbuild.envfile import EnvFileError
from torchenv import matrix
from torchenv.image import render


@pytest.mark.parametrize("name", matrix.names())
def test_rendered_env_files_parse_back_to_the_matrix_pins(name):
    t = matrix.get(name)
    env = envfile.parse_text(render.env_file(t), "x.yml")
    assert env.python == t.python
    assert env.index_url == t.index_url
    family = {"torch": t.torch, "torchvision": t.torchvision, "torchaudio": t.torchaudio}
    assert env.pins == {**family, **({"torchcodec": t.torchcodec} if t.torchcodec else {})}


def test_pip_args_put_the_index_first():
    env = envfile.parse(matrix.get("cuda118").env_file)
    assert env.pip_args() == [
        "--index-url", "https://download.pytorch.org/whl/cu118",
        "torch==2.7.1", "torchvision==0.22.1", "torchaudio==2.7.1",
    ]  # fmt: skip


def test_committed_env_files_are_conda_yaml():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(matrix.get("cuda118").env_file.read_text())
    assert data["dependencies"][0] == "python=3.11"
    assert data["dependencies"][2]["pip"][0] == "--index-url https://download.pytorch.org/whl/cu118"


GOOD = render.env_file(matrix.get("cuda118"))


@pytest.mark.parametrize(
    ("broken", "where", "what"),
    [
        (GOOD.replace("torch==2.7.1", "torch>=2.7"), 13, "not an exact pin"),
        (GOOD.replace("  - python=3.11", "  - python"), 9, "unexpected dependency"),
        (GOOD.replace("channels:", "chanels:"), 5, "expected one of name, channels"),
        (GOOD.replace("  - conda-forge", "\t- conda-forge"), 6, "tab in indentation"),
    ],
    ids=["range instead of pin", "python without version", "misspelt key", "tab"],
)
def test_malformed_env_file_names_file_and_line(broken, where, what):
    with pytest.raises(EnvFileError, match=rf"^envs/x.yml:{where}: .*{what}") as info:
        envfile.parse_text(broken, "envs/x.yml")
    assert "\n" not in str(info.value)


def test_missing_sections_are_reported():
    with pytest.raises(EnvFileError, match="missing python=X.Y, pip pins"):
        envfile.parse_text("name: x\n", "x.yml")


def test_missing_file(tmp_path: Path):
    with pytest.raises(EnvFileError, match="cannot read the env file"):
        envfile.parse(tmp_path / "none.yml")


def test_module_mode_stands_alone_as_in_the_image_build(tmp_path: Path, run_module):
    """Inside the build the parser runs with nothing but the standard library."""
    env_file = matrix.get("cuda13").env_file
    done = run_module(sys.executable, "envfile", "pip-args", str(env_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "torch==2.14.1", "torchvision==0.29.2", "torchaudio==2.11.0", "torchcodec==0.17.0"
    ]  # fmt: skip
    assert run_module(sys.executable, "envfile", "python", str(env_file)).stdout == "3.11\n"
    bad = tmp_path / "bad.yml"
    bad.write_text(GOOD.replace("torch==2.7.1", "torch"))
    done = run_module(sys.executable, "envfile", "pip-args", str(bad))
    assert done.returncode == 1 and f"{bad}:13:" in done.stderr and "Traceback" not in done.stderr
    done = run_module(sys.executable, "envfile", "frobnicate", str(bad))
    assert done.returncode == 2 and done.stderr.startswith("usage:")


def test_the_error_is_torchbuilds_own_not_the_host_kits():
    """torchbuild depends on no torchenv module: the host catches EnvFileError itself."""
    assert EnvFileError.__bases__ == (ValueError,)
