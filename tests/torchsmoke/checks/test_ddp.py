"""The ddp check: two local processes that hang are killed, a failing rank fails the check; and
under torchrun every rank joins one process group (here: 2 local ranks through a real c10d
rendezvous), trains, and compares what all ranks gathered."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from torchsmoke.checks import ddp
from torchsmoke.core import CheckFailed, run_check

TORCHRUN = Path(sys.executable).parent / "torchrun"
SRC = Path(__file__).resolve().parents[3] / "src"


def test_torchrun_is_recognised_by_its_variables():
    env = {
        "RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "n0",
        "MASTER_PORT": "1",
    }
    assert ddp.launched_by_torchrun(env)
    assert not ddp.launched_by_torchrun({**env, "MASTER_ADDR": ""})
    assert not ddp.launched_by_torchrun({})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    if not TORCHRUN.exists():
        pytest.skip(f"no torchrun next to {sys.executable}")
    report = tmp_path / "report.json"
    cwd, scratch = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), scratch.mkdir()
    done = subprocess.run(
        [str(TORCHRUN), "--nnodes=1", "--nproc-per-node=2", "--rdzv-backend=c10d",
         f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--local-ranks-filter=0", "--max-restarts=0",
         "-m", "torchsmoke", "--only", "ddp", "--json", "-"],
        cwd=cwd, capture_output=True, text=True, timeout=240,
        # torchrun keeps its folders in TMPDIR: the test's own, removed with it
        env={**os.environ, "PYTHONPATH": str(SRC), "GLOO_SOCKET_IFNAME": "lo", "TMPDIR": str(scratch), **env},
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"schema"')]
    assert len(lines) == 1, (done.stdout[-3000:], done.stderr[-3000:])
    # `--json -`: the report on stdout only, no file (the multi-node containers' cwd is read-only)
    assert list(cwd.iterdir()) == []
    report.write_text(lines[0])
    (check,) = json.loads(lines[0])["checks"]
    return done, check


def test_every_rank_trains_in_one_group_and_ends_with_equal_parameters(tmp_path):
    done, check = torchrun(tmp_path, TORCHSMOKE_EXPECT_WORLD_SIZE="2", TORCHSMOKE_EXPECT_NODES="1")
    assert done.returncode == 0, (check, done.stderr[-3000:])
    details = check["details"]
    assert check["status"] == "pass"
    assert details["launcher"] == "torchrun" and details["world_size"] == 2
    assert details["steps"] == ddp.JOINED_STEPS and details["nodes"] == 1
    assert details["all_gather_max_diff"] == 0 and len(details["losses"]) == 2


def test_a_missing_rank_fails_with_the_expected_world_size(tmp_path):
    done, check = torchrun(tmp_path, TORCHSMOKE_EXPECT_WORLD_SIZE="4")
    assert done.returncode != 0
    assert check["status"] == "fail"
    assert check["reason"] == "2 ranks joined, 4 were expected: a node or process is missing"


def _sleeper(rank: int) -> None:
    time.sleep(60)


def test_ddp_processes_that_hang_are_killed_at_the_deadline():
    processes = mp.start_processes(_sleeper, nprocs=2, join=False, start_method="fork")
    start = time.monotonic()
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        ddp._join(processes, timeout_s=1.0)
    assert time.monotonic() - start < 10
    assert not any(p.is_alive() for p in processes.processes)


def test_a_failing_ddp_rank_fails_the_check_with_its_error(real_env, monkeypatch, context):
    def broken_step(rank: int, backend: str, seed: int) -> dict:
        raise RuntimeError(f"rank {rank} lost its peer")

    monkeypatch.setattr(ddp, "_step", broken_step)  # forked ranks inherit the patch
    result = run_check(ddp.ddp, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert result.reason.startswith("a DDP process failed:")
    assert "RuntimeError: rank" in result.reason and "lost its peer" in result.reason
