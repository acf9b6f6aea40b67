"""`ddp`: DistributedDataParallel with two local processes, one training step.

The ranks start from different weights and see different data; after DDP's broadcast and one
all-reduced step they must hold bit-identical parameters. gloo on CPU, nccl when the run uses
CUDA and there are 2+ GPUs. Bounded by a deadline: on timeout the processes are killed.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set) the check does not
spawn: every rank of the job joins one process group (env://; gloo, or nccl when this rank has
its own GPU), trains JOINED_STEPS steps, and all ranks compare what they gathered: the world size
(and TORCHSMOKE_EXPECT_WORLD_SIZE / TORCHSMOKE_EXPECT_NODES when set), the hosts, and
bit-identical parameters on every rank.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import torch

from torchsmoke.core import CheckFailed, Context, Outcome, check, error_summary, passed, require

if TYPE_CHECKING:
    from torch.multiprocessing.spawn import ProcessContext

WORLD_SIZE = 2
TIMEOUT_S = 60  # the whole check; the process group's own timeout is half of it
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
EXPECT_WORLD_SIZE = "TORCHSMOKE_EXPECT_WORLD_SIZE"  # set by the launcher: nodes x processes
EXPECT_NODES = "TORCHSMOKE_EXPECT_NODES"  # set by the launcher: distinct hosts expected
JOINED_STEPS = 5


class _RankResult(TypedDict):
    rank: int
    loss: float
    initial: list[float]
    params: list[float]
    all_gather_max_diff: float


class RankResult(_RankResult, total=False):
    """What one rank trained and gathered (as JSON between processes)."""

    host: str  # under torchrun only


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def _step(
    rank: int, backend: str, seed: int, world_size: int = WORLD_SIZE, steps: int = 1,
    device_index: int | None = None,
) -> RankResult:  # fmt: skip
    """`steps` DDP training steps on this rank; what is needed to compare the ranks."""
    import torch.distributed as dist
    from torch import nn
    from torch.nn import functional as F
    from torch.nn.parallel import DistributedDataParallel

    if backend == "nccl":
        device_index = rank if device_index is None else device_index
        torch.cuda.set_device(device_index)
        device = torch.device("cuda", device_index)
    else:
        device = torch.device("cpu")
    torch.manual_seed(seed + rank)  # different initial weights: DDP must broadcast rank 0's
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
    initial = torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()
    ddp = DistributedDataParallel(model, device_ids=[device] if backend == "nccl" else None)
    gen = torch.Generator().manual_seed(seed + 100 + rank)  # different data per rank
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    losses: list[float] = []
    for _ in range(steps):
        x, y = torch.randn(8, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen)
        opt.zero_grad()
        loss = F.cross_entropy(ddp(x.to(device)), y.to(device))
        loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
        opt.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    return {
        "rank": rank,
        "loss": losses[-1],
        "initial": initial.tolist(),
        "params": flat.cpu().tolist(),
        "all_gather_max_diff": max((g - flat).abs().max().item() for g in gathered),
    }


def _worker(rank: int, backend: str, init_method: str, out_dir: str, seed: int) -> None:
    """One rank (module-level so that spawned processes can import it)."""
    import gc
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    if backend == "gloo" and sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # localhost only, whatever the hostname
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=TIMEOUT_S // 2),
    )
    try:
        result = _step(rank, backend, seed)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        # The DDP module is gone with _step's frame; collect it while the group is still
        # registered. A Reducer freed after destroy_process_group() holds the last reference
        # and destroys the group with the GIL held, deadlocking against gloo's worker thread.
        gc.collect()
        dist.destroy_process_group()


def _start_method(backend: str, device: torch.device) -> str:
    # fork is much faster (no re-import of torch) but is unsafe once CUDA is in use.
    if device.type == "cpu" and backend == "gloo" and sys.platform.startswith("linux"):
        return "fork"
    return "spawn"


def _join(processes: ProcessContext, timeout_s: float) -> None:
    """Wait for the ranks for at most timeout_s; kill them all if they are not done by then."""
    deadline = time.monotonic() + timeout_s
    try:
        while not processes.join(timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"DDP did not finish within {timeout_s:g} s (a rendezvous or collective "
                    "hung); the processes were killed"
                )
    finally:
        for proc in processes.processes:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True when torchrun (or any launcher that sets the env:// variables) started this rank."""
    environ = os.environ if environ is None else environ
    return all(environ.get(name) for name in TORCHRUN_VARS)


