import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from tests.support import REPO
from tests.support.fakerunner import FakeRunner, reply

from torchenv import hints, matrix
from torchenv.engine import Engine
from torchenv.engine.labels import CREATED_LABEL, MANIFEST_LABEL
from torchenv.errors import UserError
from torchenv.image import build
from torchenv.image import context as buildcontext

STAGED_WHEELS = REPO / buildcontext.WHEELHOUSE_DIR

BUILTIN = Engine("/usr/bin/docker", "20.10.24", "20.10.24", "builtin")
BUILDX = Engine("/usr/local/bin/docker", "28.2.2", "28.2.2", "buildx")
CA = "/etc/ssl/certs/ca-certificates.crt"


def request(**changes):
    return build.BuildRequest(target=matrix.get("cuda13"), **changes)


def test_default_command_with_engine_builtin_buildkit():
    argv, env = build.build_command(request(), BUILTIN, environ={})
    assert env == {"DOCKER_BUILDKIT": "1"}
    assert argv == [
        "/usr/bin/docker", "build", "--progress=plain",
        "--file", "docker/cuda13.Dockerfile", "--target", "runtime",
        "--tag", "torchenv/cuda13:2.14.1-cu130",
        "--build-arg", "INSTALLER=uv", "--build-arg", "USER_UID=1000",
        "--build-arg", "USER_GID=1000", ".",
    ]  # fmt: skip


def test_buildx_client_loads_the_image_into_the_engine():
    argv, env = build.build_command(request(), BUILDX, environ={})
    assert argv[:4] == ["/usr/local/bin/docker", "buildx", "build", "--load"] and env == {}


def test_network_options_become_build_args_and_a_secret_never_a_value_in_history():
    req = request(
        installer="pip", ca_cert=Path(CA), base_image="local/base:1", index_url="http://mirror/simple",
        conda_channel_alias="http://conda-mirror", no_cache=True, flavor="dev",
    )  # fmt: skip
    environ = {"HTTPS_PROXY": "http://user:pw@proxy:3128", "NO_PROXY": "localhost"}
    argv, _ = build.build_command(req, BUILTIN, labels={"REVISION": "abc"}, environ=environ)
    line = " ".join(argv)
    assert "--target dev --tag torchenv/cuda13:2.14.1-cu130-dev" in line
    assert "--build-arg INSTALLER=pip" in line
    assert f"--secret id=ca_cert,src={CA}" in line
    assert "--build-arg BASE_IMAGE=local/base:1" in line
    assert "--build-arg TORCHENV_INDEX_URL=http://mirror/simple" in line
    assert "--build-arg CONDA_CHANNEL_ALIAS=http://conda-mirror" in line
    # proxies pass by name only: the value (with its password) is not on the command line
    assert "--build-arg HTTPS_PROXY --build-arg NO_PROXY" in line and "pw@" not in line
    assert "--build-arg REVISION=abc" in line
    assert argv[-2:] == ["--no-cache", "."]


def test_dry_run_prints_the_exact_commands_without_an_engine():
    req = request(installer="pip", ca_cert=Path(CA), base_image="x/y:1", allow_unpinned_base=True)
    commands = build.run_build(req, BUILTIN, dry_run=True)
    assert commands[0].startswith("DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain")
    assert commands[1:] == [
        "/usr/bin/docker create --pull never --label io.torchenv.managed=true "
        "--label io.torchenv.target=cuda13 --label io.torchenv.manifest=cuda13 "
        "--label io.torchenv.project=torchenv --name NAME torchenv/cuda13:2.14.1-cu130",
        "/usr/bin/docker cp NAME:/opt/torchenv/manifest.json DIR/manifest.json",
        "/usr/bin/docker cp NAME:/opt/torchenv/env-report.json DIR/env-report.json",
        "/usr/bin/docker rm --force NAME   # then label the image with the manifest file's sha256",
    ]


