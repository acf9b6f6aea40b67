"""The uv installer without an engine: its pin, the rendered stages, the script's command lines.

The install script's uv and pip commands are checked by running docker/install-env.sh itself with
`uv` and `python` replaced by stubs that record their arguments (no network, no install).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import render
from torchenv.image import uv as uvs
from torchenv.kit import INSTALL_SCRIPT
from torchenv.lock import lockfile, make

ROOT = REPO
SCRIPT = INSTALL_SCRIPT
HEX = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"


def test_the_committed_pin_is_one_exact_version_with_its_hash():
    pin = uvs.read_pin()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pin.version)
    assert len(pin.hashes) == 1 and re.fullmatch(r"[0-9a-f]{64}", pin.hashes[0])
    assert pin.wheel_glob == f"uv-{pin.version}-*.whl"


@pytest.mark.parametrize(
    "text",
    [
        f"uv==0.13.9 --hash=sha256:{HEX}\n",
        f"# comment\nuv==0.13.9 \\\n    --hash=sha256:{HEX}\n",
        f"uv==0.13.9 \\\n    --hash=sha256:{HEX} \\\n    --hash=sha256:{'0' * 64}\n",
    ],
    ids=["one line", "continuation", "two hashes"],
)
def test_pin_forms_that_parse(text):
    pin = uvs.parse_pin(text, "uv-requirements.txt")
    assert pin.version == "0.13.9" and pin.hashes[0] == HEX


@pytest.mark.parametrize(
    "text",
    [
        "uv==0.13.9\n",
        f"uv>=0.13 --hash=sha256:{HEX}\n",
        f"ruff==0.1.0 --hash=sha256:{HEX}\n",
        f"uv==0.13.9 --hash=sha256:{HEX}\nsix==1.0 --hash=sha256:{HEX}\n",
        "uv==0.13.9 --hash=sha256:abc\n",
        "",
    ],
    ids=["no hash", "a range", "another package", "two requirements", "short hash", "empty"],
)
def test_pin_forms_that_are_refused_in_one_line(text):
    with pytest.raises(UserError) as exc:
        uvs.parse_pin(text, "docker/uv-requirements.txt")
    message = str(exc.value)
    assert message.startswith(
        "docker/uv-requirements.txt: expected one requirement `uv==VERSION` with "
        "`--hash=sha256:<64 hex>` lines and nothing else"
    )
    assert "\n" not in message


def test_unreadable_pin_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"uv-requirements.txt: cannot read it \(No such file"):
        uvs.read_pin(tmp_path / "uv-requirements.txt")


def test_uv_and_pip_read_the_pip_lock_conda_its_own():
    t = matrix.get("cuda13")
    assert lockfile.lock_path(t, "uv") == lockfile.lock_path(t, "pip") == t.pip_lock
    assert lockfile.lock_path(t, "conda") == t.conda_lock
    with pytest.raises(UserError, match="unknown installer 'poetry': choose one of uv, pip, conda"):
        lockfile.lock_kind("poetry")
    # `invoke lock --installer uv` resolves the pip lock; no third lock file exists.
    assert make.planned_commands(t, "uv") == make.planned_commands(t, "pip")


def stage(text: str, name: str) -> str:
    """The text of one stage of a Dockerfile (from its FROM line to the next FROM)."""
    start = re.search(rf"^FROM \S+ AS {name}$", text, re.MULTILINE)
    assert start, f"no stage {name}"
    end = re.compile(r"^FROM ", re.MULTILINE).search(text, start.end())
    return text[start.start() : end.start() if end else len(text)]


@pytest.mark.parametrize("name", matrix.names())
def test_uv_comes_from_its_own_stage_and_is_only_bind_mounted(name):
    text = render.dockerfile(matrix.get(name))
    assert "ARG INSTALLER=uv\n" in text
    uv_stage = stage(text, "uv")
    assert uv_stage.startswith("FROM ${BASE_IMAGE} AS uv\n")
    assert (
        "source=.torchenv/kit/uv-requirements.txt,target=/tmp/ctx/uv-requirements.txt" in uv_stage
    )
    assert "--mount=type=secret,id=ca_cert" in uv_stage and "install-env.sh uv-tool" in uv_stage
    install = stage(text, "env-uv")
    assert install.startswith("FROM venv AS env-uv\n")
    assert "--mount=type=bind,from=uv,source=/opt/uv/bin/uv,target=/usr/local/bin/uv" in install
    assert "--mount=type=cache,id=torchenv-uv,target=/tmp/uv-cache,mode=0777" in install
    assert install.rstrip().endswith(f"bash /tmp/ctx/install-env.sh uv {name}")
    # Nothing copies out of the uv stage, and no other stage mounts it.
    assert "--from=uv" not in text.replace(install, "")
    assert "COPY --from" not in text
    # The venv is made in a stage that needs neither the lock nor uv, so it runs beside them.
    venv = stage(text, "venv")
    assert "envs" not in venv and "from=uv" not in venv and "install-env.sh venv" in venv


def test_the_build_context_holds_the_uv_pin():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!.torchenv/kit/" in ignore


# --- the install script's command lines, with recording stubs ---------------------------------


@pytest.fixture
def sandbox(tmp_path: Path):
    """Runs a copy of the script whose paths lie under tmp_path, with `uv` and `python3` stubs
    that record their command lines; the venv's python runs the torchbuild helpers for real."""
    ctx, prefix, stubs, log = (
        tmp_path / "ctx",
        tmp_path / "env",
        tmp_path / "stubs",
        tmp_path / "log",
    )
    for folder in (ctx / "envs", ctx / "wheelhouse", prefix / "bin", stubs, tmp_path / "site"):
        folder.mkdir(parents=True)
    target = matrix.get("cuda118")  # its env file names the PyTorch index
    (ctx / "envs" / "cuda118.yml").write_text(target.env_file.read_text())
    (ctx / "envs" / "cuda118.pip.lock.txt").write_text(LOCK)
    shutil.copytree(ROOT / "src" / "torchbuild", ctx / "torchbuild")
    text = SCRIPT.read_text().replace("ctx=/tmp/ctx", f"ctx={ctx}")
    text = text.replace("/opt/torchenv", str(tmp_path))
    text = text.replace("/run/secrets/index_url", str(tmp_path / "secrets" / "index_url"))
    script = tmp_path / "install-env.sh"
    script.write_text(text)
    record = f'printf "%s\\n" "$(basename "$0") $*" >> {log}\n'
    record += f'echo "${{PIP_INDEX_URL:-}} ${{UV_INDEX_URL:-}}" >> {log}.env\n'
    python = (  # the build helpers run for real, except the manifest (recorded)
        f"if [[ $2 == torchbuild.envfile || $2 == torchbuild.buildinfo ]]; then "
        f'exec {sys.executable} "$@"; fi\n'
    )
    python += f"if [[ $1 == -c ]]; then echo {tmp_path}/site; exit 0; fi\n"
    for path, body in ((stubs / "uv", record), (stubs / "python3", record),
                       (prefix / "bin" / "python", python + record)):  # fmt: skip
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)

    def run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        log.unlink(missing_ok=True)
        environ = {
            "PATH": f"{stubs}:/usr/bin:/bin", "ENV_PREFIX": str(prefix), "HOME": str(tmp_path),
            # As root the script hands itself to the image's user: here that is the caller.
            "USER_UID": str(os.getuid()), "USER_GID": str(os.getgid()), **env,
        }  # fmt: skip
        done = subprocess.run(
            ["bash", str(script), *args], env=environ, capture_output=True, text=True,
            check=False, timeout=20,
        )  # fmt: skip
        calls = log.read_text().splitlines() if log.exists() else []
        if done.returncode == 0 and args[0] in ("uv", "pip"):
            # The last calls pin the torch family for pip and uv, then write the manifest; the
            # test looks at the installer's calls.
            assert calls.pop() == f"python -m torchbuild.manifest --out {tmp_path}/manifest.json"
            pins = f"python -m torchbuild.constraints --out {prefix}/torchenv-constraints.txt"
            assert calls.pop() == pins
        return done, calls

    run.ctx, run.prefix = ctx, prefix  # type: ignore[attr-defined]
    return run


