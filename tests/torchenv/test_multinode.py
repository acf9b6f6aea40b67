"""Multi-node DDP between containers (`invoke smoke --nodes`) and the Kubernetes manifest
(`invoke k8s`): the plans as data (fast), then for real on the engine: 2 nodes x 2 processes, a
node that never comes, a node that dies, Ctrl-C and SIGTERM, bad input; and the manifest's pods
run the way a kubelet would, every setting read from the manifest."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from torchenv import k8s, multinode
from torchenv.errors import UserError
from torchenv.matrix import ROOT, get

TARGET = get("cuda13")


def invoke(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False, **kw,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], done.stderr[-2000:]


def req(**kw) -> multinode.MultiNodeRequest:
    return multinode.MultiNodeRequest(target=TARGET, image=TARGET.image(), **{"nodes": 2, **kw})


# --- plans (pure) ------------------------------------------------------------------------------


def test_node_command_is_torchrun_with_c10d_rendezvous_hosted_by_index_0():
    argv = multinode.node_command(2, 3, "job-0.svc:29400", "run1", ["--quick"], join_timeout=7)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == (
        'is_host=false; [ "${JOB_COMPLETION_INDEX:?set by the Job controller}" = 0 ] && '
        "is_host=true; exec torchrun --nnodes=2 --nproc-per-node=3 --rdzv-backend=c10d "
        "--rdzv-endpoint=job-0.svc:29400 --rdzv-id=run1 --rdzv-conf=join_timeout=7,is_host=$is_host "
        "--max-restarts=0 --local-ranks-filter=0 -m torchsmoke --only env,expect,ddp --quick --json -"
    )


@pytest.mark.parametrize("index,expected", [("0", "true"), ("1", "false")])
def test_node_command_makes_only_index_0_the_host(index, expected):
    script = multinode.node_command(2, 1, "h:1", "r", [])[2].replace("exec torchrun", "echo")
    done = subprocess.run(
        ["/bin/sh", "-c", script], env={"JOB_COMPLETION_INDEX": index}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert f"is_host={expected} " in done.stdout


def test_plan_names_nodes_like_an_indexed_job_and_labels_everything():
    p = multinode.plan(req(nproc=2, rdzv_port=29411), run_id="torchenv-mn-test")
    assert [n.hostname for n in p.nodes] == ["torchsmoke-cuda13-0", "torchsmoke-cuda13-1"]
    assert p.nodes[1].aliases == ("torchsmoke-cuda13-1.torchsmoke-cuda13",)
    assert [n.environment["JOB_COMPLETION_INDEX"] for n in p.nodes] == ["0", "1"]
    env = p.nodes[0].environment
    assert env["TORCHSMOKE_EXPECT_WORLD_SIZE"] == "4" and env["TORCHSMOKE_EXPECT_NODES"] == "2"
    assert env["HOME"] == "/tmp" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert "--rdzv-endpoint=torchsmoke-cuda13-0.torchsmoke-cuda13:29411" in p.nodes[1].command[2]
    assert p.labels == {"io.torchenv.managed": "true", "io.torchenv.multinode": "torchenv-mn-test"}
    kwargs = multinode.create_kwargs(p, p.nodes[0])
    assert kwargs["labels"]["io.torchenv.multinode"] == "torchenv-mn-test"
    assert kwargs["read_only"] and kwargs["cap_drop"] == ["ALL"] and kwargs["network"] == p.network
    assert kwargs["ports"] == {"29411/tcp": ("127.0.0.1", 29411)}
    assert "ports" not in multinode.create_kwargs(p, p.nodes[1])
    lines = multinode.describe(p)
    assert lines[0].startswith("docker network create --label=io.torchenv.managed=true")
    assert lines[-1] == "docker network rm torchenv-mn-test"


def test_gpus_are_split_between_the_nodes():
    p = multinode.plan(req(nproc=2, gpus_per_node=2))
    assert [n.gpu_ids for n in p.nodes] == [("0", "1"), ("2", "3")]
    request = multinode.create_kwargs(p, p.nodes[1])["device_requests"][0]
    assert request["DeviceIDs"] == ["2", "3"]


@pytest.mark.parametrize(
    "nodes,nproc,port,flag",
    [("0", "1", "29400", "--nodes '0'"), ("two", "1", "29400", "--nodes 'two'"),
     ("2", "0", "29400", "--nproc-per-node '0'"), ("2", "1", "80", "--rdzv-port '80'")],
)  # fmt: skip
def test_bad_numbers_are_one_line(nodes, nproc, port, flag):
    with pytest.raises(UserError, match=f"^{flag} is not a whole number"):
        multinode.validate(nodes, nproc, port)


def test_capacity_is_checked_against_the_engine():
    assert multinode.capacity_problem(2, 2, ncpu=2, mem_bytes=24 << 30) is None
    assert "need about 200 GiB of memory and this engine has 24 GiB" in (
        multinode.capacity_problem(100, 2, ncpu=2, mem_bytes=24 << 30)
    )


def test_exits_are_explained_in_one_line():
    assert "a node never came" in multinode.explain_exit(
        0, 1, ["torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError"], 60
    )
    assert multinode.explain_exit(1, 137, [], 60) == (
        "node 1 died (exit 137, killed) before the run finished"
    )
    assert multinode.explain_exit(0, 1, ["FAIL  ddp   3.0s  bad"], 60) == (
        "node 0: the suite failed: FAIL ddp 3.0s bad"
    )


def test_nodes_0_is_one_line_without_an_engine():
    one_line_error(invoke("smoke", "--target", "cuda13", "--nodes", "0", timeout=60), "--nodes")


# --- the Kubernetes manifest (pure) ------------------------------------------------------------


def manifest(**kw) -> list[dict]:
    return k8s.load(k8s.dump(k8s.manifest(TARGET, "r.example/t/cuda13@sha256:" + "a" * 64, **kw)))


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
    p = k8s.kubelet_plan(docs, "run")
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
    docs = k8s.load(out.read_text())
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["image"] == ref
    assert k8s.validate(docs) == []


# --- for real, on the engine -------------------------------------------------------------------


def leftovers(run_label: str = multinode.MULTINODE_LABEL) -> list[str]:
    import docker

    client = docker.from_env()
    found = [c.name for c in client.containers.list(all=True, filters={"label": run_label})]
    return found + [n.name for n in client.networks.list(filters={"label": run_label})]


@pytest.fixture
def clean_engine(docker_engine):
    assert leftovers() == [], "multi-node containers or networks from an earlier run"
    yield
    assert leftovers() == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.engine
@pytest.mark.slow
def test_two_nodes_of_two_processes_train_as_one_job(cuda13_image, clean_engine, tmp_path):
    done = invoke(
        "smoke", "--target", "cuda13", "--nodes", "2", "--nproc-per-node", "2",
        "--rdzv-port", str(free_port()), "--reports", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    assert "torchenv: 2 nodes x 2 processes passed in" in done.stdout
    report = json.loads((tmp_path / "smoke-cuda13-multinode.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["status"] for c in checks.values()] == ["pass", "pass", "pass"]
    ddp = checks["ddp"]["details"]
    assert ddp["launcher"] == "torchrun" and ddp["world_size"] == 4 and ddp["nodes"] == 2
    assert ddp["hosts"] == ["torchsmoke-cuda13-0", "torchsmoke-cuda13-1"]
    assert ddp["all_gather_max_diff"] == 0


def run_plan(p: multinode.Plan, join_timeout: int = multinode.JOIN_TIMEOUT_S):
    import docker

    lines: list[str] = []
    start = time.monotonic()
    outcome = multinode.execute(p, docker.from_env(), lines.append, join_timeout)
    return outcome, time.monotonic() - start, lines


@pytest.mark.engine
@pytest.mark.slow
def test_a_node_that_never_comes_ends_the_run_in_bounded_time(cuda13_image, clean_engine):
    p = multinode.plan(req(join_timeout=15, rdzv_port=free_port()))
    absent = multinode.Node(**{**p.nodes[1].__dict__, "command": ("sleep", "600")})
    outcome, wall, _ = run_plan(multinode.Plan(**{**p.__dict__, "nodes": (p.nodes[0], absent)}), 15)
    assert not outcome.ok
    assert outcome.message.startswith("node 0 gave up waiting for the other nodes")
    assert "a node never came" in outcome.message and wall < 120


@pytest.mark.engine
@pytest.mark.slow
def test_a_node_that_dies_ends_the_run_at_once(cuda13_image, clean_engine):
    import docker

    p = multinode.plan(req(rdzv_port=free_port()))
    client = docker.from_env()

    def kill_node_1() -> None:  # a few seconds into its run: the node's machine goes away
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = client.containers.list(filters={"name": p.nodes[1].name})
            if found:
                time.sleep(5)
                found[0].kill()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_node_1, daemon=True)
    killer.start()
    outcome, wall, _ = run_plan(p)
    killer.join(10)
    assert not outcome.ok
    assert outcome.message == "node 1 died (exit 137, killed) before the run finished"
    assert wall < 45  # not the rendezvous timeout, not the run's deadline


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_run_leaves_no_container_and_no_network(cuda13_image, clean_engine, signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "smoke", "--target", "cuda13", "--nodes", "2",
         "--rdzv-port", str(free_port()), "--reports", ""],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(leftovers()) < 3 and time.monotonic() < deadline:  # 2 containers + the network
        time.sleep(0.2)
    assert len(leftovers()) == 3, "the run never started its nodes"
    time.sleep(2)  # let them run
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err


@pytest.mark.engine
def test_an_image_that_is_not_built_is_one_line(clean_engine):
    done = invoke("smoke", "--target", "cuda13", "--nodes", "2", "--image", "torchenv/nope:0")
    one_line_error(done, "image torchenv/nope:0 is not built yet: run `invoke build")


@pytest.mark.engine
def test_a_node_count_the_engine_cannot_start_is_one_line(cuda13_image, clean_engine):
    done = invoke("smoke", "--target", "cuda13", "--nodes", "200", "--nproc-per-node", "8")
    one_line_error(done, "need about 1600 GiB of memory and this engine has")


@pytest.mark.engine
def test_a_rendezvous_port_in_use_is_one_line(cuda13_image, clean_engine):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = invoke("smoke", "--target", "cuda13", "--nodes", "2", "--rdzv-port", str(port))
    one_line_error(done, f"rendezvous port {port} is in use on this host")


@pytest.mark.engine
@pytest.mark.slow
def test_the_manifest_runs_as_a_kubelet_would_run_it(cuda13_image, clean_engine, tmp_path):
    out = tmp_path / "job.yaml"
    done = invoke("k8s", "--target", "cuda13", "--nodes", "2", "--image", cuda13_image,
                  "--output", str(out), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = k8s.load(out.read_text())
    assert k8s.validate(docs) == []
    p = k8s.kubelet_plan(docs, multinode.new_run_id(), "cuda13")
    assert p.nodes[0].user == "12345:0" and p.nodes[0].read_only
    outcome, _, lines = run_plan(p)
    assert outcome.ok, (outcome.message, lines[-40:])
    ddp = {c["name"]: c for c in outcome.report["checks"]}["ddp"]
    assert ddp["status"] == "pass" and ddp["details"]["world_size"] == 2
    assert ddp["details"]["hosts"] == ["torchsmoke-cuda13-0", "torchsmoke-cuda13-1"]


def test_the_first_node_to_fail_is_named():
    early, late = "2026-11-23T19:50:53.1Z", "2026-11-23T19:50:53.12Z"
    assert multinode.finished_key(early) < multinode.finished_key(late)
    assert multinode.finished_key("2026-11-23T19:50:53Z") < multinode.finished_key(early)


def test_cleanup_goes_on_past_errors_and_says_one_line_each(monkeypatch):
    """Issue 20, Low list: an engine error (or a lost connection) on one node never leaves the
    others and the network behind."""
    import requests

    monkeypatch.setattr(multinode.time, "sleep", lambda s: None)
    removed = []

    class Item:
        def __init__(self, name, error=None):
            self.name, self.error = name, error

        def remove(self, **_kw):
            if self.error is not None:
                raise self.error
            removed.append(self.name)

    lost = Item("node-0", requests.exceptions.ConnectionError("Connection aborted.\nmore"))
    items = [lost, Item("node-1")]
    network = Item("net")
    said = []
    multinode._remove(items, network, say=said.append)
    assert removed == ["node-1", "net"]
    assert said == ["torchenv: could not remove node-0 (Connection aborted.): run `invoke clean`"]


def test_a_lost_engine_during_the_run_is_one_line():
    import requests

    class Networks:
        def create(self, *_a, **_kw):
            raise requests.exceptions.ConnectionError("Connection refused\ntraceback-ish")

    class Client:
        networks = Networks()

    p = multinode.plan(multinode.MultiNodeRequest(target=TARGET, image="x:1", nodes=2, nproc=1))
    with pytest.raises(UserError) as exc:
        multinode.execute(p, Client())  # type: ignore[arg-type]
    assert str(exc.value) == "lost the Docker engine during the run: Connection refused"


def test_a_network_policy_admits_only_the_jobs_pods_and_the_header_says_how_to_remove_the_rest():
    """Issue 20, Low list: the rendezvous port is open to the job's own pods only; the Service
    (which no Job can own before it exists) and the policy are removed by the command the
    header gives."""
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
