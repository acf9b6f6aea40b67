"""`ddp`: DistributedDataParallel with two local processes, one training step.

The ranks start from different weights and see different data; after DDP's broadcast and one
all-reduced step they must hold bit-identical parameters. gloo on CPU, nccl when the run uses
CUDA and there are 2+ GPUs. Bounded by a deadline: on timeout the processes are killed.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch

from torchsmoke.core import CheckFailed, Context, Outcome, check, error_summary, passed, require

WORLD_SIZE = 2
TIMEOUT_S = 60  # the whole check; the process group's own timeout is half of it


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _step(rank: int, backend: str, seed: int) -> dict:
    """One DDP training step on this rank; what the parent needs to compare the ranks."""
    import torch.distributed as dist
    from torch import nn
    from torch.nn import functional as F
    from torch.nn.parallel import DistributedDataParallel

    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    torch.manual_seed(seed + rank)  # different initial weights: DDP must broadcast rank 0's
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
    initial = torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()
    ddp = DistributedDataParallel(model, device_ids=[rank] if backend == "nccl" else None)
    gen = torch.Generator().manual_seed(seed + 100 + rank)  # different data per rank
    x, y = torch.randn(8, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    loss = F.cross_entropy(ddp(x.to(device)), y.to(device))
    loss.backward()
    opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD_SIZE)]
    dist.all_gather(gathered, flat)
    return {
        "rank": rank,
        "loss": loss.item(),
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


def _join(processes: torch.multiprocessing.ProcessContext, timeout_s: float) -> None:
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


@check("ddp", "DistributedDataParallel, 2 processes: one step leaves identical parameters")
def ddp(ctx: Context) -> Outcome:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        raise CheckFailed("torch.distributed is not available in this torch build")
    device = ctx.device
    use_nccl = device.type == "cuda" and torch.cuda.device_count() >= WORLD_SIZE
    backend = "nccl" if use_nccl and dist.is_nccl_available() else "gloo"
    method = _start_method(backend, device)
    if method == "fork":
        importlib.import_module("torch._dynamo")  # DDP's constructor imports it: once, here
    init_method = f"tcp://127.0.0.1:{free_port()}"
    details = {"backend": backend, "start_method": method, "world_size": WORLD_SIZE}
    with tempfile.TemporaryDirectory(prefix="torchsmoke-ddp-") as out_dir:
        processes = mp.start_processes(
            _worker,
            args=(backend, init_method, out_dir, ctx.seed),
            nprocs=WORLD_SIZE,
            join=False,
            start_method=method,
        )
        try:
            _join(processes, TIMEOUT_S)
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            raise CheckFailed(f"a DDP process failed: {error_summary(exc)}", **details) from None
        ranks = [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    details["losses"] = [r["loss"] for r in ranks]
    details["all_gather_max_diff"] = max(r["all_gather_max_diff"] for r in ranks)
    first = ranks[0]
    require(
        ranks[1]["initial"] != first["initial"],
        "the ranks started from identical weights: the test would prove nothing",
        **details,
    )
    require(
        all(r["params"] == first["params"] for r in ranks) and details["all_gather_max_diff"] == 0,
        "after one DDP step the ranks hold different parameters (gradients not all-reduced)",
        **details,
    )
    require(first["params"] != first["initial"], "the DDP step did not change the parameters")
    return passed(details)
