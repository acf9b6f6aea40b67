"""`quantize`: dynamic int8 quantization of the trained MLP, as deploying it from here needs.

It applies dynamic int8 quantization to the trained MLP, on the CPU, with the API torch
now recommends where it is installed (torchao's `quantize_` with
`Int8DynamicActivationInt8WeightConfig`), else with the one this torch ships
(`torch.ao.quantization.quantize_dynamic`, which torch 2.10 and later mark deprecated: the result
repeats torch's warning and says how to get the replacement). It reports the API, the quantized
engine (torch.ao's path) and the weight types. `export` runs torch.export on the trained MLP and
CNN, saves and reloads the programs (.pt2) and compares them with eager on two batch sizes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import io
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType

import torch
from torch import nn

from torchsmoke.checks.compile import require_named_user
from torchsmoke.checks.training import train_mlp
from torchsmoke.core import CheckSkipped, Context, Outcome, check, passed, require
from torchsmoke.train import accuracy

MAX_ACCURACY_DROP = 0.02  # two points
# The order torch itself prefers when it picks a default engine.
ENGINE_PREFERENCE = ("x86", "fbgemm", "onednn", "qnnpack")
QUANTIZE_API = "torch.ao.quantization.quantize_dynamic"
TORCHAO_API = "torchao.quantization.quantize_(Int8DynamicActivationInt8WeightConfig)"


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


def torchao_quantization() -> tuple[ModuleType | None, str | None]:
    """torchao.quantization where it is installed and imports, else None and why not."""
    if importlib.util.find_spec("torchao") is None:
        return None, "torchao is not installed"
    try:
        return importlib.import_module("torchao.quantization"), None
    except Exception as exc:  # e.g. a torchao built for another torch
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"torchao is installed but does not import ({type(exc).__name__}: {first})"


def _with_torchao(ao: ModuleType, model: nn.Module) -> nn.Module:
    qmodel = copy.deepcopy(model)
    # set_inductor_config=False: leave torch.compile's global settings as the other checks find them
    ao.quantize_(qmodel, ao.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    return qmodel


def unquantized_linears(qmodel: nn.Module) -> list[str]:
    """Names of nn.Linear layers that still hold a plain float weight: torch.ao swaps quantized
    layers for its own modules, torchao keeps nn.Linear with an int8 tensor subclass as weight."""
    return [
        name or "model"
        for name, m in qmodel.named_modules()
        if type(m) is nn.Linear and type(m.weight) in (torch.Tensor, nn.Parameter)
    ]


def _type_names(objects: Iterator[object]) -> list[str]:
    return sorted({type(o).__module__ + "." + type(o).__name__ for o in objects})


@check("quantize")
def quantize(ctx: Context) -> Outcome:
    require_named_user()
    ao, no_torchao = torchao_quantization()
    supported = supported_engines()
    engine = pick_engine(supported, torch.backends.quantized.engine)
    if ao is None and engine is None:
        raise CheckSkipped(
            f"this torch build has no quantized engine (supported engines: {supported}): "
            "int8 quantization cannot run here"
        )
    model, data, _ = train_mlp(ctx, ctx.device)
    cpu = torch.device("cpu")
    model, data = model.to(cpu).eval(), data.to(cpu)  # dynamic quantization runs on the CPU
    fp32_acc = accuracy(model, data.x_test, data.y_test)
    caught: list[warnings.WarningMessage] = []
    if ao is not None:
        api, engine = TORCHAO_API, None  # torchao's own int8 kernels, not a quantized engine
        qmodel = _with_torchao(ao, model)
        int8_acc = accuracy(qmodel, data.x_test, data.y_test)
    else:
        assert engine is not None
        api = QUANTIZE_API
        with quantized_engine(engine), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # torch leaves quantize_dynamic unannotated
            qmodel = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {nn.Linear}, dtype=torch.qint8
            )
            int8_acc = accuracy(qmodel, data.x_test, data.y_test)
    bytes_fp32, bytes_int8 = serialized_bytes(model), serialized_bytes(qmodel)
    details: dict[str, object] = {
        "api": api,
        "engine": engine,
        "supported_engines": supported,
        "torchao": no_torchao
        or str(getattr(importlib.import_module("torchao"), "__version__", "?")),
        "trained_on": str(ctx.device),
        "accuracy_fp32": fp32_acc,
        "accuracy_int8": int8_acc,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "bytes_fp32": bytes_fp32,
        "bytes_int8": bytes_int8,
        "modules": _type_names(qmodel.modules()),
        # torchao's quantized weights are tensor subclasses of nn.Linear's weight
        "weights": _type_names(
            m.weight
            for m in qmodel.modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor)
        ),
    }
    left = unquantized_linears(qmodel)
    require(
        not left,
        f"{api} left nn.Linear layers unquantized ({', '.join(left)}; engine {engine})",
        **details,
    )
    require(
        fp32_acc - int8_acc <= MAX_ACCURACY_DROP,
        f"int8 accuracy {int8_acc:.3f} is more than {MAX_ACCURACY_DROP:.0%} below fp32's "
        f"{fp32_acc:.3f} ({api}, engine {engine})",
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
            f"torchao's quantize_, is not used: {no_torchao}; pip install torchao to use it)"
        )
    return passed(details, note=note)