LOCK = f"torch==2.7.1+cu118 \\\n    --hash=sha256:{HEX}\n"
INDEX = "--index-url https://download.pytorch.org/whl/cu118"


def uv_line(prefix: Path, uid: int, source: str) -> str:
    return (
        f"uv pip install --python {prefix}/bin/python --cache-dir /tmp/uv-cache/{uid} "
        "--link-mode copy --compile-bytecode --index-strategy unsafe-best-match --no-deps "
        f"--require-hashes {source} -r {prefix.parent}/ctx/envs/cuda118.pip.lock.txt"
    )


def test_uv_installs_the_lock_from_the_targets_index(sandbox):
    done, calls = sandbox("uv", "cuda118")
    assert done.returncode == 0, done.stderr
    assert calls == [uv_line(sandbox.prefix, os.getuid(), INDEX)]
    assert "installing from cuda118.pip.lock.txt (exact versions, sha256 checked)" in done.stdout
    info = json.loads((sandbox.prefix.parent / "build-info.json").read_text())
    assert info == {"target": "cuda118", "installer": "uv", "lock": "hashes"}


def test_pip_gets_the_same_lock_index_and_flags(sandbox):
    done, calls = sandbox("pip", "cuda118")
    assert done.returncode == 0, done.stderr
    lock_file = f"{sandbox.ctx}/envs/cuda118.pip.lock.txt"
    assert calls == [f"python -m pip install --no-deps --require-hashes {INDEX} -r {lock_file}"]


