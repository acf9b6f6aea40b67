"""The Kubernetes manifest (`invoke k8s`): its shape, Pod Security, strict validation, the task;
and its pods run the way a kubelet would, every setting read from the manifest."""

from __future__ import annotations

import pytest
from tests.support import kubelet
from tests.support.nodes import (
    invoke,
    manifest,
    one_line_error,
    run_plan,
)  # fmt: skip

from torchenv import matrix
from torchenv.run import k8s, multinode


def test_manifest_is_an_indexed_job_with_a_headless_service():
    service, job, _policy = manifest(nodes=3)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": "torchsmoke-cuda13"}
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    (container,) = pod["containers"]
    assert "--rdzv-endpoint=torchsmoke-cuda13-0.torchsmoke-cuda13:29400" in container["command"][2]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_manifest_meets_pod_security_restricted_with_an_arbitrary_uid():
    pod = manifest(nodes=2)[1]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] not in (0, 1000)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_gpus_become_limits_and_one_rank_per_gpu():
    container = manifest(nodes=2, gpus_per_node=4)[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert "--nproc-per-node=4" in container["command"][2]
    assert "--require-gpu" in container["command"][2]


@pytest.mark.parametrize("version", ["1.25.0", k8s.KUBERNETES_VERSION])
def test_manifest_validates_strictly(version):
    assert k8s.validate(manifest(nodes=2, gpus_per_node=1), version) == []


def test_strict_validation_catches_an_unknown_field_and_a_wrong_type():
    service, job, policy = manifest(nodes=2)
    job["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    job["spec"]["completions"] = "two"
    problems = k8s.validate([service, job, policy])
    assert len(problems) == 1 and problems[0].startswith("Job/torchsmoke-cuda13: ")


def test_kubelet_plan_reads_everything_from_the_manifest():
    docs = manifest(nodes=2)
    pod = docs[1]["spec"]["template"]["spec"]
    p = kubelet.kubelet_plan(docs, "run")
    assert p.image == pod["containers"][0]["image"]
    for index, node in enumerate(p.nodes):
        assert node.hostname == f"torchsmoke-cuda13-{index}"
        assert node.aliases == (f"torchsmoke-cuda13-{index}.torchsmoke-cuda13",)
        assert node.command == tuple(pod["containers"][0]["command"])
        assert node.environment["JOB_COMPLETION_INDEX"] == str(index)
        assert node.user == f"{pod['securityContext']['runAsUser']}:0"
        assert node.read_only and node.cap_drop == ("ALL",) and node.no_new_privileges
        assert node.tmpfs == {"/dev/shm": "rw,mode=1777,size=2g", "/tmp": "rw,mode=1777,size=4g"}


def test_k8s_task_bad_input_is_one_line():
    one_line_error(invoke("k8s", "--target", "cuda13", "--nodes", "0", timeout=60), "--nodes")
    done = invoke("k8s", "--target", "cuda13", "--image", "r/x@sha256:123", timeout=60)
    one_line_error(done, "is not an image reference by digest")


def test_k8s_task_writes_a_valid_manifest(tmp_path):
    ref = "localhost:5000/t/cuda13@sha256:" + "b" * 64
    out = tmp_path / "job.yaml"
    done = invoke("k8s", "--target", "cuda13", "--image", ref, "--output", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    docs = kubelet.load(out.read_text())
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["image"] == ref
    assert k8s.validate(docs) == []


@pytest.mark.engine
@pytest.mark.slow
def test_the_manifest_runs_as_a_kubelet_would_run_it(cuda13_image, clean_engine, tmp_path):
    out = tmp_path / "job.yaml"
    done = invoke("k8s", "--target", "cuda13", "--nodes", "2", "--image", cuda13_image,
                  "--output", str(out), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = kubelet.load(out.read_text())
    assert k8s.validate(docs) == []
    p = kubelet.kubelet_plan(docs, multinode.new_run_id(), "cuda13")
    assert p.nodes[0].user == "12345:0" and p.nodes[0].read_only
    outcome, _, lines = run_plan(p)
    assert outcome.ok, (outcome.message, lines[-40:])
    ddp = {c["name"]: c for c in outcome.report["checks"]}["ddp"]
    assert ddp["status"] == "pass" and ddp["details"]["world_size"] == 2
    assert ddp["details"]["hosts"] == ["torchsmoke-cuda13-0", "torchsmoke-cuda13-1"]


def test_a_network_policy_admits_only_the_jobs_pods_and_the_header_says_how_to_remove_the_rest():
    """Issue 20, Low list: the rendezvous port is open to the job's own pods only; the Service
    (which no Job can own before it exists) and the policy are removed by the command the
    header gives."""
    from tests.support.nodes import TARGET

    service, job, policy = manifest(nodes=2)
    name = job["metadata"]["name"]
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"job-name": name}}
    assert policy["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"job-name": name}}}]}
    ]
    assert k8s.validate([service, job, policy]) == []
    text = k8s.checked_manifest(TARGET, f"r.example/x@sha256:{'a' * 64}", "by digest", 2, 0)
    assert f"kubectl delete service,networkpolicy -l app.kubernetes.io/instance={name}" in text


def test_without_kubernetes_validate_the_manifest_is_written_and_says_so(monkeypatch):
    """Issue 31, case 4: the kit from its wheel has no kubernetes-validate (the `k8s` extra):
    `invoke k8s` still writes the manifest, marked as not validated, not a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)  # import raises ImportError
    target = matrix.get("cpu")
    text = k8s.checked_manifest(target, f"r.example/o/cpu@sha256:{'a' * 64}", "given", 2, 0)
    assert "NOT validated (pip install 'torchenv[k8s]'" in text.splitlines()[0]
    assert "kind: Job" in text
