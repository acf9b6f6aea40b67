"""invoke clean: what torchenv made is found by its labels, planned, shown (--dry-run), removed."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.engine import labels
from torchenv.image import clean

DOCKER = "/usr/bin/docker"
OURS = "sha256:" + "1" * 64
DERIVED = "sha256:" + "2" * 64
DANGLING = "sha256:" + "3" * 64
OLD = "sha256:" + "4" * 64


def inspect_line(iid: str, tags: list[str], image_labels: dict[str, str]) -> str:
    return f"{iid}\t{json.dumps(tags)}\t{json.dumps(image_labels)}"


def engine(images: list[str], containers: str = "", networks: str = "") -> FakeRunner:
    return FakeRunner(
        {
            (DOCKER, "container", "ls"): reply(containers),
            (DOCKER, "image", "ls"): reply("\n".join(i.split("\t")[0] for i in images)),
            (DOCKER, "image", "inspect"): reply("\n".join(images)),
            (DOCKER, "network", "ls"): reply(networks),
            (DOCKER, "container", "rm"): reply(),
            (DOCKER, "image", "rm"): reply(),
            (DOCKER, "network", "rm"): reply("", 1, "Error: network has active endpoints"),
        }
    )


IMAGES = [
    inspect_line(OURS, ["torchenv/cuda13:2.14.1-cu130"], {**labels.of_image("torchenv/cuda13:2.14.1-cu130"), labels.TARGET: "cuda13"}),
    inspect_line(DERIVED, ["me/project:1"], {**labels.of_image("torchenv/cuda13:2.14.1-cu130"), labels.TARGET: "cuda13"}),
    inspect_line(DANGLING, [], {labels.TARGET: "cuda13"}),
    inspect_line(OLD, ["torchenv/cpu:2.11.0-cpu", "mine:latest"], {labels.TARGET: "cpu"}),
]  # fmt: skip
CONTAINERS = "c1\ttorchenv-verify-1\texited\nc2\tdreamy_shell\trunning\n"


def test_find_asks_by_label_and_reads_every_kind():
    runner = engine(IMAGES, CONTAINERS, "n1\ttorchenv-nodes\n")
    found = clean.find(DOCKER, "cuda13", runner)
    ls = next(c.args for c in runner.calls if c.args[1:3] == ("container", "ls"))
    assert ls[ls.index("--filter") :][:4] == (
        "--filter", "label=io.torchenv.managed=true", "--filter", "label=io.torchenv.target=cuda13",
    )  # fmt: skip
    images = next(c.args for c in runner.calls if c.args[1:3] == ("image", "ls"))
    assert "label=io.torchenv.target" in images
    assert [(f.kind, f.id, f.names) for f in found] == [
        ("container", "c1", ("torchenv-verify-1",)),
        ("container", "c2", ("dreamy_shell",)),
        ("image", OURS, ("torchenv/cuda13:2.14.1-cu130",)),
        ("image", DERIVED, ("me/project:1",)),
        ("image", DANGLING, ()),
        ("image", OLD, ("torchenv/cpu:2.11.0-cpu", "mine:latest")),
        ("network", "n1", ("torchenv-nodes",)),
    ]


def test_plan_removes_torchenvs_own_and_keeps_derived_images_and_running_containers():
    found = clean.find(DOCKER, None, engine(IMAGES, CONTAINERS, "n1\ttorchenv-nodes\n"))
    steps = clean.plan(found, known_images=["torchenv/cpu:2.11.0-cpu"])
    assert clean.describe(steps, dry_run=True) == [
        "keep container dreamy_shell (running): it is running: stop it first",
        "would remove container torchenv-verify-1 (exited)",
        "would remove image 333333333333 (untagged)",
        "keep image me/project:1 (222222222222): not tagged by a torchenv build (an image built FROM one, or retagged)",
        "would remove image torchenv/cpu:2.11.0-cpu (444444444444)",
        "keep image mine:latest (444444444444): not tagged by a torchenv build (an image built FROM one, or retagged)",
        "would remove image torchenv/cuda13:2.14.1-cu130 (111111111111)",
        "would remove network torchenv-nodes",
    ]  # fmt: skip


def test_run_removes_in_order_and_reports_what_failed():
    runner = engine(IMAGES, CONTAINERS, "n1\ttorchenv-nodes\n")
    steps = clean.plan(clean.find(DOCKER, None, runner), known_images=[])
    printed: list[str] = []
    failed = clean.run(steps, DOCKER, runner, out=printed.append)
    removed = [c.args for c in runner.calls if "rm" in c.args]
    assert removed == [
        (DOCKER, "container", "rm", "c1"),
        (DOCKER, "image", "rm", DANGLING),
        (DOCKER, "image", "rm", "torchenv/cuda13:2.14.1-cu130"),
        (DOCKER, "network", "rm", "n1"),
    ]
    assert printed == [" ".join(args) for args in removed]
    assert failed == [
        "could not remove network torchenv-nodes: Error: network has active endpoints"
    ]


def test_nothing_to_clean_says_so():
    assert clean.describe(clean.plan([]), dry_run=False) == ["nothing of torchenv's on this engine"]


def test_an_engine_that_cannot_list_is_one_line():
    runner = FakeRunner(
        {(DOCKER, "container", "ls"): reply("", 1, "Cannot connect to the Docker daemon")}
    )
    with pytest.raises(
        clean.UserError, match=r"^/usr/bin/docker container ls failed: Cannot connect"
    ):
        clean.find(DOCKER, None, runner)


@pytest.mark.engine
def test_clean_finds_and_removes_what_was_labelled_and_nothing_else(docker_engine):
    """A stopped container, a network and an image labelled as torchenv's (under a target name of
    this test's own, so nothing else on the engine is touched), plus an image built FROM that
    one: a dry run lists them and removes nothing; the real run removes all but the derived image."""
    client = docker_engine.client
    target = f"cleantest-{uuid.uuid4().hex[:8]}"
    tag, derived = f"torchenv-test/{target}:0", f"torchenv-test/{target}-derived:0"
    own = labels.cli_args({**labels.of_image(tag), labels.TARGET: target})

    def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [client, *args], input=stdin, capture_output=True, text=True, check=False
        )

    try:
        assert (
            docker(
                "build", "-q", *own, "-t", tag, "-", stdin="FROM scratch\nLABEL x=1\n"
            ).returncode
            == 0
        )
        assert (
            docker("build", "-q", "-t", derived, "-", stdin=f"FROM {tag}\nLABEL y=2\n").returncode
            == 0
        )
        run_labels = labels.cli_args(labels.of("verify", target))
        assert docker("network", "create", *run_labels, f"{target}-net").returncode == 0
        assert (
            docker("container", "create", *run_labels, "--name", f"{target}-c", tag, "x").returncode
            == 0
        )
        steps = clean.plan(clean.find(client, target), known_images=[])
        assert clean.describe(steps, dry_run=True) == [
            f"would remove container {target}-c (created)",
            f"keep image {derived} ({docker('image', 'inspect', '-f', '{{.Id}}', derived).stdout.strip()[7:19]}): not tagged by a torchenv build (an image built FROM one, or retagged)",
            f"would remove image {tag} ({docker('image', 'inspect', '-f', '{{.Id}}', tag).stdout.strip()[7:19]})",
            f"would remove network {target}-net",
        ]  # fmt: skip
        assert clean.run(steps, client, out=lambda line: None) == []
        assert docker("image", "inspect", tag).returncode != 0
        assert docker("image", "inspect", derived).returncode == 0
        assert docker("network", "inspect", f"{target}-net").returncode != 0
        assert docker("container", "inspect", f"{target}-c").returncode != 0
    finally:
        docker("container", "rm", "-f", f"{target}-c")
        docker("network", "rm", f"{target}-net")
        docker("image", "rm", "-f", derived, tag)


def test_clean_acts_on_this_projects_images_and_containers_alone():
    """Issue 31, case 8: another project's image and container (io.torchenv.project) are left;
    an image of a kit from before the label is this project's only under its matrix names."""
    mine, theirs = "myproj/cuda13:2.14.1-cu130", "other/cuda13:2.14.1-cu130"
    images = [
        inspect_line(OURS, [mine], {**labels.of_image(mine, "myproj"), labels.TARGET: "cuda13"}),
        inspect_line(DERIVED, [theirs], {**labels.of_image(theirs, "other"), labels.TARGET: "cuda13"}),
        inspect_line(OLD, ["old/cpu:1"], {**labels.of_image("old/cpu:1"), labels.TARGET: "cpu"}),
    ]  # fmt: skip
    containers = "c1\tmine\texited\tmyproj\nc2\ttheirs\texited\tother\n"
    runner = engine(images, containers, "n1\tmine-net\tmyproj\nn2\ttheirs-net\tother\n")
    found = clean.find(DOCKER, None, runner, projects=frozenset({"myproj"}))
    assert [(f.kind, f.id) for f in found if f.kind != "image"] == [
        ("container", "c1"), ("network", "n1"),
    ]  # fmt: skip
    steps = clean.plan(found, known_images=[mine], projects=frozenset({"myproj"}))
    assert clean.describe(steps, dry_run=True) == [
        "would remove container mine (exited)",
        f"would remove image {mine} ({OURS[7:19]})",
        f"keep image old/cpu:1 ({OLD[7:19]}): not tagged by a torchenv build (an image built FROM one, or retagged)",
        f"keep image {theirs} ({DERIVED[7:19]}): another project's (io.torchenv.project=other)",
        "would remove network mine-net",
    ]  # fmt: skip
