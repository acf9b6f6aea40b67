"""The suite's one table of checks: name, module and summary of each, in the order they run, and
what a check is (`Check`).

The name is the `--only`/`--skip` value and the report's key; the module (under
torchsmoke/checks, named after its checks) holds the `@check(name)` function (torchsmoke.core),
which takes its summary from here. The table is standard library only and imports no other
torchsmoke module (core imports it, not the reverse), so that `--list` and `--help` work in a
Python without torch; a check's module, and torch with it, is imported when the check runs.
tests/torchsmoke/test_checks.py keeps every module's checks equal to its rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchsmoke.core import Context, Outcome


@dataclass(frozen=True)
class Entry:
    name: str
    module: str  # importable name of the module that defines it
    summary: str


@dataclass(frozen=True)
class Check:
    """A check: `func(ctx)` returns its Outcome (torchsmoke.core runs it; `@check` makes one)."""

    name: str
    summary: str
    func: Callable[[Context], Outcome]


ALL: tuple[Entry, ...] = tuple(
    Entry(name, f"{__name__}.{module}", summary)
    for name, module, summary in (
        ("env", "env", "environment report: Python, OS, torch build, CUDA, GPUs, driver, /dev/shm"),
        ("expect", "expect", "the environment is what the target promises (--expect-*, --require-gpu)"),
        ("mlp", "training", "train an MLP 784-128-10 on synthetic class prototypes; held-out accuracy"),
        ("cnn", "training", "train a small CNN on synthetic bars/crosses/squares; held-out accuracy"),
        ("vision", "vision_audio", "torchvision ops (nms, roi_align), transforms v2, a resnet18 forward pass"),
        ("image_io", "image_io", "JPEG, PNG, WebP files made here decode through torchvision.io and PIL (nvJPEG on a GPU)"),
        ("audio", "vision_audio", "torchaudio MelSpectrogram, Resample and lfilter"),
        ("audio_io", "audio_io", "a sine saved and loaded as WAV and FLAC (torchaudio.save/load; TorchCodec for 2.9+)"),
        ("autograd", "autograd", "torch.autograd.gradcheck on a small double-precision function"),
        ("checkpoint", "checkpoint", "state_dict saved, loaded (weights_only=True) there and on the CPU"),
        ("determinism", "training", "two seeded trainings give bit-identical losses (CPU, and CUDA)"),
        ("dataloader", "dataloader", "DataLoader with 2 workers (pin_memory on CUDA): every batch; samples/s"),
        ("ddp", "ddp", "DistributedDataParallel (2 processes, or every rank under torchrun): equal params"),
        ("amp", "training", "autocast training steps (bf16 on CPU; fp16 + GradScaler and bf16 on CUDA)"),
        ("cuda", "cuda", "GPU fits torch's kernel archs; matmul, cuDNN conv against CPU; memory; CUDA errors caught"),
        ("cuda_libs", "cuda_libs", "every CUDA shared library (nvidia wheels, torch/lib) loads; cuDNN/NCCL versions agree"),
        ("compile", "compile", "torch.compile on a small function gives the eager result"),
        ("quantize", "quantize", "dynamic int8 quantization of the trained MLP: accuracy, size, engine"),
        ("export", "export", "torch.export of the trained MLP and CNN, saved and loaded: outputs equal eager"),
        ("tensorboard", "tensorboard", "SummaryWriter during MLP training, read back, `tensorboard --logdir` serves"),
    )
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(e.name for e in ALL)


def entry(name: str) -> Entry:
    """The table's row for `name`; LookupError when the table has none."""
    for row in ALL:
        if row.name == name:
            return row
    raise LookupError(f"no check {name!r} in the table of torchsmoke/checks/__init__.py")


def defined_in(module: object) -> list[Check]:
    """The checks that `module` itself defines (`@check` functions), in definition order."""
    name = getattr(module, "__name__", None)
    return [
        value
        for value in vars(module).values()
        if isinstance(value, Check) and value.func.__module__ == name
    ]


def load(name: str) -> Check:
    """The check `name`, its module imported now (torch with it)."""
    row = entry(name)
    module = importlib.import_module(row.module)
    found = [c for c in defined_in(module) if c.name == name]
    if not found:
        raise LookupError(f"{row.module} defines no @check({name!r})")
    return found[0]


def deferred(name: str) -> Check:
    """The check `name`, whose module is imported only when it runs: an import error is then
    that check's failure, not the suite's."""

    def run(ctx: Context) -> Outcome:
        return load(name).func(ctx)

    row = entry(name)
    return Check(row.name, row.summary, run)
