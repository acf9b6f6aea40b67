"""`invoke matrix --outdated`: newer releases on a target's index, filtered by the pin rules."""

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import outdated

# What `pip index versions` printed on PyPI (2026-12) for the cuda13 image's Python and platform.
LISTED = {
    "torch": "2.15.0, 2.14.1, 2.14.0, 2.13.0, 2.12.0, 2.11.0, 2.16.0rc1",
    "torchvision": "0.29.2, 0.29.1, 0.29.0, 0.28.0, 0.26.0",
    "torchaudio": "2.11.1, 2.11.0, 2.10.0",
    "torchcodec": "0.17.0, 0.16.0, 0.11.0",
}


def pip_index(argv):
    package = argv[argv.index("versions") + 1]
    return reply(f"{package} (x)\nAvailable versions: {LISTED[package]}\n")


def runner():
    return FakeRunner({("env",): pip_index, (outdated.sys.executable,): pip_index})


def test_parse_versions_keeps_final_releases_newest_first():
    text = "WARNING: experimental\ntorch (2.15.0)\nAvailable versions: 2.14.1, 2.15.0, 2.16.0rc1\n"
    assert outdated.parse_versions(text) == ["2.15.0", "2.14.1"]
    assert outdated.parse_versions("nothing") == []


def test_cuda13_is_current_on_its_own_cuda_build():
    # torch 2.15.0 on the default index is cu132, not cuda13's cu130: the rules refuse it
    assert outdated.check([matrix.get("cuda13")], runner()) == [
        "cuda13: current (torch 2.14.1 is the newest its rules accept)"
    ]


def test_an_older_pin_is_offered_the_newest_accepted_release_with_its_companions():
    import dataclasses

    old = dataclasses.replace(matrix.get("cuda13"), torch="2.11.0", torchvision="0.26.0",
                              torchcodec="0.11.0")  # fmt: skip
    (line,) = outdated.check([old], runner())
    assert line.startswith(
        "cuda13: torch 2.11.0 -> torch 2.14.1, torchvision 0.29.2, torchaudio 2.11."
    )
    assert "torchcodec 0.17.0" in line


def test_the_command_asks_the_targets_index_for_the_images_python_and_platform():
    argv = outdated.versions_command("torch", matrix.get("cpu"))
    assert argv[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert "--python-version" in argv and "manylinux_2_28_x86_64" in argv
    assert "--index-url" not in outdated.versions_command("torch", matrix.get("cuda13"))


def test_an_unreachable_index_is_one_line():
    down = FakeRunner({("env",): reply(returncode=1, stderr="ERROR: Could not fetch URL: connection refused"),
                       (outdated.sys.executable,): reply(returncode=1, stderr="ERROR: connection refused")})  # fmt: skip
    with pytest.raises(
        UserError, match="cannot list torch on pip's default index for target cuda13: ERROR"
    ):
        outdated.check([matrix.get("cuda13")], down)


def test_a_name_that_does_not_resolve_is_reported_not_read_as_current():
    # pip prints connection errors as retry warnings and may exit 0 with nothing listed
    stderr = ("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError('<x>: "
              "Failed to establish a new connection: [Errno -2] Name or service not known')': /whl/cpu/torch/\n")  # fmt: skip
    quiet = FakeRunner(
        {("env",): reply(stderr=stderr), (outdated.sys.executable,): reply(stderr=stderr)}
    )
    with pytest.raises(UserError) as caught:
        outdated.check([matrix.get("cpu")], quiet)
    assert str(caught.value) == (
        "cannot list torch on https://download.pytorch.org/whl/cpu for target cpu: Failed to "
        "establish a new connection: [Errno -2] Name or service not known; `invoke matrix "
        "--outdated` needs the index"
    )