def test_a_project_with_a_package_builds_its_wheel_first_and_only_for_the_runtime(monkeypatch):
    monkeypatch.setattr(build.projectpkg, "enabled", lambda root, project: True)
    monkeypatch.setattr(build, "validate", lambda req: None)  # this repository's Dockerfiles
    req = request(installer="pip", base_image="x/y:1", allow_unpinned_base=True)
    commands = build.run_build(req, BUILTIN, dry_run=True)
    assert " build --wheel " in commands[0] or " pip wheel " in commands[0]
    assert commands[0].endswith("then staged into .torchenv/package/")
    assert commands[1].startswith("DOCKER_BUILDKIT=1 /usr/bin/docker build")
    dev = build.run_build(
        request(flavor="dev", installer="pip", base_image="x/y:1", allow_unpinned_base=True),
        BUILTIN, dry_run=True,
    )  # fmt: skip
    assert dev[0].startswith("DOCKER_BUILDKIT=1")  # the dev container installs it editable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_image": "python:3.11"}, "given by tag alone: pin it by digest .* --allow-unpinned-base"),
        ({"installer": "poetry"}, "unknown installer 'poetry': choose one of uv, pip, conda"),
        ({"flavor": "slim"}, "unknown flavor 'slim'"),
        ({"ca_cert": Path("/nonexistent/ca.pem")}, "--ca-cert /nonexistent/ca.pem: cannot read it"),
        ({"ca_cert": Path(__file__)}, "not a PEM certificate bundle"),
        ({"wheelhouse": Path(__file__).parent}, "no \\*.whl files there"),
    ],
    ids=["base by tag alone", "unknown installer", "unknown flavor", "missing CA file",
         "CA that is not PEM", "empty wheelhouse"],
)  # fmt: skip
def test_bad_requests_are_refused_before_building(changes, message):
    with pytest.raises(UserError, match=message):
        build.validate(request(**changes))


def test_pins_that_cannot_exist_are_refused_before_building():
    t = dataclasses.replace(
        matrix.get("cuda118"), torch="2.8.0", torchvision="0.23.0", torchaudio="2.8.0"
    )
    with pytest.raises(UserError, match="torch 2.8.0 has no cu118 build"):
        build.validate(build.BuildRequest(target=t))


def test_env_file_that_disagrees_with_the_matrix_is_refused():
    t = dataclasses.replace(matrix.get("cuda13"), torch="2.12.0", torchvision="0.27.0")
    with pytest.raises(
        UserError, match="envs/cuda13.yml does not match targets.toml: run `invoke generate`"
    ):
        build.validate(build.BuildRequest(target=t, base_image="x@sha256:" + "0" * 64))


@pytest.mark.parametrize(
    ("output", "hint"),
    [
        ("ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED]", "--ca-cert PATH"),
        ("ERROR: No matching distribution found for torch==9.9", "check the pins"),
        ("Failed to establish a new connection: [Errno 111] Connection refused", "--index-url MIRROR"),
        ("BuildKit is enabled but the buildx component is missing or broken", "buildx plugin"),
        ("#9 3.1   cause: invalid peer certificate: UnknownIssuer", "--ca-cert PATH"),
        ("#9 9.1   cause: Connection refused (os error 111)", "--index-url MIRROR"),
        ("#9 1.0   cause: Because torch was not found in the provided package locations and you "
         "require torch==2.11.0, we can conclude", "fill it with pip download"),
        ("#9 1.0   cause: Because torch was not found in the package registry and you require "
         "torch==9.9", "check the pins"),
    ],
    ids=["TLS proxy without CA", "unknown version", "index unreachable", "no buildx",
         "uv: TLS proxy without CA", "uv: index unreachable", "uv: wheelhouse lacks a package",
         "uv: unknown version"],
)  # fmt: skip
def test_failed_builds_are_explained(output, hint):
    assert hint in hints.diagnose_build("...\n" + output + "\n...")


DIGEST = "sha256:" + "8" * 64
# What engine 20.10's BuildKit printed here, with no registry reachable.
NO_REGISTRY = """\
#3 ERROR: failed to do request: Head "https://registry.example/v2/{repo}/manifests/{digest}": dial tcp: lookup registry.example on 10.255.255.53:53: no such host
------
 > [internal] load metadata for docker.io/{repo}:{tag}@{digest}:
------
failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to do request: Head "https://registry.example/v2/{repo}/manifests/{digest}": dial tcp: lookup registry.example on 10.255.255.53:53: no such host
"""


