"""Multi-node runs for real on the engine: 2 nodes x 2 processes, a node that never comes, a node
that dies, Ctrl-C and SIGTERM, bad input; and how exits and failures are told."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from tests.support import REPO as ROOT
from tests.support.nodes import (
    free_port,
    invoke,
    leftovers,
    one_line_error,
    req,
    run_plan,
)  # fmt: skip

from torchenv.run import multinode, multinode_run


def test_exits_are_explained_in_one_line():
    assert "a node never came" in multinode_run.explain_exit(
        0, 1, ["torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError"], 60
    )
    assert multinode_run.explain_exit(1, 137, [], 60) == (
        "node 1 died (exit 137, killed) before the run finished"
    )
    assert multinode_run.explain_exit(0, 1, ["FAIL  ddp   3.0s  bad"], 60) == (
        "node 0: the suite failed: FAIL ddp 3.0s bad"
    )


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


def test_the_first_node_to_fail_is_named():
    early, late = "2026-11-23T19:50:53.1Z", "2026-11-23T19:50:53.12Z"
    assert multinode_run.finished_key(early) < multinode_run.finished_key(late)
    assert multinode_run.finished_key("2026-11-23T19:50:53Z") < multinode_run.finished_key(early)


def test_a_lost_engine_during_the_run_is_one_line():
    import requests
    from tests.support.nodes import TARGET

    from torchenv.errors import UserError

    class Networks:
        def create(self, *_a, **_kw):
            raise requests.exceptions.ConnectionError("Connection refused\ntraceback-ish")

    class Client:
        networks = Networks()

    p = multinode.plan(multinode.MultiNodeRequest(target=TARGET, image="x:1", nodes=2, nproc=1))
    with pytest.raises(UserError) as exc:
        multinode_run.execute(p, Client())  # type: ignore[arg-type]
    assert str(exc.value) == "cannot create the run's network: Connection refused"
