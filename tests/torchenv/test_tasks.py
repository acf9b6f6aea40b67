"""The invoke tasks as a user runs them: real `invoke` processes, dry runs, one-line errors."""

import contextlib
import getpass
import json
import os
import re
import subprocess
import sys

import pytest
from tests.support import REPO as ROOT

import images


def invoke(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The task as a user runs it: without the torchenv.* configuration CI sets through
    INVOKE_TORCHENV_* variables (.ci/build.env), unless `env` gives it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_TORCHENV_")}
    return images.invoke(*args, env={**clean, **(env or {})}, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], done.stderr


def test_every_task_has_help():
    listing = invoke("--list").stdout
    for name in (
        "build",
        "smoke",
        "shell",
        "lint",
        "matrix",
        "clean",
        "doctor",
        "generate",
        "export",
    ):
        assert f"  {name} " in listing
        helptext = invoke("--help", name).stdout
        options = helptext.split("Options:", 1)[1].splitlines()
        flags = [line for line in options if line.strip().startswith("-")]
        for line in flags:  # every flag has help text after its name
            assert len(line.strip().split(None, 1)) == 2 and "  " in line.strip(), (name, line)


@pytest.mark.parametrize("task", ["build", "smoke", "shell", "clean"])
def test_unknown_target_lists_the_valid_ones(task):
    done = invoke(task, "--target", "cuda99", *(["--dry-run"] if task != "smoke" else []))
    assert_one_line_error(
        done, "unknown target 'cuda99': choose one of cpu, cuda118, cuda12, cuda13"
    )


@pytest.mark.parametrize("target", ["cpu", "cuda118", "cuda12", "cuda13", "cuda132"])
def test_build_dry_run_for_every_target(target):
    done = invoke("build", "--target", target, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"--file docker/{target}.Dockerfile --target runtime" in done.stdout
    assert "build" in done.stdout.splitlines()[0]


def test_build_refuses_a_tag_only_base():
    done = invoke("build", "--target", "cuda13", "--base-image", "python:3.11", "--dry-run")
    assert_one_line_error(done, "pin it by digest")


def test_smoke_dry_run_requests_gpus_and_expectations():
    done = invoke("smoke", "--target", "cuda118", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (
        "--gpus=all" in done.stdout and "--expect-variant cu118 --expect-torch 2.7.1" in done.stdout
    )
    done = invoke("smoke", "--target", "cuda118", "--no-gpu", "--dry-run")
    assert "--gpus" not in done.stdout


def test_shell_dry_run_mounts_the_workspace_as_the_caller():
    done = invoke("shell", "--target", "cuda13", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"--user {os.getuid()}:{os.getgid()}" in done.stdout
    assert f"--env USER={getpass.getuser()}" in done.stdout  # torch.compile needs a user name
    assert (
        "--mount type=bind,source=" in done.stdout
        and ",target=/workspace" in done.stdout
        and "--shm-size=2g" in done.stdout
    )


def test_every_task_with_a_flavor_defaults_to_the_runtime_one():
    """One default across tasks: shell defaulted to dev, so right after `invoke build` it said
    "image ...-dev is not built yet"."""
    for task in ("build", "smoke", "shell", "test", "export", "push"):
        assert "default: runtime" in " ".join(invoke("--help", task).stdout.split()), task
    shell = invoke("shell", "--target", "cuda13", "--dry-run").stdout
    smoke = invoke("smoke", "--target", "cuda13", "--dry-run").stdout
    image = "torchenv/cuda13:2.14.1-cu130"
    assert f" {image} bash" in shell and f" {image} " in smoke and "-dev" not in shell + smoke


def test_notebook_dry_run_hides_the_token_and_publishes_on_loopback_only():
    done = invoke("notebook", "--target", "cuda13", "--port", "8890", "--dry-run")
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1]
    assert line.startswith("JUPYTER_TOKEN=*** ") and " --env JUPYTER_TOKEN " in line
    assert f"--user {os.getuid()}:{os.getgid()}" in line and "--shm-size=2g" in line
    assert "--publish 127.0.0.1:8890:8890 " in line and "-dev /opt/env/bin/jupyter-lab " in line
    assert not re.search(r"[0-9a-f]{32}", line)  # no token in it


def test_notebook_port_in_use_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = invoke("notebook", "--target", "cpu", "--port", str(port))
    assert_one_line_error(done, f"port {port} on 127.0.0.1 is in use: pick another with --port")
    done = invoke("notebook", "--target", "cpu", "--port", "80", "--dry-run")
    assert_one_line_error(done, "--port 80 is out of range: give 1024..65535")


def test_matrix_shows_the_matrix_and_list_is_its_alias():
    out = invoke("matrix").stdout
    assert "cuda118  2.7.1" in out and "520.61.05" in out
    assert invoke("list").stdout == out
    assert "matrix (list)" in invoke("--list").stdout


def test_a_configured_boolean_is_read_strictly():
    # the bug this fixes: any word but "0" read as true, so "false" turned the guard off
    args = ("build", "--target", "cuda13", "--base-image", "python:3.11", "--dry-run")
    done = invoke(*args, env={"INVOKE_TORCHENV_ALLOW_UNPINNED_BASE": "false"})
    assert_one_line_error(done, "is given by tag alone")
    done = invoke(*args, env={"INVOKE_TORCHENV_ALLOW_UNPINNED_BASE": "maybe"})
    assert_one_line_error(done, "'maybe' is not true or false")
    assert invoke(*args, env={"INVOKE_TORCHENV_ALLOW_UNPINNED_BASE": "true"}).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "2", "--quick"), "--quick does not apply with --nodes"),
        (("--nodes", "2", "--timeout", "9", "--args", "-v"), "--args, --timeout do not apply"),
        (
            (
                "--rdzv-port",
                "3000",
            ),
            "--rdzv-port does not apply without --nodes",
        ),
        (
            (
                "--args",
                "'x",
            ),
            '--args "\'x" cannot be split',
        ),
    ],
)
def test_smoke_refuses_flags_that_do_not_apply(args, message):
    assert_one_line_error(invoke("smoke", "--target", "cpu", "--dry-run", *args), message)


