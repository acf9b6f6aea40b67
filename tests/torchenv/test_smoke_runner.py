from pathlib import Path

from torchenv import matrix
from torchenv import smoke as smokes


def req(name="cuda13", **kw):
    t = matrix.get(name)
    return smokes.SmokeRequest(target=t, image=t.image(), **kw)


def test_suite_gets_the_targets_expectations():
    args = smokes.smoke_args(req(require_gpu=True, reports=Path("r")))
    assert args[:3] == ["python", "-m", "torchsmoke"]
    joined = " ".join(args)
    assert "--expect-variant cu130 --expect-torch 2.11.0" in joined
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
    }
    line = smokes.describe(kwargs)
    assert line.startswith("docker run --rm --shm-size=2g --gpus=all")
    assert "device_requests" not in smokes.run_kwargs(req(), gpu=False)
