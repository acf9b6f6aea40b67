"""Resolving and writing locks (`invoke lock`): pip's report, conda-lock, unreachable indexes, credentials."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.locks import (
    REAL_ROOT,
    RESOLVED,
    UNREACHABLE,
    pip_runner,
    report_for,
)

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import conda_resolver, drift, lockfile, make, pip_resolver


@pytest.mark.skipif(
    not os.environ.get("TORCHENV_LOCK_NETWORK"),
    reason="resolves against the live index (about 30 s, 4 GB): set TORCHENV_LOCK_NETWORK=1",
)
def test_resolving_again_gives_the_committed_lock(tree):
    """Only until a new release of an unpinned dependency (numpy, sympy ...) appears."""
    target = matrix.get("cuda13")
    before = target.pip_lock.read_text()
    make.lock_pip(target, upgrade=True, resolver="pip")
    assert target.pip_lock.read_text() == before


def test_lock_pip_writes_a_hashed_lock_from_pips_report(tree, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    target = matrix.get("cuda13")
    runner = pip_runner(report_for(RESOLVED))
    assert make.lock_pip(target, runner, upgrade=True, resolver="pip") == (
        "wrote envs/cuda13.pip.lock.txt (6 packages); wrote envs/cuda13.dev.lock.txt (4 packages)"
    )
    call, dev_call = runner.calls
    argv = call.args
    assert "--constraint" not in argv and "--constraint" in dev_call.args
    assert argv[: argv.index(pip_resolver.sys.executable)].count("-u") >= 1
    assert "PIP_FIND_LINKS" in argv and "PIP_CERT" not in argv  # dropped, kept
    assert call.env == {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    assert "--index-url" not in argv  # cuda13: pip's default index
    assert {
        "--dry-run",
        "--only-binary=:all:",
        "manylinux_2_28_x86_64",
        "manylinux2014_x86_64",
    } <= set(argv)
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert argv[argv.index("--abi") + 1] == "cp311"
    text = target.pip_lock.read_text()
    assert "jinja2==3.1.6 \\\n" in text and "typing-extensions==4.16.0" in text
    assert "example.invalid" not in text
    assert drift.check_target(target) == []
    assert [p.name for p in tree.joinpath("envs").iterdir() if p.name.startswith(".")] == []
    dev = lockfile.read_lock(target.dev_lock, "cuda13")
    assert {n: p.version for n, p in dev.packages.items()} == {
        "ipykernel": "7.4.0", "jupyterlab": "4.6.6", "tensorboard": "2.21.0", "tornado": "6.6.1"
    }  # fmt: skip
    assert all(len(p.hashes) == 1 for p in dev.packages.values())


def test_lock_pip_leaves_an_unchanged_lock_alone(tree):
    target = matrix.get("cuda13")
    runner = pip_runner(report_for(RESOLVED))
    make.lock_pip(target, runner, upgrade=True, resolver="pip")
    dated = re.sub(r"locked-on: \S+", "locked-on: 2020-01-01", target.pip_lock.read_text())
    target.pip_lock.write_text(dated)
    assert "up to date (6 packages)" in make.lock_pip(target, runner, upgrade=True, resolver="pip")
    assert target.pip_lock.read_text() == dated


def test_lock_pip_passes_the_targets_index(tree):
    runner = pip_runner(
        report_for(
            {"torch": "2.7.1+cu118", "torchvision": "0.22.1+cu118", "torchaudio": "2.7.1+cu118"}
        )
    )
    target = matrix.get("cuda118")
    make.lock_pip(target, runner, upgrade=True, resolver="pip")
    argv = runner.calls[0].args
    assert argv[argv.index("--index-url") + 1] == "https://download.pytorch.org/whl/cu118"
    parsed = lockfile.read_lock(target.pip_lock, "cuda118")
    assert parsed.header["index"] == "https://download.pytorch.org/whl/cu118"
    assert parsed.packages["torch"].version == "2.7.1+cu118"
    assert drift.check_target(target) == []
    assert "--index-url" not in runner.calls[1].args  # the dev extras: pip's default index
    make.lock_pip(
        target, runner, index_url="https://mirror.invalid/cu118", upgrade=True, resolver="pip"
    )
    argv = runner.calls[-2].args
    assert argv[argv.index("--index-url") + 1] == "https://mirror.invalid/cu118"
    assert "mirror.invalid" not in target.pip_lock.read_text()


def test_unreachable_index_is_one_line_and_writes_nothing(tree):
    target = matrix.get("cuda118")
    runner = FakeRunner(
        {
            ("env",): reply(returncode=1, stderr=UNREACHABLE),
            (pip_resolver.sys.executable,): reply(returncode=1, stderr=UNREACHABLE),
        }
    )
    with pytest.raises(UserError) as exc:
        make.lock_target(target, runner=runner, installer="pip", upgrade=True, resolver="pip")
    message = str(exc.value)
    assert "https://download.pytorch.org/whl/cu118 is unreachable from here" in message
    assert "mirror" in message and "proxy" in message and "CA bundle" in message
    assert "\n" not in message
    assert not target.pip_lock.exists()
    assert sorted(p.name for p in (tree / "envs").iterdir()) == sorted(
        p.name for p in (REAL_ROOT / "envs").iterdir()
    )


def test_unreachable_keeps_an_existing_lock(tree):
    target = matrix.get("cuda13")
    before = target.pip_lock.read_text()
    runner = FakeRunner(
        {
            ("env",): reply(returncode=1, stderr=UNREACHABLE),
            (pip_resolver.sys.executable,): reply(returncode=1, stderr=UNREACHABLE),
        }
    )
    with pytest.raises(UserError, match="pip's default index is unreachable"):
        make.lock_pip(target, runner, upgrade=True, resolver="pip")
    assert target.pip_lock.read_text() == before


def test_a_version_that_does_not_exist_is_not_called_unreachable(tree):
    stderr = "ERROR: No matching distribution found for torch==9.9\n"
    runner = FakeRunner(
        {
            ("env",): reply(returncode=1, stderr=stderr),
            (pip_resolver.sys.executable,): reply(returncode=1, stderr=stderr),
        }
    )
    with pytest.raises(UserError, match="pip could not resolve the pins: ERROR: No matching"):
        make.lock_pip(matrix.get("cuda13"), runner, upgrade=True, resolver="pip")


def test_a_local_wheel_never_gets_into_a_lock(tree):
    runner = pip_runner(report_for(RESOLVED, url="file:///opt/wheels/{}.whl"))
    with pytest.raises(UserError, match="from file, not from an index"):
        make.lock_pip(matrix.get("cuda13"), runner, upgrade=True, resolver="pip")


def test_resolved_version_must_match_the_pin(tree):
    runner = pip_runner(report_for({**RESOLVED, "torch": "2.13.0+cpu"}))
    with pytest.raises(UserError, match="resolved torch to 2.13.0"):
        make.lock_pip(matrix.get("cuda13"), runner, upgrade=True, resolver="pip")


def test_lock_target_reports_what_was_written_and_what_failed(tree, monkeypatch):
    monkeypatch.setattr(conda_resolver, "conda_lock_executable", lambda: None)
    lines = make.lock_target(
        "cuda13", runner=pip_runner(report_for(RESOLVED)), upgrade=True, resolver="pip"
    )
    assert lines == [  # conda was not asked for: nothing is said of it (issue 32)
        "wrote envs/cuda13.pip.lock.txt (6 packages); wrote envs/cuda13.dev.lock.txt (4 packages)",
    ]
    with pytest.raises(UserError) as exc:
        make.lock_target(
            "cuda13",
            runner=pip_runner(report_for(RESOLVED)),
            installer="conda",
            upgrade=True,
            resolver="pip",
        )
    assert str(exc.value) == "conda lock of cuda13: " + conda_resolver.CONDA_LOCK_MISSING
    with pytest.raises(UserError, match="unknown installer 'poetry'"):
        make.lock_target("cuda13", installer="poetry", resolver="pip")


SECRET = "S3CRET"
CREDENTIALED = f"https://me:{SECRET}@mirror.invalid/cu118?token={SECRET}"


def test_a_credentialed_index_reaches_pip_by_environment_only(tree):
    runner = pip_runner(
        report_for(
            {"torch": "2.7.1+cu118", "torchvision": "0.22.1+cu118", "torchaudio": "2.7.1+cu118"}
        )
    )
    target = matrix.get("cuda118")
    make.lock_pip(target, runner, index_url=CREDENTIALED, upgrade=True, resolver="pip")
    call, dev_call = runner.calls
    assert SECRET not in " ".join(call.args) and "--index-url" not in call.args
    assert call.env is not None and call.env["PIP_INDEX_URL"] == CREDENTIALED
    # the mirror is of cuda118's own index, so the dev extras still come from pip's default one
    assert dev_call.env is not None and "PIP_INDEX_URL" not in dev_call.env
    assert SECRET not in " ".join(dev_call.args) and "--index-url" not in dev_call.args
    assert SECRET not in target.pip_lock.read_text()


def test_a_credentialed_index_is_redacted_in_dry_run_and_errors(tree):
    lines = make.planned_commands(matrix.get("cuda118"), "pip", CREDENTIALED, resolver="pip")
    assert SECRET not in "\n".join(lines)
    assert "PIP_INDEX_URL='https://me:***@mirror.invalid/cu118'" in lines[0]
    stderr = f"{UNREACHABLE}\nLooking in indexes: {CREDENTIALED}\n"
    runner = FakeRunner({("env",): reply(returncode=1, stderr=stderr)})
    runner.answers = {
        **runner.answers,
        (pip_resolver.sys.executable,): reply(returncode=1, stderr=stderr),
    }
    with pytest.raises(UserError) as exc:
        make.lock_target(
            matrix.get("cuda118"),
            runner=runner,
            installer="pip",
            index_url=CREDENTIALED,
            upgrade=True,
            resolver="pip",
        )
    assert SECRET not in str(exc.value) and "mirror.invalid" in str(exc.value)
    failing = FakeRunner(
        {
            ("env",): reply(returncode=1, stderr=f"ERROR: bad {CREDENTIALED}"),
            (pip_resolver.sys.executable,): reply(
                returncode=1, stderr=f"ERROR: bad {CREDENTIALED}"
            ),
        }
    )
    with pytest.raises(UserError) as exc:
        make.lock_pip(
            matrix.get("cuda118"), failing, index_url=CREDENTIALED, upgrade=True, resolver="pip"
        )
    assert SECRET not in str(exc.value)
    with pytest.raises(UserError) as exc:
        make.lock_pip(
            matrix.get("cuda118"),
            failing,
            index_url=f"ftp://me:{SECRET}@x/",
            upgrade=True,
            resolver="pip",
        )
    assert SECRET not in str(exc.value)


def _with_project(tree: Path, pyproject: str) -> None:
    matrix_file = tree / "targets.toml"
    text = matrix_file.read_text().replace('dependencies = "none"', 'dependencies = "auto"')
    matrix_file.write_text(text)
    (tree / "pyproject.toml").write_text(pyproject)


def test_a_project_dependency_that_excludes_the_targets_torch_is_refused_and_nothing_written(tree):
    _with_project(tree, "[project]\nname='mypkg'\ndependencies=['einops']\n"
                  "[project.optional-dependencies]\ntest=['torch==2.4.0']\n")  # fmt: skip
    (tree / "targets.toml").write_text(
        (tree / "targets.toml").read_text().replace("package = false", 'extras = ["test"]')
    )
    target = matrix.get("cuda13")
    before = target.pip_lock.read_text()
    runner = pip_runner(report_for(RESOLVED))
    with pytest.raises(
        UserError, match=r"^mypkg\[test\] requires torch==2.4.0, but target cuda13 pins"
    ):
        make.lock_pip(target, runner, upgrade=True, resolver="pip")
    # the resolver still ran (over the rest, to name every problem in one run); nothing written
    assert target.pip_lock.read_text() == before and not target.project_lock.exists()


def test_a_project_that_declares_no_dependencies_anywhere_is_one_line(tree):
    _with_project(tree, "[tool.ruff]\n")
    with pytest.raises(UserError, match="no dependencies found in .*: looked for pyproject.toml"):
        make.lock_pip(
            matrix.get("cuda13"), pip_runner(report_for(RESOLVED)), upgrade=True, resolver="pip"
        )
