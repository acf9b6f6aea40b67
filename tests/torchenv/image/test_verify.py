"""invoke verify: an image's manifest against its lock, every difference named."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import uuid

import pytest
from tests.support import REPO
from tests.support import manifests as baked

from torchbuild import manifest as manifests
from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import verify
from torchenv.lock import lockfile
from torchenv.lock.lockfile import LockedPackage

SHA = "a" * 64


def make_manifest(dists: dict[str, str]) -> dict:
    """A manifest as torchsmoke.manifest writes it, for distributions {name: version}."""
    entries = []
    for name, version in sorted(dists.items()):
        entry = {
            "name": name,
            "version": version,
            "installer": "pip",
            "location": "lib",
            "record": True,
            "files": {},
            "missing": [],
            "modified": [],
        }
        entry["digest"] = manifests.digest(entry)
        entries.append(entry)
    result = {"format": manifests.FORMAT, "python": {}, "distributions": entries}
    result["digest"] = manifests.manifest_digest(result)
    return result


def as_file(manifest: dict) -> tuple[bytes, str]:
    data = (manifests.render(manifest) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()


def cuda13_lock() -> lockfile.Lock:
    return lockfile.read_lock(matrix.get("cuda13").pip_lock, "cuda13")


def installed_as_locked(extra: dict[str, str] | None = None) -> dict:
    dists = {p.name: p.version for p in cuda13_lock().packages.values()}
    return make_manifest({**dists, "pip": "23.0.1", **(extra or {})})


def test_an_image_built_from_its_lock_matches():
    data, label = as_file(installed_as_locked())
    assert baked.verify_manifest(data, label, cuda13_lock()) == []
    assert baked.verify_manifest(data, "sha256:" + label, cuda13_lock()) == []


def test_changing_one_pin_is_caught():
    """The image has torch 2.14.1; the lock (after changing the pin and locking) has 2.12.0."""
    locked = cuda13_lock()
    packages = {**locked.packages, "torch": LockedPackage("torch", "2.12.0", (SHA,))}
    data, label = as_file(installed_as_locked())
    assert baked.verify_manifest(data, label, lockfile.Lock(locked.path, "pip", {}, packages)) == [
        "different version: torch 2.14.1 installed, 2.12.0 locked"
    ]


def test_every_kind_of_difference_is_listed():
    packages = [
        LockedPackage("torch", "2.11.0"),
        LockedPackage("numpy", "2.4.6"),
        LockedPackage("sympy", "1.14.0"),
    ]
    installed = make_manifest({"torch": "2.11.0", "numpy": "2.4.5", "requests": "2.0", "pip": "25"})
    assert verify.compare(installed, packages) == [
        "different version: numpy 2.4.5 installed, 2.4.6 locked",
        "missing: sympy==1.14.0 is locked, not installed",
        "extra: requests 2.0 is installed, not locked",
    ]
    assert "extra: pip 25 is installed, not locked" in verify.compare(
        installed, packages, allowed_extra=()
    )


def test_a_locked_pip_is_checked_like_any_package():
    packages = [LockedPackage("pip", "24.0"), LockedPackage("setuptools", "81.0.0")]
    installed = make_manifest({"pip": "23.0.1", "setuptools": "81.0.0"})
    assert verify.compare(installed, packages) == [
        "different version: pip 23.0.1 installed, 24.0 locked"
    ]


def test_twice_installed_distribution_is_a_difference():
    installed = make_manifest({"torch": "2.11.0"})
    installed["distributions"].append(dict(installed["distributions"][0], version="2.10.0"))
    assert verify.compare(installed, [LockedPackage("torch", "2.11.0")]) == [
        "torch: installed 2 times (2.11.0, 2.10.0)"
    ]


def test_conda_lock_entries_are_checked_where_they_are_python_distributions():
    packages = [
        LockedPackage("torch", "2.7.1+cu118", manager="pip"),
        LockedPackage("python", "3.11.14", manager="conda"),
        LockedPackage("pip", "25.2", manager="conda"),
        LockedPackage("openssl", "3.5.0", manager="conda"),
    ]
    installed = make_manifest({"torch": "2.7.1+cu118", "pip": "25.1"})
    assert verify.compare(installed, packages) == [
        "different version: pip 25.1 installed, 25.2 locked (conda)"
    ]


def test_label_and_manifest_digests_are_checked():
    data, label = as_file(installed_as_locked())
    assert verify.check_label(data, None)[0].startswith("the image has no io.torchenv.manifest")
    wrong = verify.check_label(data, "0" * 64)
    assert wrong and "was changed after the build" in wrong[0]
    edited = json.loads(data)
    edited["distributions"][0]["version"] = "0"
    edited_data = (manifests.render(edited) + "\n").encode()
    problems = baked.verify_manifest(
        edited_data, hashlib.sha256(edited_data).hexdigest(), cuda13_lock()
    )
    assert f"{edited['distributions'][0]['name']}: its digest does not match its entry" in problems
    assert "the manifest's content digest does not match its content" in problems


def test_not_a_manifest():
    assert baked.verify_manifest(b"{", None, cuda13_lock())[0].startswith(
        "/opt/torchenv/manifest.json is not valid JSON"
    )
    assert baked.verify_manifest(b"{}", None, cuda13_lock()) == [
        "/opt/torchenv/manifest.json is not a torchenv-manifest/1 manifest"
    ]


def test_installer_from_build_info():
    assert verify.image_installer(b'{"target": "cuda13", "installer": "conda"}') == "conda"
    assert verify.image_installer(b"not json") is None
    assert verify.image_installer(None) is None


def test_a_dev_image_built_from_the_dev_lock_is_verified_against_both_locks():
    t = matrix.get("cuda13")
    base = verify.lock_for(t, "uv")
    dev = lockfile.read_lock(t.dev_lock, "cuda13")
    runtime_info = b'{"installer": "uv", "lock": "hashes"}'
    assert verify.with_overlays(base, t, runtime_info).packages == base.packages
    unlocked = b'{"installer": "uv", "lock": "hashes+extras"}'
    assert verify.with_overlays(base, t, unlocked).packages == base.packages
    both = verify.with_overlays(base, t, b'{"installer": "uv", "lock": "hashes+dev-lock"}')
    assert set(both.packages) == set(base.packages) | set(dev.packages)
    assert "ipykernel" in both.packages and "ipykernel" not in base.packages
    # an image whose dev extras are installed but not locked: they are extra
    have = {"distributions": [
        {"name": p.name, "version": p.version} for p in both.packages.values()
    ]}  # fmt: skip
    assert verify.compare(have, both.packages.values()) == []
    assert "extra: ipykernel 7.4.0 is installed, not locked" in verify.compare(
        have, base.packages.values()
    )
    with pytest.raises(UserError, match=r"installed envs/cuda13.project.lock.txt, which does not"):
        verify.with_overlays(base, t, b'{"lock": "hashes+project-lock"}')


def test_the_projects_own_package_is_verified_at_the_version_the_image_installed():
    t = matrix.get("cuda13")
    base = verify.lock_for(t, "uv")
    info = b'{"installer": "uv", "lock": "hashes", "package": "My_Pkg==0.3.1"}'
    lock = verify.with_overlays(base, t, info)
    assert lock.packages["my-pkg"].version == "0.3.1"
    have = {"distributions": [
        {"name": p.name, "version": p.version} for p in base.packages.values()
    ]}  # fmt: skip
    with_pkg = {"distributions": [*have["distributions"], {"name": "my-pkg", "version": "0.3.1"}]}
    assert verify.compare(with_pkg, lock.packages.values()) == []
    assert verify.compare(have, lock.packages.values()) == [
        "missing: my-pkg==0.3.1 is locked, not installed"
    ]
    assert "extra: my-pkg 0.3.1 is installed, not locked" in verify.compare(
        with_pkg, base.packages.values()
    )


def test_no_lock_to_verify_against():
    with pytest.raises(UserError, match=r"envs/cpu.pip.lock.txt does not exist.*invoke lock"):
        verify.lock_for(matrix.get("cpu"), "pip")


# --- against a real engine ----------------------------------------------------------------------


@pytest.mark.engine
@pytest.mark.slow
def test_the_dev_image_installs_its_extras_from_the_dev_lock_and_verifies(docker_engine, dev_image):
    """The dev flavor's extras come from envs/cuda13.dev.lock.txt with --require-hashes; verify
    reads both locks for it and finds nothing extra, missing or changed."""
    info = subprocess.run(
        [docker_engine.client, "run", "--rm", "--network=none", dev_image, "cat",
         verify.BUILD_INFO_PATH],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert json.loads(info)["lock"] == "hashes+dev-lock"
    lines: list[str] = []
    assert (
        verify.verify_image(
            "cuda13", image=dev_image, client=docker_engine.client, out=lines.append
        )
        == []
    )
    assert lines and "hashed " + dev_image in lines[0]


@pytest.mark.engine
def test_images_that_cannot_be_verified_give_one_line_and_leave_no_container(docker_engine):
    """An image without Python (FROM scratch), and no image at all."""
    import docker

    client = docker.from_env()
    tag = f"torchenv-test/verify:{uuid.uuid4().hex[:12]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = b"FROM scratch\nLABEL io.torchenv.target=cuda13\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    before = {c.id for c in client.containers.list(all=True)}
    try:
        with pytest.raises(UserError, match=rf"^cannot hash {tag}'s environment with its `python`"):
            verify.verify_image("cuda13", image=tag, out=lambda line: None)
        with pytest.raises(UserError, match="^no image torchenv-test/absent:0 on this engine"):
            verify.verify_image("cuda13", image="torchenv-test/absent:0")
        for args, message in (
            (["--image", "torchenv-test/absent:0"], "error: no image torchenv-test/absent:0 on"),
            (["--image", tag, "--target", "cuda13"], f"error: cannot hash {tag}'s environment"),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "invoke", "verify", *args], cwd=REPO,
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            errors = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode == 1 and len(errors) == 1, done.stderr
            assert errors[0].startswith(message), errors
    finally:
        client.images.remove(tag, force=True)
    assert {c.id for c in client.containers.list(all=True)} == before


def test_diff_manifests_names_every_difference():
    one = make_manifest({"torch": "2.11.0", "numpy": "2.4.6"})
    one["distributions"][1]["files"] = {"torch/a.py": {"sha256": SHA, "size": 1}}
    two = json.loads(json.dumps(one))
    assert baked.diff_manifests(one, two) == []
    two["distributions"][1]["files"]["torch/a.py"]["sha256"] = "b" * 64
    two["distributions"][1]["files"]["torch/b.py"] = {"sha256": SHA, "size": 1}
    two["distributions"][0]["version"] = "2.4.7"
    two["distributions"].append(dict(two["distributions"][0], name="extra"))
    assert baked.diff_manifests(one, two) == [
        "only in the second: extra 2.4.7",
        "numpy: version 2.4.6 vs 2.4.7",
        "torch: torch/b.py only in the second",
        "torch: torch/a.py differs",
    ]


def with_files(
    manifest: dict, files: dict[str, dict[str, str]], unowned: dict | None = None
) -> dict:
    """A copy of `manifest` whose torch entry has `files`, and with `unowned` files."""
    copy = json.loads(json.dumps(manifest))
    for dist in copy["distributions"]:
        if dist["name"] == "torch":
            dist["files"] = files
        dist["digest"] = manifests.digest({k: v for k, v in dist.items() if k != "digest"})
    if unowned is not None:
        copy["unowned"] = unowned
    copy["digest"] = manifests.manifest_digest(copy)
    return copy


F = {"sha256": SHA, "size": 1}
G = {"sha256": "b" * 64, "size": 1}


def test_against_build_names_every_package_and_file():
    baked = with_files(installed_as_locked(), {"torch/a.py": F, "torch/b.py": F}, {"lib/x.pth": F})
    live = with_files(installed_as_locked({"six": "1.16.0"}), {"torch/a.py": G, "torch/c.py": F},
                      {"lib/x.pth": G, "lib/evil.py": F})  # fmt: skip
    live["distributions"] = [d for d in live["distributions"] if d["name"] != "sympy"]
    for dist in live["distributions"]:
        if dist["name"] == "numpy":
            dist["version"] = "9.9"
    numpy = next(d["version"] for d in baked["distributions"] if d["name"] == "numpy")
    sympy = next(d["version"] for d in baked["distributions"] if d["name"] == "sympy")
    assert verify.against_build(live, baked) == [
        "added: six 1.16.0 (not in the build's manifest)",
        f"removed: sympy {sympy} (in the build's manifest, gone now)",
        f"changed version: numpy {numpy} at build, 9.9 now",
        "changed file: torch/a.py (torch)",
        "deleted file: torch/b.py (torch)",
        "new file: torch/c.py (torch)",
        "unowned file: lib/evil.py (no distribution owns it)",
        "changed unowned file: lib/x.pth (no distribution owns it)",
    ]
    assert verify.against_build(baked, baked) == []


def test_without_a_build_manifest_records_and_ownership_decide():
    live = with_files(installed_as_locked(), {}, {"lib/torchenv.pth": F, "lib/evil.py": F})
    torch = next(d for d in live["distributions"] if d["name"] == "torch")
    torch["missing"], torch["modified"] = ["torch/gone.py"], ["torch/edited.py"]
    differences, notes = verify.audit(live, None, None, cuda13_lock())
    assert differences == [
        "deleted file: torch/gone.py (torch)",
        "changed file: torch/edited.py (torch)",
        "unowned file: lib/evil.py (no distribution owns it)",
    ]
    assert notes == [
        "no /opt/torchenv/manifest.json in the image: compared with the lock and RECORDs only"
    ]


def test_a_build_manifest_whose_label_disagrees_is_not_trusted():
    live = with_files(installed_as_locked({"six": "1.16.0"}), {}, {})
    data, _ = as_file(with_files(installed_as_locked(), {}, {}))
    differences, notes = verify.audit(live, data, "0" * 64, cuda13_lock())
    assert differences[0] == "extra: six 1.16.0 is installed, not locked"
    assert "was changed after the build" in differences[1]
    assert notes == ["the build's manifest cannot be trusted: compared with RECORDs only"]
    data, label = as_file(with_files(installed_as_locked(), {}, {}))
    assert verify.audit(live, data, label, cuda13_lock()) == (
        ["extra: six 1.16.0 is installed, not locked",
         "added: six 1.16.0 (not in the build's manifest)"],
        [],
    )  # fmt: skip


def test_the_target_of_an_image_comes_from_its_label():
    from tests.support.fakerunner import FakeRunner, reply

    labelled = FakeRunner(
        {("docker", "image", "inspect"): reply('{"Labels": {"io.torchenv.target": "cuda13"}}')}
    )
    assert verify.target_of("me/derived:1", labelled, client="docker") == "cuda13"
    bare = FakeRunner({("docker", "image", "inspect"): reply('{"User": "", "Labels": null}')})
    with pytest.raises(
        UserError,
        match=r"^x:1 has no io.torchenv.target label: say which lock .* with --target \(cpu, cuda118, cuda12, cuda13, cuda132\)$",
    ):
        verify.target_of("x:1", bare, client="docker")
