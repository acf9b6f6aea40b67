"""Multi-node plans as data (`invoke smoke --nodes`): the node command, names, labels, GPUs,
bad input and capacity, all without an engine."""

from __future__ import annotations

import subprocess

import pytest
from tests.support.nodes import (
    invoke,
    one_line_error,
    req,
)  # fmt: skip

from torchenv.errors import UserError
from torchenv.run import multinode


def test_node_command_is_torchrun_with_c10d_rendezvous_hosted_by_index_0():
    argv = multinode.node_command(2, 3, "job-0.svc:29400", "run1", quick=True, join_timeout=7)
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
    assert p.labels == {
        "io.torchenv.managed": "true",
        "io.torchenv.multinode": "torchenv-mn-test",
        "io.torchenv.project": "torchenv",
    }
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


def test_nodes_0_is_one_line_without_an_engine():
    one_line_error(invoke("smoke", "--target", "cuda13", "--nodes", "0", timeout=60), "--nodes")
