"""The dataloader check: dying workers get the /dev/shm fix; throughput with 0 and 2 workers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import pytest

from torchsmoke.checks.dataloader import dataloader, slow_workers_note, small_shm_note
from torchsmoke.core import Context, run_check

MiB = 2**20


class WorkerDies:
    """A dataset whose workers die of SIGBUS, as they do when /dev/shm is full."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        os.kill(os.getpid(), signal.SIGBUS)
        time.sleep(5)


class ShmFull:
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        raise OSError(28, "No space left on device: '/dev/shm/torch_4242_1234'")


class PlainBug:
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        raise ValueError("a bug in __getitem__")


def _dataloader_with(ctx: Context, dataset):
    return run_check(replace(dataloader, func=lambda c: dataloader.func(c, dataset=dataset)), ctx)


@pytest.mark.parametrize("dataset", [WorkerDies(), ShmFull()], ids=["bus error", "shm full"])
def test_a_dataloader_failure_is_caught_with_the_shm_fix(real_env, dataset, context):
    env = replace(real_env, shm_bytes=64 * MiB)
    result = _dataloader_with(context(env, device="cpu"), dataset)
    assert result.status == "fail"
    assert result.reason.startswith("DataLoader with 2 workers failed:")
    assert "/dev/shm is 64.0 MiB" in result.reason
    assert "--shm-size=2g or --ipc=host" in result.reason


def test_an_unrelated_dataloader_failure_gets_no_shm_hint(real_env, context):
    result = _dataloader_with(context(real_env, device="cpu"), PlainBug())
    assert result.status == "fail"
    assert "a bug in __getitem__" in result.reason and "shm" not in result.reason


def test_a_small_shm_is_reported_on_pass(real_env, context):
    env = replace(real_env, shm_bytes=64 * MiB)
    result = run_check(dataloader, context(env, device="cpu", quick=True))
    assert result.status == "pass", result.reason
    assert result.reason.startswith(small_shm_note(64 * MiB))
    assert result.reason.startswith("passed; /dev/shm is 64.0 MiB (< 1 GiB)")
    assert result.details["workers_used"] == [0, 1]
    assert small_shm_note(2 * 2**30) is None


def test_the_dataloader_reports_samples_per_second_with_0_and_2_workers(real_env, context):
    env = replace(real_env, shm_bytes=2 * 2**30)
    result = run_check(dataloader, context(env, device="cpu", quick=True))
    assert result.status == "pass", result.reason
    rates = result.details["samples_per_s"]
    assert set(rates) == {"0", "2"} and all(rate > 0 for rate in rates.values())
    # The note is there exactly when the workers were slower.
    assert (result.reason is not None) == (rates["2"] < rates["0"])


def test_slower_workers_are_explained_with_what_to_do():
    note = slow_workers_note({0: 20000.0, 2: 800.0}, cpu_count=2)
    assert note.startswith("2 workers were slower than none (800 vs 20000 samples/s)")
    for advice in ("persistent_workers=True", "(2 here)", "pin_memory=True only", "--shm-size=2g"):
        assert advice in note
    assert slow_workers_note({0: 800.0, 2: 2000.0}, cpu_count=2) is None