def test_a_mirror_replaces_the_index_uv_takes_only_one(sandbox):
    done, calls = sandbox("uv", "cuda118", TORCHENV_INDEX_URL="http://mirror/simple")
    assert done.returncode == 0, done.stderr
    assert calls == [uv_line(sandbox.prefix, os.getuid(), "--index-url http://mirror/simple")]
    assert calls[0].count("--index-url") == 1


def test_the_wheelhouse_makes_uv_offline(sandbox):
    (sandbox.ctx / "wheelhouse" / "torch-2.7.1+cu118-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    done, calls = sandbox("uv", "cuda118")
    assert done.returncode == 0, done.stderr
    wheelhouse = f"--no-index --find-links {sandbox.ctx}/wheelhouse"
    assert calls == [uv_line(sandbox.prefix, os.getuid(), wheelhouse)]
    assert "--index-url" not in calls[0]


def test_the_ca_secret_reaches_uv_through_ssl_cert_file():
    """The script exports SSL_CERT_FILE when the secret is mounted; uv reads that variable."""
    text = SCRIPT.read_text()
    block = text[text.index("if [[ -f /run/secrets/ca_cert ]]") :]
    block = block[: block.index("\nfi\n")]
    assert (
        "SSL_CERT_FILE=/run/secrets/ca_cert" in block and "PIP_CERT=/run/secrets/ca_cert" in block
    )


def test_uv_tool_offline_without_its_wheel_says_what_to_do(sandbox):
    (sandbox.ctx / "wheelhouse" / "torch-2.7.1-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    done, calls = sandbox("uv-tool")
    assert done.returncode == 1 and calls == []
    assert done.stderr.strip() == (
        "torchenv: offline build with the uv installer, but the wheelhouse has no uv wheel: add it "
        "(pip download --no-deps -d WHEELHOUSE uv==VERSION, the version of uv-requirements.txt) or use --installer pip"
    )


def test_uv_tool_installs_the_hashed_pin_with_pip_in_a_venv_of_its_own(sandbox):
    done, calls = sandbox("uv-tool")
    # The stub python3 makes no venv, so the script stops at its pip: the calls so far count.
    assert calls[0] == "python3 -m venv /opt/uv"
    assert done.returncode != 0


def test_unknown_installer_in_the_script(sandbox):
    done, calls = sandbox("poetry", "cuda118")
    assert done.returncode == 2 and calls == []
    assert done.stderr.strip() == "torchenv: unknown installer 'poetry' (uv, pip or conda)"


def test_ci_image_sessions_follow_the_default_installer():
    """The workflow's image jobs run `nox -s image(<target>)`, which runs `invoke build` with
    the session's arguments only: no installer is named, so the default (uv) is what CI builds."""
    noxfile = (ROOT / "noxfile.py").read_text()
    session = noxfile[noxfile.index("def image(") :]
    assert 'session.run("invoke", "build", "--target", target, *build_args)' in session
    assert "--installer" not in noxfile


def test_a_credentialed_mirror_reaches_uv_and_pip_by_environment_only(sandbox):
    """The BuildKit secret's URL (issue 20, item 2): never on the installer's command line."""
    secret = sandbox.prefix.parent / "secrets"
    secret.mkdir()
    full = "https://me:S3CRET@mirror.example/simple?token=S3CRET"
    (secret / "index_url").write_text(full)
    for installer in ("uv", "pip"):
        done, calls = sandbox(
            installer, "cuda118", TORCHENV_INDEX_URL="https://mirror.example/simple"
        )
        assert done.returncode == 0, done.stderr
        assert calls and "S3CRET" not in "\n".join(calls) and "--index-url" not in calls[0]
        assert "S3CRET" not in done.stdout + done.stderr
        seen = (sandbox.prefix.parent / "log.env").read_text().splitlines()
        assert f"{full} {full}" in seen