def test_an_unpullable_base_or_micromamba_image_is_named_with_its_fix():
    base = NO_REGISTRY.format(repo="library/python", tag="3.11-slim-bookworm", digest=DIGEST)
    assert hints.diagnose_build(base) == (
        f"cannot pull docker.io/library/python:3.11-slim-bookworm@{DIGEST} from its registry "
        "(name resolution failed): pass --base-image with an image you have locally (and "
        "--allow-unpinned-base when it has no digest), or load it into the engine (docker load)"
    )
    mamba = NO_REGISTRY.format(repo="mambaorg/micromamba", tag="2.3.3", digest=DIGEST)
    assert hints.diagnose_build(mamba).endswith(
        "(name resolution failed): pick an installer that does not need it (--installer uv or "
        "pip), or load it into the engine (docker load)"
    )
    denied = " > [internal] load metadata for docker.io/acme/base:1:\nfailed to solve: pull access denied"
    assert "(access denied)" in hints.diagnose_build(denied)


def test_unknown_failure_has_no_made_up_cause():
    assert hints.diagnose_build("something else broke") is None


# --- run_build's real path, through the command seam ----------------------------------------------

OLD_ID, BUILT_ID, LABELLED_ID = ("sha256:" + c * 64 for c in "abc")
MANIFEST_BYTES = b'{"format": "torchenv-manifest/1"}\n'
FILE_SHA = hashlib.sha256(MANIFEST_BYTES).hexdigest()


def copy_manifest(argv):
    """`docker cp NAME:/opt/torchenv/<file> DEST`, as the engine does it (the env report of a
    cuda13 image lists its kernel architectures)."""
    report = b'{"env": {"torch": {"version": "2.14.1+cu130", "arch_list": ["sm_75", "sm_90"]}}}'
    Path(argv[-1]).write_bytes(MANIFEST_BYTES if argv[-2].endswith("manifest.json") else report)
    return reply()


def facts(image_id: str, layers: list[str], created: str, labelled: bool) -> dict:
    """What `docker image inspect` says of an image, the parts run_build compares."""
    found = {"io.torchenv.target": "cuda13", CREATED_LABEL: created}
    if labelled:
        found |= {MANIFEST_LABEL: FILE_SHA, "io.torchenv.managed": "true"}
        found |= {"io.torchenv.tag": "torchenv/cuda13:2.14.1-cu130"}
        found |= {build.ARCHS_LABEL: "sm_75 sm_90"}  # the label step adds it, as the engine does
    config = {"User": "1000:1000", "Env": ["PATH=/opt/env/bin"], "Labels": found}
    return {"Id": image_id, "RootFS": {"Layers": layers}, "Config": config | {"Image": image_id}}


def engine_answers(
    build_output: str = "#1 done\n", build_code: int = 0, label_code: int = 0, same_layers=False
):
    """A FakeRunner playing a 20.10 engine: the tag names the earlier image, then the build's, then
    the label step's.
    The build's layers are the earlier image's with `same_layers` (a rebuild changing nothing)."""
    old = facts(OLD_ID, ["sha256:1", "sha256:2"], "2026-11-22T10:00:00Z", labelled=True)
    new_layers = ["sha256:1", "sha256:2" if same_layers else "sha256:3"]
    ids, described = iter([LABELLED_ID]), iter([old, BUILT_ID])

    def inspect(argv):
        if "--format" in argv:  # image_id: the ID alone
            return reply(next(ids) + "\n")
        item = next(described)
        if item == BUILT_ID:
            item = facts(BUILT_ID, new_layers, "2026-11-23T10:00:00Z", labelled=False)
        return reply(json.dumps([item]))

    return FakeRunner(
        {
            ("git",): reply("", returncode=128),
            ("/usr/bin/docker", "image", "inspect"): inspect,
            ("/usr/bin/docker", "build", "--progress=plain"): reply(build_output, build_code),
            ("/usr/bin/docker", "create"): reply("container\n"),
            ("/usr/bin/docker", "cp"): copy_manifest,
            ("/usr/bin/docker", "rm"): reply(),
            ("/usr/bin/docker", "build", "--quiet"): reply(
                LABELLED_ID, label_code, "no space left"
            ),
            ("/usr/bin/docker", "tag"): reply(),
            ("/usr/bin/docker", "image", "ls"): reply(f"{OLD_ID}\n{BUILT_ID}\nsha256:{'9' * 64}\n"),
            ("/usr/bin/docker", "image", "rm"): reply(),
        }
    )


