"""Locking with uv (`uv pip compile`): the command for the image's platform, its output read as
hashed pins, the user's uv settings kept out, errors in one line; and, for real, the same
versions as pip's resolver."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.locks import RESOLVED, SHA_A, SHA_B

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import lockfile, make, overlays, resolvers, uv_resolver
from torchenv.runner import subprocess_runner

UV = "/opt/uv/bin/uv"


def compiled(packages: dict[str, str]) -> str:
    """Output as `uv pip compile --generate-hashes --no-header --no-annotate` writes it."""
    return "".join(
        f"{name}=={version} \\\n    --hash=sha256:{SHA_B} \\\n    --hash=sha256:{SHA_A}\n"
        for name, version in packages.items()
    )


def uv_runner(packages: dict[str, str], extra: dict[str, str] | None = None) -> FakeRunner:
    """A fake uv that writes `packages` (plus the constraints and `extra` for a constrained
    resolve, as the real one does) where --output-file points."""

    def write(argv):
        written = dict(packages)
        if "--constraint" in argv:
            held = Path(argv[argv.index("--constraint") + 1]).read_text()
            written = {**dict(line.split("==") for line in held.split()), **(extra or {})}
        Path(argv[argv.index("--output-file") + 1]).write_text(compiled(written))
        return reply("")

    return FakeRunner({("env",): write, (UV,): write})


@pytest.fixture
def uv_here(monkeypatch):
    monkeypatch.setattr(uv_resolver, "executable", lambda: UV)


def test_parse_reads_every_pin_with_all_its_hashes():
    text = "# a comment\n" + compiled({"Jinja2": "3.1.6", "torch": "2.11.0+cpu"})
    packages = uv_resolver.parse(text)
    assert [(p.name, p.version) for p in packages] == [("jinja2", "3.1.6"), ("torch", "2.11.0+cpu")]
    assert packages[0].hashes == (SHA_A, SHA_B)


@pytest.mark.parametrize(
    ("text", "message"),
    [("einops>=0.8\n", "uv wrote a line torchenv cannot read as a pin: 'einops>=0.8'"),
     ("einops==0.8.2\n", "the index gave no sha256 for einops 0.8.2: cannot lock it"),
     ("einops==0.8.2 --hash=sha256:abc\n", "the index gave no sha256 for einops 0.8.2")],
)  # fmt: skip
def test_parse_refuses_what_is_not_a_hashed_pin(text, message):
    with pytest.raises(UserError, match="^" + message):
        uv_resolver.parse(text)


def test_the_users_uv_settings_stay_out_but_the_network_ones():
    prefix, env = uv_resolver.clean_env(
        {"UV_INDEX_URL": "https://mine.invalid/simple", "UV_HTTP_TIMEOUT": "60", "UV_PRERELEASE": "allow"}
    )  # fmt: skip
    assert prefix == ["env", "-u", "UV_INDEX_URL", "-u", "UV_PRERELEASE"]
    assert env == {"UV_NO_PROGRESS": "1"}


def test_lock_with_uv_for_the_images_platform(tree, uv_here, monkeypatch):
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "https://extra.invalid/simple")
    target = matrix.get("cuda13")
    extra = {"ipykernel": "7.4.0", "jupyterlab": "4.6.6", "tensorboard": "2.21.0"}
    runner = uv_runner(RESOLVED, extra=extra)
    lines = make.lock_pip(target, runner, upgrade=True, resolver="uv").split("; ")
    assert lines == [
        "wrote envs/cuda13.pip.lock.txt (6 packages)", "wrote envs/cuda13.dev.lock.txt (3 packages)",
    ]  # fmt: skip
    argv = runner.calls[0].args
    assert argv[:3] == ("env", "-u", "UV_EXTRA_INDEX_URL")
    uv = argv[argv.index(UV) :]
    assert uv[:4] == (UV, "pip", "compile", "--no-config") and "--generate-hashes" in uv
    assert uv[uv.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert uv[uv.index("--python-version") + 1] == "3.11"
    assert "--index-url" not in uv and "--constraint" not in uv  # cuda13: the default index
    assert "--constraint" in runner.calls[1].args  # the dev extras, over the pip lock
    text = target.pip_lock.read_text()
    assert f"jinja2==3.1.6 \\\n    --hash=sha256:{SHA_A} \\\n    --hash=sha256:{SHA_B}\n" in text
    dev = target.dev_lock.read_text()
    assert "ipykernel==7.4.0" in dev and "torch==" not in dev  # only what it adds


def test_a_secret_index_goes_to_uv_by_its_variable(tree, uv_here):
    secret = "https://user:s3cret@mirror.invalid/simple"
    runner = uv_runner(RESOLVED)
    make.resolve_pip(matrix.get("cuda13").read_env(), runner, secret, resolver="uv")
    call = runner.calls[0]
    assert "s3cret" not in " ".join(call.args) and call.env["UV_INDEX_URL"] == secret


def test_uv_gets_a_temporary_folder_of_its_own_that_goes_with_the_resolve(tree, uv_here):
    runner = uv_runner(RESOLVED)
    make.resolve_pip(matrix.get("cuda13").read_env(), runner, None, resolver="uv")
    scratch = Path(runner.calls[0].env["TMPDIR"])
    assert scratch.name.startswith("torchenv-lock-") and not scratch.exists()


def test_uvs_error_is_one_line_without_the_secret(tree, uv_here):
    stderr = (
        "  × No solution found when resolving dependencies:\n"
        "error: Because mypkg==1.0 depends on torch==2.4.0 and you require mypkg, we can conclude\n"
        "  ╰─▶ that your requirements are unsatisfiable.\n"
    )
    runner = FakeRunner({("env",): reply("", 1, stderr), (UV,): reply("", 1, stderr)})
    with pytest.raises(UserError) as exc:
        uv_resolver.report("3.11", None, "mypkg\n", runner, what="the project's dependencies")
    assert str(exc.value).startswith(
        "uv could not resolve the project's dependencies: Because mypkg==1.0 depends on torch"
    )
    assert "\n" not in str(exc.value)


def test_no_uv_is_one_line(monkeypatch):
    monkeypatch.setattr(uv_resolver, "executable", lambda: None)
    with pytest.raises(UserError, match=r"^uv is not installed here: .*--resolver pip"):
        resolvers.report("3.11", None, "einops\n", FakeRunner({}), resolver="uv")
    with pytest.raises(UserError, match=r"^unknown resolver 'poetry'"):
        resolvers.report("3.11", None, "einops\n", FakeRunner({}), resolver="poetry")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None and uv_resolver.executable() is None,
                    reason="uv is not installed: pip install -e .")  # fmt: skip
def test_uv_and_pip_resolve_the_same_versions_for_real(tmp_path: Path):
    """Against the default index (cuda13's): the sample project's dependencies, constrained."""
    requirements = "einops>=0.8\ntqdm>=4.66\npytest>=8\n"
    held = "packaging==26.4\n"
    by = {
        name: {(p.name, p.version) for p in resolvers.report(
            "3.11", None, requirements, subprocess_runner, held, resolver=name)}
        for name in resolvers.RESOLVERS
    }  # fmt: skip
    assert by["uv"] == by["pip"] and ("packaging", "26.4") in by["uv"]


def test_a_pinned_project_takes_the_family_from_its_index_alone():
    from torchenv.matrix import tomllib

    text = uv_resolver.pinned_project(
        "lightning>=2\neinops\n", "https://download.pytorch.org/whl/cpu",
        {"torch": "2.11.0+cpu", "torchvision": "0.26.0+cpu"},
    )  # fmt: skip
    data = tomllib.loads(text)
    assert data["project"]["dependencies"] == [
        "lightning>=2", "einops", "torch==2.11.0+cpu", "torchvision==0.26.0+cpu",
    ]  # fmt: skip
    assert data["tool"]["uv"]["sources"] == {
        "torch": {"index": "target"}, "torchvision": {"index": "target"},
    }  # fmt: skip
    assert data["tool"]["uv"]["index"] == [
        {"name": "target", "url": "https://download.pytorch.org/whl/cpu", "explicit": True}
    ]


def test_the_family_indexs_user_and_password_go_by_uvs_variables():
    url, env = uv_resolver._family_credentials("https://me:p%40ss@mirror.invalid:8443/whl/cpu")
    assert url == "https://mirror.invalid:8443/whl/cpu"
    assert env == {"UV_INDEX_TARGET_USERNAME": "me", "UV_INDEX_TARGET_PASSWORD": "p@ss"}
    assert uv_resolver._family_credentials("https://mirror.invalid/cpu") == (
        "https://mirror.invalid/cpu",
        {},
    )
    with pytest.raises(UserError, match=r"^the torch family's index URL carries a query"):
        uv_resolver._family_credentials("https://mirror.invalid/cpu?token=abc")


def test_an_overlay_of_a_target_with_its_own_index_pins_the_family_there(tree, uv_here):
    target = matrix.get("cpu")
    seen = []

    def write(argv):
        source = Path(argv[-1])
        seen.append((source.name, source.read_text(), argv))
        extras = {"ipykernel": "7.4.0", "jupyterlab": "4.6.6", "tensorboard": "2.21.0"}
        Path(argv[argv.index("--output-file") + 1]).write_text(compiled(extras))
        return reply("")

    runner = FakeRunner({("env",): write, (UV,): write})
    below = [lockfile.read_lock(matrix.get("cuda13").pip_lock, "cuda13")]  # any family
    dev = next(o for o in overlays.overlays(target) if o.kind == "dev")
    packages = overlays.resolve(target, dev, below, runner, resolver="uv")
    assert [p.name for p in packages] == ["ipykernel", "jupyterlab", "tensorboard"]
    name, source, argv = seen[0]
    assert name == "pyproject.toml" and "--index-url" not in argv
    assert f'url = "{target.index_url}"' in source and "explicit = true" in source
    torch = below[0].packages["torch"].version
    assert f'"torch=={torch}"' in source and 'torch = { index = "target" }' in source


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def simple_index(root: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """One wheel of `name` in a PEP 503 folder of `root` (`<name>/index.html` links it)."""
    folder = root / name.replace("_", "-")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{info}/METADATA", meta)
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (folder / "index.html").write_text(f'<a href="{wheel.name}#sha256={sha}">{wheel.name}</a>\n')


@pytest.mark.skipif(
    uv_resolver.executable() is None, reason="uv is not installed: pip install -e ."
)
def test_for_real_the_family_comes_from_its_index_and_the_rest_from_the_default(tmp_path: Path):
    """Two indexes on 127.0.0.1, served by this test: the family's holds torch 2.11.0+cpu and a
    numpy 9.9.9 it must not serve; the default one holds a package that needs torch and numpy,
    numpy 1.0 and a plain torch 2.11.0 (not the family's build)."""
    simple_index(tmp_path / "family", "torch", "2.11.0+cpu")
    simple_index(tmp_path / "family", "numpy", "9.9.9")
    simple_index(tmp_path / "default", "needs_torch", "1.0", ("torch>=2.0", "numpy"))
    simple_index(tmp_path / "default", "numpy", "1.0")
    simple_index(tmp_path / "default", "torch", "2.11.0")
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        family = (f"{base}/family", {"torch": "2.11.0+cpu"})
        packages = uv_resolver.report(
            "3.11", f"{base}/default", "needs_torch\n", subprocess_runner,
            "torch==2.11.0+cpu\n", "the project's dependencies", family,
        )  # fmt: skip
        assert [(p.name, p.version) for p in packages] == [
            ("needs-torch", "1.0"), ("numpy", "1.0"), ("torch", "2.11.0+cpu"),
        ]  # fmt: skip
        with pytest.raises(UserError, match=r"no version of torch==2.11.0\+cpu"):  # one index
            uv_resolver.report(
                "3.11", f"{base}/default", "needs_torch\n", subprocess_runner,
                "torch==2.11.0+cpu\n", "the project's dependencies",
            )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
