"""The environment manifest: every file hashed from disk, deterministic, standard library only."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "src" / "torchbuild" / "manifest.py"


def load_script():
    """The module as the image build runs it: a file, not the torchsmoke package."""
    spec = importlib.util.spec_from_file_location("manifest_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


manifest = load_script()


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install_fake(site: Path, name: str, version: str, files: dict[str, bytes], installer="pip"):
    """A distribution as pip leaves it: its files, METADATA, INSTALLER and a RECORD."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/INSTALLER": f"{installer}\n".encode(),
    }
    rows = []
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(f"{rel},{record_hash(data)},{len(data)}")
    rows.append(f"{info}/RECORD,,")
    (site / info / "RECORD").write_text("\n".join(rows) + "\n")


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    install_fake(site, "Foo_Bar", "1.0", {"foo_bar/__init__.py": b"x = 1\n"})
    big = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB: several chunks, a partial last one
    install_fake(site, "big", "2.0", {"big/blob.bin": big, "big/__init__.py": b""})
    return site


def test_lists_every_file_with_its_hash_from_disk(site):
    result = manifest.build([str(site)], workers=2)
    names = [d["name"] for d in result["distributions"]]
    assert names == ["big", "foo-bar"]  # normalized, sorted
    big = result["distributions"][0]
    blob = (site / "big" / "blob.bin").read_bytes()
    assert big["files"]["big/blob.bin"] == {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
    }
    assert "big-2.0.dist-info/RECORD" in big["files"]  # hashed too, though RECORD has no hash
    assert big["installer"] == "pip" and big["version"] == "2.0" and big["record"] is True
    assert big["missing"] == [] and big["modified"] == []
    assert manifest.check(result) == []


def test_location_is_relative_to_the_prefix(site, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(site.parents[2]))
    result = manifest.build([str(site)])
    assert {d["location"] for d in result["distributions"]} == {"lib/python3.11/site-packages"}
    assert str(site) not in manifest.render(result)


def test_changed_and_missing_files_are_reported_not_trusted(site):
    before = manifest.build([str(site)])
    (site / "foo_bar" / "__init__.py").write_bytes(b"x = 2\n")
    (site / "big" / "__init__.py").unlink()
    after = manifest.build([str(site)])
    big, foo = after["distributions"]
    assert foo["modified"] == ["foo_bar/__init__.py"]
    assert foo["files"]["foo_bar/__init__.py"]["sha256"] == hashlib.sha256(b"x = 2\n").hexdigest()
    assert big["missing"] == ["big/__init__.py"]
    assert after["digest"] != before["digest"]
    assert [d["digest"] for d in after["distributions"]] != [
        d["digest"] for d in before["distributions"]
    ]


def test_output_is_deterministic(site):
    first = manifest.render(manifest.build([str(site)], workers=1))
    second = manifest.render(manifest.build([str(site)], workers=4))
    assert first == second
    data = json.loads(first)
    assert list(data) == sorted(data)
    assert data["format"] == "torchenv-manifest/1"


def test_check_catches_edits_to_the_manifest(site):
    result = manifest.build([str(site)])
    result["distributions"][0]["version"] = "2.1"
    assert manifest.check(result) == [
        "big: its digest does not match its entry",
        "the manifest's content digest does not match its content",
    ]


def test_hash_file_streams_in_chunks(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 * manifest.CHUNK + 5)
    path.write_bytes(data)
    assert manifest.hash_file(str(path)) == (hashlib.sha256(data).hexdigest(), len(data))