def test_run_build_streams_labels_with_the_file_sha256_and_leaves_no_dangling_image():
    runner, lines = engine_answers(), []
    build.run_build(request(installer="pip"), BUILTIN, runner=runner, out=lines.append)
    assert "#1 done" in lines and lines[-1].startswith("torchenv: built torchenv/cuda13")
    label = next(c for c in runner.calls if c.args[:3] == ("/usr/bin/docker", "build", "--quiet"))
    assert f"io.torchenv.manifest.sha256={FILE_SHA}" in label.args
    assert "io.torchenv.cuda-archs=sm_75 sm_90" in label.args  # from the image's env report
    own = label.args[label.args.index("--quiet") + 5 : label.args.index("--tag")]
    assert own == (
        "--label", "io.torchenv.managed=true",
        "--label", "io.torchenv.tag=torchenv/cuda13:2.14.1-cu130",
        "--label", "io.torchenv.project=torchenv",
    )  # fmt: skip
    # by the built image's ID, with the engine's own builder: nothing can pull the tag
    assert label.input == f"FROM {BUILT_ID}\n"
    assert label.env == {"DOCKER_BUILDKIT": "0"}
    create = next(c for c in runner.calls if c.args[:2] == ("/usr/bin/docker", "create"))
    assert create.args[-1] == BUILT_ID and create.args[2:4] == ("--pull", "never")
    assert "io.torchenv.managed=true" in create.args
    removed = [c.args[-1] for c in runner.calls if c.args[1:3] == ("image", "rm")]
    assert removed == [OLD_ID, BUILT_ID]  # not the other dangling image, which is not ours


def test_a_rebuild_that_changed_nothing_keeps_the_labelled_image_and_skips_the_label_step():
    runner, lines = engine_answers(same_layers=True), []
    build.run_build(request(), BUILTIN, runner=runner, out=lines.append)
    assert lines[-1].startswith("torchenv: nothing changed: kept torchenv/cuda13:2.14.1-cu130")
    assert f"sha256 {FILE_SHA[:12]}" in lines[-1]
    assert runner.ran("/usr/bin/docker", "tag", OLD_ID, "torchenv/cuda13:2.14.1-cu130")
    for skipped in (("create",), ("cp",), ("build", "--quiet")):
        assert not runner.ran("/usr/bin/docker", *skipped)
    removed = [c.args[-1] for c in runner.calls if c.args[1:3] == ("image", "rm")]
    assert removed == [BUILT_ID]  # the unlabelled twin, not the image kept


def test_run_build_failure_is_one_line_with_the_cause():
    runner = engine_answers("#9 ERROR: ... SSL: CERTIFICATE_VERIFY_FAILED ...\n", build_code=1)
    with pytest.raises(UserError) as exc:
        build.run_build(request(installer="pip"), BUILTIN, runner=runner, out=lambda line: None)
    assert str(exc.value).startswith("building torchenv/cuda13:2.14.1-cu130 failed (exit 1): TLS")
    assert not runner.ran("/usr/bin/docker", "build", "--quiet")  # nothing labelled


def test_run_build_label_failure_and_missing_client():
    with pytest.raises(UserError, match="labelling torchenv/cuda13:2.14.1-cu130 failed: no space"):
        build.run_build(request(), BUILTIN, runner=engine_answers(label_code=1), out=lambda x: None)
    missing = FakeRunner({("git",): reply()})
    with pytest.raises(UserError, match="/usr/bin/docker not found: install Docker"):
        build.run_build(request(), BUILTIN, runner=missing, out=lambda line: None)


UV_MISMATCH = """\
#9 12.90 Resolved 33 packages in 528ms
#9 13.10 error: Failed to download `six==1.17.0`
#9 13.10   cause: Hash mismatch for `six==1.17.0`
#9 13.10
#9 13.10          Expected:
#9 13.10            sha256:{expected}
#9 13.10
#9 13.10          Computed:
#9 13.10            sha256:{got}
"""


def test_uv_hash_mismatch_names_the_package_and_both_hashes():
    output = UV_MISMATCH.format(expected="a" * 64, got="b" * 64)
    assert hints.diagnose_build(output) == (
        "hash mismatch for six==1.17.0 (locked sha256 aaaaaaaaaaaa..., downloaded "
        "bbbbbbbbbbbb...): the index serves a different file than the one locked, or the lock is "
        "damaged; check where the file comes from (mirror, proxy), then regenerate the lock with "
        "invoke lock"
    )


