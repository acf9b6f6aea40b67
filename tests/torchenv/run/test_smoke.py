import re
from pathlib import Path

import pytest

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.run import smoke as smokes


def req(name="cuda13", **kw):
    t = matrix.get(name)
    return smokes.SmokeRequest(target=t, image=t.image(), **kw)


def test_suite_gets_the_targets_expectations():
    args = smokes.smoke_args(req(require_gpu=True, reports=Path("r")))
    assert args[:3] == ["python", "-m", "torchsmoke"]
    joined = " ".join(args)
    assert "--expect-variant cu130 --expect-torch 2.14.1" in joined
    assert "--expect-python 3.11" in joined and "--require-gpu" in joined
    assert "--json /tmp/torchsmoke-report/smoke.json" in joined


def test_gpus_requested_for_cuda_targets_when_the_engine_can():
    assert smokes.wants_gpu(req(), engine_has_gpu_runtime=True)
    assert not smokes.wants_gpu(req(), engine_has_gpu_runtime=False)
    assert not smokes.wants_gpu(req(gpu="no"), engine_has_gpu_runtime=True)
    assert not smokes.wants_gpu(req("cpu"), engine_has_gpu_runtime=True)
    assert smokes.wants_gpu(req(require_gpu=True), engine_has_gpu_runtime=False)


def test_container_has_shared_memory_and_gpu_request():
    kwargs = smokes.run_kwargs(req(), gpu=True)
    assert kwargs["shm_size"] == "2g"
    request = kwargs["device_requests"][0]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert kwargs["labels"] == {
        smokes.SMOKE_LABEL: "cuda13",
        "io.torchenv.managed": "true",
        "io.torchenv.target": "cuda13",
        "io.torchenv.project": "torchenv",
    }
    line = smokes.describe(kwargs)
    assert line.startswith("docker run --rm --shm-size=2g --gpus=all")
    assert "device_requests" not in smokes.run_kwargs(req(), gpu=False)


def test_timeout_defaults_to_the_targets_and_is_checked():
    assert req().timeout == matrix.get("cuda13").smoke_timeout_s == 1200
    assert req("cpu").timeout == 900
    assert req(timeout_s=30.0).timeout == 30.0
    assert smokes.parse_timeout(None) is None and smokes.parse_timeout("") is None
    assert smokes.parse_timeout("90") == 90.0
    for bad in ("0", "-5", "abc", "inf", "nan"):
        with pytest.raises(UserError, match=rf"^--timeout '{bad}' is not a positive number"):
            smokes.parse_timeout(bad)


@pytest.mark.parametrize(
    ("partial", "saved", "where"),
    [
        ({"running": "dataloader", "checks": [{}, {}]}, Path("r/smoke-cuda13.json"),
         "while check 'dataloader' was running: the container was stopped and removed; partial "
         "report (2 checks done): r/smoke-cuda13.json"),
        (None, None, "before the suite's first check (it wrote no report): the container was "
         "stopped and removed"),
        ({"running": None, "checks": [{}]}, None, "after its last check: the container was "
         "stopped and removed"),
    ],
    ids=["names the running check", "no report yet", "all checks done"],
)  # fmt: skip
def test_the_timeout_line_names_where_the_suite_was(partial, saved, where):
    line = smokes._timeout_line(req(timeout_s=30.0), partial, saved)
    assert line == (
        f"smoke suite in torchenv/cuda13:2.14.1-cu130 timed out after 30 s {where}; "
        "raise --timeout if it only needs longer"
    )


# --- issue 20, Low list: least privilege, one-line refusals before the run, atomic reports -----


def test_the_smoke_container_drops_every_capability_and_gains_no_privilege():
    kwargs = smokes.run_kwargs(req(), gpu=False)
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    line = smokes.describe(kwargs)
    assert "--cap-drop=ALL --security-opt=no-new-privileges" in line


def test_unbalanced_args_and_a_reports_file_are_one_line_errors(tmp_path):
    assert smokes.parse_args("--only 'mlp,cnn'") == ("--only", "mlp,cnn")
    with pytest.raises(UserError, match="cannot be split") as exc:
        smokes.parse_args("'x")
    assert "\n" not in str(exc.value)
    afile = tmp_path / "reports"
    afile.write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        smokes.check_reports(afile)
    smokes.check_reports(tmp_path / "new" / "folder")  # can be made
    smokes.check_reports(None)


def test_reports_are_written_in_one_rename(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(smokes, "write_atomic", lambda path, data: written.append((path, data)))
    monkeypatch.setattr(smokes, "read_file", lambda container, path: b"{}")
    smokes._save_reports(req(reports=tmp_path), object(), ("json",))  # type: ignore[arg-type]
    assert written == [(tmp_path / "smoke-cuda13.json", b"{}")]


@pytest.mark.engine
def test_the_suite_passes_without_capabilities_or_new_privileges(docker_engine, request):
    """The options run_kwargs gives (issue 20): DDP on loopback and the dataloader's shared
    memory need no capability. Uses the cuda13 image when it is there (CI builds it)."""
    import os

    from images import docker

    tag = matrix.get("cuda13").image()
    if docker(docker_engine, "image", "inspect", tag).returncode != 0:
        if not os.environ.get("CI"):
            pytest.skip(f"{tag} is not built (tests/scenarios/test_image.py builds it)")
        tag = request.getfixturevalue("image")
    kwargs = smokes.run_kwargs(req(), gpu=False)
    done = docker(
        docker_engine, "run", "--rm", "--shm-size", kwargs["shm_size"],
        *(f"--cap-drop={c}" for c in kwargs["cap_drop"]),
        *(f"--security-opt={o}" for o in kwargs["security_opt"]),
        "--label", "io.torchenv.managed=true", tag, "python", "-m", "torchsmoke", "--quick",
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    passed = set(re.findall(r"(?m)^PASS +(\w+)", done.stdout))
    assert {"ddp", "dataloader"} <= passed, done.stdout[-3000:]
