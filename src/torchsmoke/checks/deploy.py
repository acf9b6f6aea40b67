"""`quantize` and `export`: what deploying the trained models from this environment needs.

`quantize` applies dynamic int8 quantization to the trained MLP with the API this torch ships for
it (torch.ao.quantization.quantize_dynamic; torch's own deprecation warning, when it gives one,
is repeated in the result with the replacement it names) on the CPU, where that API runs, and
reports the quantized engine. `export` runs torch.export on the trained MLP and CNN, saves and
reloads the programs (.pt2) and compares them with eager on two batch sizes.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from torchsmoke.checks.compiler import nameless_user
from torchsmoke.checks.training import CNN_LR, cnn_data, train_mlp
from torchsmoke.core import CheckFailed, CheckSkipped, Context, Outcome, check, passed, require
from torchsmoke.train import SmallCNN, accuracy, fit

MAX_ACCURACY_DROP = 0.02  # two points
# The order torch itself prefers when it picks a default engine.
ENGINE_PREFERENCE = ("x86", "fbgemm", "onednn", "qnnpack")
QUANTIZE_API = "torch.ao.quantization.quantize_dynamic"
EXPORT_RTOL, EXPORT_ATOL = 1e-4, 1e-5


def supported_engines() -> list[str]:
    return list(torch.backends.quantized.supported_engines)


def pick_engine(supported: Sequence[str], current: str) -> str | None:
    """The quantized engine to use: torch's current one, else the preferred supported one."""
    usable = [e for e in supported if e != "none"]
    if current in usable:
        return current
    return next((e for e in ENGINE_PREFERENCE if e in usable), usable[0] if usable else None)


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Use `engine` for the block (the runner does not restore this switch: we do)."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def serialized_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def deprecation_note(caught: Sequence[warnings.WarningMessage]) -> str | None:
    """torch's deprecation warning for the quantization API, first line only, or None."""
    for warning in caught:
        text = str(warning.message).strip()
        if "deprecated" in text.lower() and "quantiz" in text.lower():
            return text.splitlines()[0].strip()
    return None


def _require_named_user() -> None:
    problem = nameless_user()
    if problem:
        raise CheckFailed(problem)


@check("quantize", "dynamic int8 quantization of the trained MLP: accuracy, size, engine")
def quantize(ctx: Context) -> Outcome:
    _require_named_user()
    supported = supported_engines()
    engine = pick_engine(supported, torch.backends.quantized.engine)
    if engine is None:
        raise CheckSkipped(
            f"this torch build has no quantized engine (supported engines: {supported}): "
            "int8 quantization cannot run here"
        )
    model, data, _ = train_mlp(ctx, ctx.device)
    cpu = torch.device("cpu")
    model, data = model.to(cpu).eval(), data.to(cpu)  # dynamic quantization runs on the CPU
    fp32_acc = accuracy(model, data.x_test, data.y_test)
    with quantized_engine(engine), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # torch leaves quantize_dynamic unannotated
        qmodel = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {nn.Linear}, dtype=torch.qint8
        )
        int8_acc = accuracy(qmodel, data.x_test, data.y_test)
    quantized = sorted({type(m).__module__ + "." + type(m).__name__ for m in qmodel.modules()})
    bytes_fp32, bytes_int8 = serialized_bytes(model), serialized_bytes(qmodel)
    details: dict[str, object] = {
        "api": QUANTIZE_API,
        "engine": engine,
        "supported_engines": supported,
        "trained_on": str(ctx.device),
        "accuracy_fp32": fp32_acc,
        "accuracy_int8": int8_acc,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "bytes_fp32": bytes_fp32,
        "bytes_int8": bytes_int8,
        "modules": quantized,
    }
    require(
        not any(type(m) is nn.Linear for m in qmodel.modules()),
        f"{QUANTIZE_API} left nn.Linear layers unquantized (engine {engine})",
        **details,
    )
    require(
        fp32_acc - int8_acc <= MAX_ACCURACY_DROP,
        f"int8 accuracy {int8_acc:.3f} is more than {MAX_ACCURACY_DROP:.0%} below fp32's "
        f"{fp32_acc:.3f} (engine {engine})",
        **details,
    )
    require(
        bytes_int8 < bytes_fp32,
        f"the int8 model serializes to {bytes_int8} bytes, not fewer than fp32's {bytes_fp32}",
        **details,
    )
    deprecated = deprecation_note(caught)
    note = None
    if deprecated:
        details["deprecation"] = deprecated
        note = (
            f"passed; torch {torch.__version__} warns: {deprecated!r} (its replacement, "
            "torchao's quantize_, is not part of this environment)"
        )
    return passed(details, note=note)


def _export_one(name: str, model: nn.Module, x: torch.Tensor, folder: Path) -> dict[str, object]:
    """Export with a dynamic batch size, save, load, compare with eager on two batch sizes."""
    model.eval()
    batch = torch.export.Dim("batch", min=2, max=4096)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    path = folder / f"{name}.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    errors = []
    with torch.no_grad():
        for inputs in (x, x[:7]):
            expected, got = model(inputs), loaded(inputs)
            require(
                got.shape == expected.shape,
                f"exported {name}: output shape {tuple(got.shape)}, eager {tuple(expected.shape)}",
            )
            err = (got - expected).abs().max().item()
            errors.append(err)
            require(
                torch.allclose(got, expected, rtol=EXPORT_RTOL, atol=EXPORT_ATOL),
                f"exported {name} differs from eager on a batch of {len(inputs)} "
                f"(max error {err:.3g})",
            )
    return {"file_bytes": path.stat().st_size, "batch_sizes": [len(x), 7], "max_error": max(errors)}


@check("export", "torch.export of the trained MLP and CNN, saved and loaded: outputs equal eager")
def export(ctx: Context) -> Outcome:
    _require_named_user()
    device = ctx.device
    mlp, mlp_split, _ = train_mlp(ctx, device)
    cnn, cnn_split = SmallCNN().to(device), cnn_data(ctx).to(device)
    # Trained enough to move every weight away from its initial value; accuracy is cnn's job.
    steps = ctx.pick(60, 20)
    fit(cnn, cnn_split, steps=steps, batch_size=64, lr=CNN_LR, gen=ctx.generator(1))
    with tempfile.TemporaryDirectory(prefix="torchsmoke-export-") as tmp:
        results = {
            "mlp": _export_one("mlp", mlp, mlp_split.x_test[:64], Path(tmp)),
            "cnn": _export_one("cnn", cnn, cnn_split.x_test[:64], Path(tmp)),
        }
    return passed(
        {
            "device": str(device),
            "cnn_steps": steps,
            "rtol": EXPORT_RTOL,
            "atol": EXPORT_ATOL,
            **results,
        }
    )