def test_the_uv_installer_is_the_default_and_pip_and_conda_stay_choices():
    assert build.BuildRequest(target=matrix.get("cuda13")).installer == "uv"
    for installer in ("uv", "pip", "conda"):
        argv, _ = build.build_command(request(installer=installer), BUILTIN, environ={})
        assert argv[argv.index(f"INSTALLER={installer}") - 1] == "--build-arg"
        build.validate(request(installer=installer, base_image="x/y:1", allow_unpinned_base=True))


def test_offline_uv_build_needs_the_uv_wheel_in_the_wheelhouse(tmp_path: Path):
    (tmp_path / "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    offline = {"wheelhouse": tmp_path, "base_image": "x/y:1", "allow_unpinned_base": True}
    with pytest.raises(UserError) as exc:
        build.validate(request(**offline))
    assert str(exc.value) == (
        f"--wheelhouse {tmp_path}: no uv 0.13.9 wheel (uv-0.13.9-*.whl), which the uv installer "
        f"needs offline: pip download --no-deps -d {tmp_path} uv==0.13.9, or "
        "build with --installer pip"
    )
    build.validate(request(installer="pip", **offline))  # pip itself needs no uv
    (tmp_path / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl").write_bytes(
        b""
    )
    build.validate(request(**offline))


# --- index credentials: a BuildKit secret, never a build argument -------------------------------

TOKEN = "s3cr3t-TOKEN"
WITH_CREDENTIALS = f"https://me:{TOKEN}@mirror.example:8443/simple"


def test_index_credentials_become_a_secret_and_the_build_arg_has_none():
    argv, _ = build.build_command(
        request(installer="pip", index_url=WITH_CREDENTIALS), BUILTIN, environ={},
        index_secret=Path("/tmp/x/index_url"),
    )  # fmt: skip
    line = " ".join(argv)
    assert "--build-arg TORCHENV_INDEX_URL=https://mirror.example:8443/simple" in line
    assert "--secret id=index_url,src=/tmp/x/index_url" in line
    assert TOKEN not in line and "me:" not in line


def test_an_index_url_without_credentials_stays_a_plain_build_arg():
    argv, _ = build.build_command(request(index_url="http://mirror/simple"), BUILTIN, environ={})
    assert "TORCHENV_INDEX_URL=http://mirror/simple" in argv and "--secret" not in argv


def test_the_secret_file_is_private_holds_the_url_and_is_gone_after_the_build():
    seen = {}

    def building(argv):
        src = Path(argv[argv.index("--secret") + 1].split("src=", 1)[1])
        seen.update(text=src.read_text(), mode=src.stat().st_mode & 0o777, path=src)
        seen["folder_mode"] = src.parent.stat().st_mode & 0o777
        return reply("#1 ERROR: no\n", 1)

    runner = engine_answers()
    runner.answers = {**runner.answers, ("/usr/bin/docker", "build", "--progress=plain"): building}
    req = request(installer="pip", index_url=WITH_CREDENTIALS)
    with pytest.raises(UserError, match="failed"):
        build.run_build(req, BUILTIN, runner=runner, out=lambda line: None)
    assert seen["text"] == WITH_CREDENTIALS
    assert seen["mode"] == 0o600 and seen["folder_mode"] == 0o700
    assert not seen["path"].exists() and not seen["path"].parent.exists()
    dry = build.run_build(req, BUILTIN, dry_run=True)
    assert "'id=index_url,src=<a private temporary file holding the URL>'" in dry[0]
    assert TOKEN not in dry[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"index_url": "ftp://mirror/simple"}, "--index-url 'ftp://mirror/simple' is not an http(s) URL"),
        ({"index_url": "mirror/simple"}, "--index-url 'mirror/simple' is not an http(s) URL"),
        ({"index_url": "https://mirror:port/simple"}, "--index-url 'https://mirror:port/simple' is not an http(s) URL"),
        ({"conda_channel_alias": "https://u:p@conda-mirror"}, "--conda-channel-alias holds a user or password"),
    ],
    ids=["not http", "no scheme", "bad port", "credentials in the conda alias"],
)  # fmt: skip
def test_bad_mirror_urls_are_refused_before_building(changes, message):
    with pytest.raises(UserError) as exc:
        build.validate(request(installer="pip", **changes))
    assert str(exc.value).startswith(message)