def test_missing_daemon_is_one_clear_line():
    done = invoke("smoke", "--target", "cpu", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert_one_line_error(done, "Docker daemon")


def test_generate_check_passes_on_the_committed_tree():
    done = invoke("generate", "--check")
    assert done.returncode == 0, done.stderr


def test_doctor_real_run_exits_zero_here_or_explains(tmp_path):
    done = invoke("doctor", "--target", "cpu")
    assert "Docker daemon" in done.stdout
    assert "Traceback" not in done.stderr


def test_doctor_reads_the_configured_ca_bundle_instead_of_asking_for_it(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    done = invoke("doctor", "--target", "cpu", env={
        "INVOKE_TORCHENV_CA_CERT": str(bundle), "PIP_CERT": str(bundle)})  # fmt: skip
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("CA certificates")]
    assert f"builds are given {bundle} (" in row and " ok " in row, done.stdout
    assert "invoke build --ca-cert" not in done.stdout


def test_lint_passes_on_the_committed_tree():
    done = invoke("lint")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "generated files are current" in done.stdout


def test_lock_check_passes_and_lock_dry_run_shows_the_resolver():
    assert invoke("lock", "--check").returncode == 0
    done = invoke("lock", "--target", "cuda13", "--dry-run", "--resolver", "pip")
    assert done.returncode == 0 and "pip install --dry-run" in done.stdout
    assert "--python-version 3.11" in done.stdout
    done = invoke("lock", "--target", "cuda13", "--dry-run")  # uv: the kit depends on it
    assert done.returncode == 0 and "uv pip compile --no-config" in done.stdout
    assert "--python-platform x86_64-manylinux_2_28" in done.stdout


def test_a_bad_uid_is_one_line():
    done = invoke("build", "--target", "cuda13", "--uid", "abc", "--dry-run")
    assert_one_line_error(done, "--uid 'abc' is not a whole number")


def test_help_shows_every_flag_by_its_name():
    helptext = invoke("--help", "build").stdout
    assert "  --no-cache " in helptext and "--, " not in helptext


def test_a_broken_targets_toml_is_one_line_and_list_still_works(tmp_path):
    """A copy of the task file and the library, with a TOML syntax error in targets.toml."""
    import shutil

    for name in ("tasks.py", "src", "envs", "docker"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    (tmp_path / "targets.toml").write_text((ROOT / "targets.toml").read_text() + "[targets.x\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    run = {
        "cwd": tmp_path,
        "capture_output": True,
        "text": True,
        "env": env,
        "timeout": 120,
        "check": False,
    }
    listing = subprocess.run([sys.executable, "-m", "invoke", "--list"], **run)
    assert listing.returncode == 0 and "build" in listing.stdout, listing.stderr
    done = subprocess.run([sys.executable, "-m", "invoke", "list"], **run)
    assert_one_line_error(done, "targets.toml:")
    assert "fix the TOML syntax" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["smoke", "--target", "cuda13", "--timeout", "0", "--dry-run"],
         "error: --timeout '0' is not a positive number of seconds: e.g. --timeout 600"),
        (["smoke", "--target", "cuda13", "--timeout", "soon", "--dry-run"],
         "error: --timeout 'soon' is not a positive number of seconds"),
        (["build", "--target", "cuda13", "--index-url", "ftp://mirror/simple", "--dry-run"],
         "error: --index-url 'ftp://mirror/simple' is not an http(s) URL"),
        (["build", "--target", "cuda13", "--conda-channel-alias", "https://u:p@mirror", "--dry-run"],
         "error: --conda-channel-alias holds a user or password"),
        (["verify"], "error: --target is required: choose one of cpu, cuda118, cuda12, cuda13"),
        (["build", "--target", "cuda13", "--registry", "ci:s3cret@ghcr.io/org", "--dry-run"],
         "error: --registry '***@ghcr.io/org' holds a user or password: a registry takes none"),
        (["build", "--target", "cuda13", "--no-push", "--dry-run"],
         "error: --no-push goes with --registry HOST[:PORT]/NAMESPACE"),
    ],
    ids=["timeout zero", "timeout not a number", "index not http", "alias with credentials",
         "verify without target or image", "registry with credentials", "no-push alone"],
)  # fmt: skip
def test_bad_input_is_one_line(args, message):
    assert_one_line_error(invoke(*args), message)