def _compare(ranks: list[RankResult], details: dict[str, object]) -> None:
    """Fail unless the ranks started apart and ended with bit-identical parameters."""
    details["losses"] = [r["loss"] for r in ranks]
    details["all_gather_max_diff"] = max(r["all_gather_max_diff"] for r in ranks)
    first = ranks[0]
    require(
        any(r["initial"] != first["initial"] for r in ranks[1:]),
        "the ranks started from identical weights: the test would prove nothing",
        **details,
    )
    require(
        all(r["params"] == first["params"] for r in ranks) and details["all_gather_max_diff"] == 0,
        "after DDP training the ranks hold different parameters (gradients not all-reduced)",
        **details,
    )
    require(first["params"] != first["initial"], "the DDP step did not change the parameters")


def _gather_json(mine: RankResult, world: int, device: torch.device) -> list[RankResult]:
    """Every rank's `mine`, in rank order (as JSON bytes in tensors: all_gather_object needs
    NumPy in some torch builds, and the suite needs only torch)."""
    import torch.distributed as dist

    data = torch.tensor(list(json.dumps(mine).encode()), dtype=torch.uint8, device=device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = max(int(s.item()) for s in sizes)
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: data.numel()] = data
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return [
        json.loads(bytes(g[: int(n.item())].cpu().tolist()).decode())
        for g, n in zip(gathered, sizes, strict=True)
    ]


def _expected(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise CheckFailed(f"{name}={value!r} is not a whole number")
    return int(value)


def _joined(ctx: Context) -> Outcome:
    """Under torchrun: this rank joins the job's process group and trains with every other."""
    import gc

    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    use_nccl = ctx.device.type == "cuda" and torch.cuda.device_count() > local_rank
    backend = "nccl" if use_nccl and dist.is_nccl_available() else "gloo"
    details: dict[str, object] = {
        "backend": backend,
        "launcher": "torchrun",
        "rank": rank,
        "world_size": world,
    }
    torch.set_num_threads(1)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    try:
        require(
            dist.get_world_size() == world,
            f"the process group has {dist.get_world_size()} ranks, WORLD_SIZE says {world}",
            **details,
        )
        mine = _step(rank, backend, ctx.seed, world, JOINED_STEPS, local_rank)
        mine["host"] = socket.gethostname()
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        ranks = _gather_json(mine, world, device)
    finally:
        gc.collect()  # see _worker: free the DDP reducer while the group exists
        if owner:
            dist.destroy_process_group()
    hosts = sorted({r["host"] for r in ranks})
    details.update(steps=JOINED_STEPS, hosts=hosts, nodes=len(hosts))
    want_world, want_nodes = _expected(EXPECT_WORLD_SIZE), _expected(EXPECT_NODES)
    require(
        want_world is None or world == want_world,
        f"{world} ranks joined, {want_world} were expected: a node or process is missing",
        **details,
    )
    require(
        want_nodes is None or len(hosts) == want_nodes,
        f"the ranks ran on {len(hosts)} host(s), {want_nodes} were expected",
        **details,
    )
    _compare(ranks, details)
    return passed(details)


@check("ddp")
def ddp(ctx: Context) -> Outcome:
    import torch.distributed as dist
    from torch.multiprocessing.spawn import (  # what torch.multiprocessing re-exports
        ProcessExitedException,
        ProcessRaisedException,
        start_processes,
    )

    if not dist.is_available():
        raise CheckFailed("torch.distributed is not available in this torch build")
    if launched_by_torchrun():
        return _joined(ctx)
    device = ctx.device
    use_nccl = device.type == "cuda" and torch.cuda.device_count() >= WORLD_SIZE
    backend = "nccl" if use_nccl and dist.is_nccl_available() else "gloo"
    method = _start_method(backend, device)
    if method == "fork":
        importlib.import_module("torch._dynamo")  # DDP's constructor imports it: once, here
    init_method = f"tcp://127.0.0.1:{free_port()}"
    details: dict[str, object] = {
        "backend": backend,
        "start_method": method,
        "world_size": WORLD_SIZE,
    }
    with tempfile.TemporaryDirectory(prefix="torchsmoke-ddp-") as out_dir:
        processes = start_processes(  # type: ignore[no-untyped-call]  # unannotated in torch
            _worker,
            args=(backend, init_method, out_dir, ctx.seed),
            nprocs=WORLD_SIZE,
            join=False,
            start_method=method,
        )
        try:
            _join(processes, TIMEOUT_S)
        except (ProcessRaisedException, ProcessExitedException) as exc:
            raise CheckFailed(f"a DDP process failed: {error_summary(exc)}", **details) from None
        finally:  # torch leaves a failed worker's pickled traceback in the temporary folder
            for leftover in getattr(processes, "error_files", ()):
                Path(leftover).unlink(missing_ok=True)
        ranks: list[RankResult] = [
            json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)
        ]
    _compare(ranks, details)
    return passed(details)
