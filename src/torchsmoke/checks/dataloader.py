"""`dataloader`: a DataLoader with worker processes, its throughput, and the shared-memory diagnosis.

Workers hand batches to the main process through /dev/shm; Docker gives containers 64 MiB of it
by default, which is the most common reason workers die (bus error, "No space left on device",
"insufficient shared memory"). A failure that looks like that carries the fix; a small /dev/shm
is reported even when the check passes. The same dataset is read with 0 and with 2 workers, and
the samples per second of both are reported; when the workers are slower, the result says why.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Sized
from typing import cast

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from torchsmoke.core import CheckFailed, Context, Outcome, check, error_summary, passed, require
from torchsmoke.envinfo import format_bytes

WORKERS = 2
SHM_MIN_BYTES = 2**30
SHM_FIX = "run the container with --shm-size=2g or --ipc=host"
_SHM_SIGNS = re.compile(
    r"bus error|no space left on device|insufficient shared memory|out of shared memory"
    r"|/dev/shm|killed by signal|exited unexpectedly",
    re.I,
)
SAMPLE_SHAPE = (3, 64, 64)  # 48 KiB a sample, 768 KiB a batch of 16


Sample = tuple[torch.Tensor, int, int]  # a tensor filled with i, i, the worker's id


class IndexedSamples(Dataset[Sample]):
    """Sample i is a tensor filled with i; it also says which worker made it."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        info = get_worker_info()
        worker = -1 if info is None else info.id
        return torch.full(SAMPLE_SHAPE, float(index)), index, worker


def shm_hint(error_text: str, shm_bytes: int | None) -> str | None:
    """The shared-memory fix when an error looks like a /dev/shm problem, else None."""
    if not _SHM_SIGNS.search(error_text):
        return None
    return f"likely cause: shared memory (/dev/shm is {format_bytes(shm_bytes)}): {SHM_FIX}"


def small_shm_note(shm_bytes: int | None) -> str | None:
    if shm_bytes is None or shm_bytes >= SHM_MIN_BYTES:
        return None
    return (
        f"passed; /dev/shm is {format_bytes(shm_bytes)} (< 1 GiB): large batches may fail, "
        f"{SHM_FIX}"
    )


def slow_workers_note(rates: dict[int, float], cpu_count: int | None) -> str | None:
    """Why WORKERS workers read slower than the main process alone, and what to do; else None."""
    alone, with_workers = rates[0], rates[WORKERS]
    if with_workers >= alone:
        return None
    return (
        f"{WORKERS} workers were slower than none ({with_workers:.0f} vs {alone:.0f} samples/s): "
        "each epoch starts the worker processes and every batch crosses /dev/shm, which costs "
        "more than loading these cheap samples; workers pay off when __getitem__ does real work "
        "(decoding, augmentation). Then: persistent_workers=True to start them once, num_workers "
        f"no higher than the CPU cores ({cpu_count or 'unknown'} here), pin_memory=True only "
        f"with CUDA, and room in /dev/shm ({SHM_FIX})"
    )


def samples_per_second(dataset: Dataset[Sample], workers: int, pin: bool) -> float:
    """One pass over the dataset, worker start-up included (what an epoch costs)."""
    start = time.perf_counter()
    loader = DataLoader(
        dataset, batch_size=16, num_workers=workers, pin_memory=pin, timeout=60 if workers else 0
    )
    count = sum(len(batch[1]) for batch in loader)
    return count / (time.perf_counter() - start)


@check("dataloader")
def dataloader(ctx: Context, dataset: Dataset[Sample] | None = None) -> Outcome:
    """`dataset` replaces the built-in one (the tests use a failing one)."""
    # Every dataset here has a length; torch's Dataset does not declare __len__ (the casts).
    size = ctx.pick(256, 128)
    dataset = IndexedSamples(size) if dataset is None else dataset
    pin = ctx.device.type == "cuda"
    shm = ctx.env.shm_bytes
    details: dict[str, object] = {
        "workers": WORKERS,
        "pin_memory": pin,
        "samples": len(cast(Sized, dataset)),
        "shm_bytes": shm,
    }
    loader = DataLoader(
        dataset, batch_size=16, shuffle=False, num_workers=WORKERS, pin_memory=pin, timeout=60
    )
    seen: list[int] = []
    workers: set[int] = set()
    batches = None
    try:
        batches = iter(loader)
        for x, index, worker in batches:
            require(
                torch.equal(x[:, 0, 0, 0], index.float()),
                "a batch arrived with values that do not belong to its samples",
                **details,
            )
            require(not pin or x.is_pinned(), "pin_memory=True gave an unpinned batch", **details)
            seen += index.tolist()
            workers.update(worker.tolist())
    except CheckFailed:
        raise
    except Exception as exc:
        hint = shm_hint(f"{type(exc).__name__}: {exc}", shm)
        reason = f"DataLoader with {WORKERS} workers failed: {error_summary(exc)}"
        details["traceback"] = traceback.format_exc()
        raise CheckFailed(f"{reason}; {hint}" if hint else reason, **details) from None
    finally:
        # Shut the workers down now: left to the garbage collector (the traceback holds the
        # iterator in a reference cycle) the shutdown takes seconds.
        getattr(batches, "_shutdown_workers", lambda: None)()
    details.update(batches=len(loader), workers_used=sorted(workers))
    require(
        seen == list(range(len(cast(Sized, dataset)))),
        f"{len(seen)} of {len(cast(Sized, dataset))} samples arrived (or out of order)",
        **details,
    )
    require(
        workers == set(range(WORKERS)), f"batches came from workers {sorted(workers)}", **details
    )
    rates = {n: samples_per_second(dataset, n, pin) for n in (0, WORKERS)}
    details["samples_per_s"] = {str(n): round(rate, 1) for n, rate in rates.items()}
    notes = [small_shm_note(shm), slow_workers_note(rates, ctx.env.cpu_count)]
    return passed(details, note="; ".join(n for n in notes if n) or None)