def test_a_query_token_is_a_secret_and_the_build_output_is_scrubbed():
    """Issue 20, items 2 and 4: `?token=` never becomes a build argument nor shows in output."""
    url = f"https://mirror.example/simple?token={TOKEN}"
    argv, _ = build.build_command(
        request(installer="pip", index_url=url), BUILTIN, environ={},
        index_secret=Path("/tmp/x/index_url"),
    )  # fmt: skip
    line = " ".join(argv)
    assert "--build-arg TORCHENV_INDEX_URL=https://mirror.example/simple " in line
    assert "--secret id=index_url,src=/tmp/x/index_url" in line and TOKEN not in line
    runner = engine_answers()
    runner.answers = {
        **runner.answers,
        ("/usr/bin/docker", "build", "--progress=plain"): reply(
            f"#9 0.5 Looking in indexes: {url}\n#9 1.0 ERROR: 403 for {url}\n", 1
        ),
    }
    seen: list[str] = []
    with pytest.raises(UserError) as exc:
        build.run_build(
            request(installer="pip", index_url=url), BUILTIN, runner=runner, out=seen.append
        )
    assert seen and TOKEN not in "\n".join(seen) and TOKEN not in str(exc.value)


def test_sigterm_during_the_build_cleans_up_like_ctrl_c(tmp_path: Path):
    """Issue 20, item 5: the secret file and the linked wheel are gone, KeyboardInterrupt goes on
    (tasks turn it into exit 130), and SIGTERM's handler is the earlier one again."""
    import os
    import signal

    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    seen = {}

    def building(argv):
        seen["secret"] = Path(argv[argv.index("--secret") + 1].split("src=", 1)[1])
        seen["linked"] = (STAGED_WHEELS / wheel.name).exists()
        os.kill(os.getpid(), signal.SIGTERM)
        return reply("never\n")

    runner = engine_answers()
    runner.answers = {**runner.answers, ("/usr/bin/docker", "build", "--progress=plain"): building}
    req = request(
        installer="pip", index_url=WITH_CREDENTIALS, wheelhouse=tmp_path, base_image="x/y:1",
        allow_unpinned_base=True,
    )  # fmt: skip
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        build.run_build(req, BUILTIN, runner=runner, out=lambda line: None)
    assert seen["linked"] and not (STAGED_WHEELS / wheel.name).exists()
    assert not seen["secret"].exists() and not seen["secret"].parent.exists()
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uid": 0}, "--uid 0 is out of range"),
        ({"gid": -1}, "--gid -1 is out of range"),
        ({"uid": 2**31}, "--uid 2147483648 is out of range"),
        ({"gid": 2000}, "--gid 2000 is the image's environment group"),
        ({"ca_cert": Path("/tmp/a,src=/etc/shadow")}, "--ca-cert '/tmp/a,src=/etc/shadow': the path holds a comma"),
        ({"ca_cert": Path('/tmp/a"b')}, "--ca-cert '/tmp/a\"b': the path holds a comma, quote"),
    ],
)  # fmt: skip
def test_ids_and_ca_paths_that_cannot_work_are_refused_before_building(changes, message):
    """Issue 20, Low list: IDs 1..2**31-1, not the env group; no comma or quote in the secret."""
    with pytest.raises(UserError) as exc:
        build.validate(request(**changes))
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_a_dockerignore_that_keeps_the_staged_locks_out_is_refused(tmp_path, monkeypatch):
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!.torchenv/kit/\n!envs/\n")  # an older kit's
    with pytest.raises(UserError) as exc:
        build._check_dockerignore(ignore)
    assert str(exc.value).startswith(".dockerignore keeps .torchenv/locks/ (the locks the build")
    assert "add the line !.torchenv/locks/" in str(exc.value)
    ignore.write_text("*\n!.torchenv/kit/\n!.torchenv/locks/\n")
    build._check_dockerignore(ignore)
    ignore.write_text("**/__pycache__\n")  # lets everything else in
    build._check_dockerignore(ignore)
    build._check_dockerignore(tmp_path / "absent")
    build._check_dockerignore(REPO / ".dockerignore")  # this repository's own
    build._check_dockerignore(REPO / ".dockerignore", package=True)
    ignore.write_text("*\n!.torchenv/kit/\n!.torchenv/locks/\n")  # without the project's wheel
    with pytest.raises(UserError, match=r"^.dockerignore keeps .torchenv/package/ \(the project's"):
        build._check_dockerignore(ignore, package=True)
