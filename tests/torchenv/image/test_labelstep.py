import json

import pytest

from torchenv.engine import Engine
from torchenv.engine.labels import CONTENT_KEY, CREATED_LABEL, MANIFEST_LABEL
from torchenv.image import labelstep

BUILTIN = Engine("/usr/bin/docker", "20.10.24", "20.10.24", "builtin")
OLD_ID, BUILT_ID = ("sha256:" + c * 64 for c in "ab")
FILE_SHA = "f" * 64
KEY = "1234" * 16


def facts(image_id: str, layers: list[str], created: str, labelled: bool) -> dict:
    """What `docker image inspect` says of an image, the parts the label step compares."""
    found = {"io.torchenv.target": "cuda13", CREATED_LABEL: created}
    if labelled:
        found |= {MANIFEST_LABEL: FILE_SHA, "io.torchenv.managed": "true"}
        found |= {"io.torchenv.tag": "torchenv/cuda13:2.14.1-cu130"}
        found |= {labelstep.ARCHS_LABEL: "sm_75 sm_90", CONTENT_KEY: KEY}
    config = {"User": "1000:1000", "Env": ["PATH=/opt/env/bin"], "Labels": found}
    return {"Id": image_id, "RootFS": {"Layers": layers}, "Config": config | {"Image": image_id}}


@pytest.mark.parametrize(
    ("change", "kept"),
    [
        (lambda f: None, True),
        (lambda f: f["Config"]["Labels"].update({CREATED_LABEL: "later"}), True),
        (lambda f: f["Config"]["Labels"].update({"org.opencontainers.image.revision": "b"}), False),
        (lambda f: f["Config"].update(User="0"), False),
        (lambda f: f["RootFS"]["Layers"].append("sha256:9"), False),
    ],
    ids=["identical", "only the build time", "another revision", "another user", "a new layer"],
)
def test_only_the_build_time_may_differ_for_the_earlier_image_to_be_kept(change, kept):
    previous = facts(OLD_ID, ["sha256:1"], "2026-11-22T10:00:00Z", labelled=True)
    built = facts(BUILT_ID, ["sha256:1"], "2026-11-22T10:00:00Z", labelled=False)
    change(built)
    assert labelstep.already_labelled(previous, built) == (FILE_SHA if kept else None)
    del previous["Config"]["Labels"][MANIFEST_LABEL]  # never labelled: label it now
    assert labelstep.already_labelled(previous, built) is None
    assert labelstep.already_labelled(None, built) is None


def test_an_earlier_image_of_another_content_key_is_labelled_again():
    previous = facts(OLD_ID, ["sha256:1"], "2026-11-22T10:00:00Z", labelled=True)
    built = facts(BUILT_ID, ["sha256:1"], "2026-11-23T10:00:00Z", labelled=False)
    assert labelstep.already_labelled(previous, built, KEY) == FILE_SHA
    assert labelstep.already_labelled(previous, built, "9" * 64) is None
    del previous["Config"]["Labels"][CONTENT_KEY]  # built without a registry
    assert labelstep.already_labelled(previous, built, KEY) is None
    assert labelstep.already_labelled(previous, built) == FILE_SHA  # no key asked: kept


def test_the_label_step_adds_the_content_key_when_there_is_one():
    argv, env = labelstep.label_command(BUILTIN, "p/cuda13:t", FILE_SHA, ["sm_90"], "p", KEY)
    assert f"{CONTENT_KEY}={KEY}" in argv and env == {"DOCKER_BUILDKIT": "0"}
    assert argv[argv.index(f"{CONTENT_KEY}={KEY}") - 1] == "--label"
    plain, _ = labelstep.label_command(BUILTIN, "p/cuda13:t", FILE_SHA, ["sm_90"], "p")
    assert not any(CONTENT_KEY in arg for arg in plain)
    assert plain[-3:] == ["--tag", "p/cuda13:t", "-"]


def test_image_labels_of_any_facts():
    assert labelstep.image_labels(None) == {}
    assert labelstep.image_labels({"Config": {"Labels": None}}) == {}
    assert labelstep.image_labels({"Config": {"Labels": {"a": "b"}}}) == {"a": "b"}


def test_archs_of_report_reads_only_architecture_names():
    def report(archs):
        return json.dumps({"env": {"torch": {"version": "2.14.1+cu130", "arch_list": archs}}})

    assert labelstep.archs_of_report(report(["sm_75", "compute_120"])) == ["sm_75", "compute_120"]
    assert labelstep.archs_of_report(report(None)) == []
    assert labelstep.archs_of_report(report(["sm_75 --label x=y"])) == []
    assert labelstep.archs_of_report("not json") == [] and labelstep.archs_of_report(None) == []
    assert labelstep.archs_of_report('{"env": {}}') == []