def test_the_readme_names_exactly_the_tasks_that_take_dry_run():
    import re

    readme = (ROOT / "README.md").read_text()
    named = re.search(r"remove something \(([^)]*)\) take `--dry-run`", readme.replace("\n", " "))
    assert named, "README's sentence about --dry-run is gone"
    claimed = set(re.findall(r"`([a-z-]+)`", named.group(1)))
    listing = invoke("--list").stdout.split()
    tasks = [t for t in ("build", "smoke", "shell", "notebook", "clean", "lock", "export", "push",
                         "verify", "k8s", "doctor", "generate", "matrix", "refresh-digest", "lint")
             if t in listing]  # fmt: skip
    with_dry_run = {t for t in tasks if "--dry-run" in invoke("--help", t).stdout}
    assert claimed == with_dry_run


def _project(folder, image_repo: str):
    """A project of the kit's shape: this repository's matrix under another image_repo."""
    (folder / "envs").mkdir(parents=True)
    text = (ROOT / "targets.toml").read_text()
    (folder / "targets.toml").write_text(
        text.replace('image_repo = "torchenv"', f'image_repo = "{image_repo}"')
    )
    for name in ("cuda13.yml", "cuda13.pip.lock.txt"):
        (folder / "envs" / name).write_text((ROOT / "envs" / name).read_text())
    return folder


def test_tasks_in_one_process_act_on_the_project_of_each_call(tmp_path, monkeypatch, capsys):
    """The project's root is found per invocation, not at import: one process runs tasks in two
    project folders, each acting on its own files."""
    from invoke import Program

    from torchenv.tasks import ns

    one, two = _project(tmp_path / "one", "alpha"), _project(tmp_path / "two", "beta")
    lock = two / "envs" / "cuda13.pip.lock.txt"  # made from another env file: drift
    lock.write_text(
        re.sub(r"(?m)^# env-sha256: \S+", "# env-sha256: " + "0" * 64, lock.read_text())
    )
    program = Program(namespace=ns, name="invoke", binary="invoke")
    seen = {}
    for folder in (one, two, one):
        monkeypatch.chdir(folder)
        program.run(["invoke", "matrix", "--format", "json", "--target", "cuda13"], exit=False)
        image = json.loads(capsys.readouterr().out)[0]["image_repo"]
        with contextlib.suppress(SystemExit):  # `two`'s drift ends the task with exit 1
            program.run(["invoke", "lock", "--check", "--target", "cuda13"])
        seen.setdefault(folder.name, []).append((image, capsys.readouterr()))
    assert [image for image, _ in seen["one"]] == ["alpha", "alpha"]
    assert [image for image, _ in seen["two"]] == ["beta"]
    # `two`'s pip lock is stale: its drift names its own file; `one`'s lock agrees with its env file
    assert "locks agree" in seen["one"][0][1].out and "locks agree" in seen["one"][1][1].out
    assert "envs/cuda13.pip.lock.txt" in seen["two"][0][1].out + seen["two"][0][1].err


def test_build_reads_the_registry_from_the_configuration_and_prints_pull_cache_and_push():
    """Issue 35: --registry is configurable as the other build options are; the dry run shows
    the pull of the content key's image, the build with the registry's cache, the pushes."""
    done = invoke("build", "--target", "cuda13", "--dry-run",
                  env={"INVOKE_TORCHENV_REGISTRY": "localhost:5000/ns"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.search(r" pull localhost:5000/ns/cuda13:key-[0-9a-f]{16} ", lines[0]), lines[0]
    build = next(line for line in lines if " build --progress=plain " in line)
    assert (
        "--build-arg BUILDKIT_INLINE_CACHE=1 --cache-from localhost:5000/ns/cuda13:cache-uv "
        in build
    )
    assert any(line.endswith("push localhost:5000/ns/cuda13:cache-uv") for line in lines)
    quiet = invoke("build", "--target", "cuda13", "--dry-run",
                   env={"INVOKE_TORCHENV_REGISTRY": "localhost:5000/ns",
                        "INVOKE_TORCHENV_NO_PUSH": "true"})  # fmt: skip
    assert quiet.returncode == 0 and " push " not in quiet.stdout
    assert quiet.stdout.splitlines()[0] == lines[0]  # the same key
    leaked = invoke("build", "--target", "cuda13", "--dry-run",
                    env={"INVOKE_TORCHENV_REGISTRY": "https://ci:s3cret@ghcr.io/org"})  # fmt: skip
    assert_one_line_error(leaked, "holds a user or password")
    assert "s3cret" not in leaked.stdout + leaked.stderr