def test_runs_in_an_environment_with_nothing_else(tmp_path, run_module):
    """`python -m torchbuild.manifest --out FILE` in a venv holding only one distribution: it imports nothing
    outside the standard library, and lists exactly what is installed."""
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    install_fake(Path(purelib), "only-one", "0.1", {"only_one.py": b"pass\n"})
    out = tmp_path / "manifest.json"
    done = run_module(python, "manifest", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "manifest: 1 distributions, 4 files" in done.stderr
    data = json.loads(out.read_text())
    (dist,) = data["distributions"]
    here = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert dist["name"] == "only-one" and dist["location"] == f"lib/{here}/site-packages"
    assert not list(tmp_path.glob("*.tmp"))


def test_runs_as_a_module_and_lists_pip_of_the_venv():
    src = str(SCRIPT.parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "torchbuild.manifest", "--workers", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    names = {d["name"] for d in data["distributions"]}
    assert {"pip", "pytest"} <= names
    assert data["digest"] == manifest.manifest_digest(data)


def test_render_puts_each_file_on_one_line_and_reads_back_as_it_was():
    data = {
        "digest": "sha256:0",
        "distributions": [
            {
                "files": {
                    "b.py": {"sha256": "b" * 64, "size": 2},
                    "a.py": {"sha256": "a" * 64, "size": 1},
                },
                "name": "one",
                "tags": [],
            }
        ],
    }
    text = manifest.render(data)
    assert json.loads(text) == data
    lines = text.splitlines()
    assert f'    "a.py": {{"sha256": "{"a" * 64}", "size": 1}},' in lines  # sorted, one line each
    assert lines.index('   "files": {') < lines.index('   "name": "one",')
    assert manifest.render(json.loads(text)) == text


def _write_manifest(site, path, result):
    path.write_text(manifest.render(result) + "\n", encoding="ascii")
    return manifest.Reuse.load(str(path), [str(site)])


def test_reuse_gives_the_full_manifest_and_hashes_only_what_changed(site, tmp_path, monkeypatch):
    old = manifest.build([str(site)])
    stamp = tmp_path / "old.json"
    reuse = _write_manifest(site, stamp, old)
    later = stamp.stat().st_mtime_ns + 10**9
    install_fake(site, "added", "0.1", {"added/__init__.py": b"y = 1\n"})
    rewritten = site / "foo_bar" / "__init__.py"
    rewritten.write_bytes(b"x = 9\n")  # same size, new content: RECORD says otherwise
    for path in (rewritten, *(site / "added-0.1.dist-info").iterdir(), site / "added/__init__.py"):
        os.utime(path, ns=(later, later))
    read = []
    real = manifest.hash_file
    monkeypatch.setattr(manifest, "hash_file", lambda p: read.append(p) or real(p))
    result = manifest.build([str(site)], reuse=reuse)
    monkeypatch.setattr(manifest, "hash_file", real)
    assert result == manifest.build([str(site)])  # exactly what a full pass says
    names = {os.path.relpath(p, site) for p in read}
    assert "big/blob.bin" not in names and "foo_bar/__init__.py" in names
    assert "added/__init__.py" in names
    assert reuse.reused == len(old["distributions"][0]["files"]) + 3  # big's, foo-bar's other 3
    foo = next(d for d in result["distributions"] if d["name"] == "foo-bar")
    assert foo["modified"] == ["foo_bar/__init__.py"]


def test_reuse_reads_a_file_written_after_the_old_manifest_even_of_the_same_size(site, tmp_path):
    stamp = tmp_path / "old.json"
    reuse = _write_manifest(site, stamp, manifest.build([str(site)]))
    blob = site / "big" / "blob.bin"
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    later = stamp.stat().st_mtime_ns + 10**9
    os.utime(blob, ns=(later, later))
    result = manifest.build([str(site)], reuse=reuse)
    big = result["distributions"][0]
    assert big["files"]["big/blob.bin"]["sha256"] == hashlib.sha256(bytes(data)).hexdigest()
    assert big["modified"] == ["big/blob.bin"]


def test_reuse_of_a_missing_or_tampered_manifest_is_none(site, tmp_path):
    assert manifest.Reuse.load(str(tmp_path / "none.json"), [str(site)]) is None
    data = manifest.build([str(site)])
    data["distributions"][0]["version"] = "9"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert manifest.Reuse.load(str(bad), [str(site)]) is None
