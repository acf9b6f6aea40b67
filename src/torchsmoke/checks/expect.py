"""`expect`: the environment is what the target promises (--expect-*, --require-gpu), or each
mismatch with its likely cause (which wheel index, which companion release)."""

from __future__ import annotations

from typing import cast

from torchsmoke.core import CheckFailed, CheckSkipped, Context, Outcome, check, passed
from torchsmoke.envinfo import public_version


def version_matches(actual: str, expected: str) -> bool:
    """Component-prefix match of the public versions: 2.7.1+cu118 matches 2.7.1; 3.11.2 3.11."""
    want = public_version(expected).split(".")
    return public_version(actual).split(".")[: len(want)] == want


def variant_hint(actual: str, expected: str) -> str:
    """Why torch is the wrong build, and which wheel index gives the right one."""
    if actual == "cpu" and expected.startswith("cu"):
        return (
            f"torch is the CPU build but {expected} was expected: was the CUDA wheel index used? "
            f"install torch from the PyTorch {expected} wheel index (--index-url .../whl/{expected})"
        )
    if actual.startswith("cu") and expected == "cpu":
        return (
            f"torch is the {actual} (CUDA) build but the CPU build was expected: pip's default "
            "index serves CUDA builds of torch for Linux; install from the PyTorch cpu wheel "
            "index (--index-url .../whl/cpu)"
        )
    if actual.startswith("cu") and expected.startswith("cu"):
        return (
            f"torch is the {actual} build but {expected} was expected: it came from the {actual} "
            f"wheel index (or pip's default index); install from the {expected} index "
            f"(--index-url .../whl/{expected}, not --extra-index-url)"
        )
    return f"torch is the {actual} build but {expected} was expected"


def _companion_hint(name: str, torch_version: str) -> str:
    if name == "torchvision":
        return (
            f"torchvision must match torch {torch_version} (each torchvision release is built "
            "for one torch; a mismatch fails with 'operator torchvision::nms does not exist')"
        )
    return (
        f"torchaudio must match torch {torch_version}, CUDA minor version included (a mismatch "
        "fails with 'compiled with different CUDA versions')"
    )


def mismatch(key: str, actual: str | None, expected: str, torch_version: str) -> str | None:
    """The problem with one expectation, with its likely cause; None when it holds."""
    if key == "variant":
        return None if actual == expected else variant_hint(str(actual), expected)
    if actual is not None and version_matches(actual, expected):
        return None
    if key == "python":
        return (
            f"Python {actual} but {expected} was expected: the environment was built with "
            "another interpreter"
        )
    if key == "torch":
        return (
            f"torch {actual} is installed but {expected} was expected: the pinned version was "
            "not installed (did another requirement or install step replace torch?)"
        )
    state = "is not installed" if actual is None else f"{actual} is installed"
    return f"{key} {state} but {expected} was expected: {_companion_hint(key, torch_version)}"


@check("expect")
def expect(ctx: Context) -> Outcome:
    wanted: dict[str, str | bool] = dict(ctx.options.expect)
    if not wanted and not ctx.options.require_gpu:
        raise CheckSkipped("nothing expected (no --expect-* option and no --require-gpu given)")
    report = ctx.env
    actual: dict[str, str | bool | None] = {
        "variant": report.torch.variant,
        "torch": report.torch.version,
        "torchvision": report.torchvision.version if report.torchvision else None,
        "torchaudio": report.torchaudio.version if report.torchaudio else None,
        "python": report.python.version,
        "gpu": ctx.has_cuda,
    }
    torch_version = public_version(report.torch.version)
    # wanted is still a copy of expect here; expect's keys are the versions', never "gpu"
    problems = [
        problem
        for key, value in ctx.options.expect.items()
        if (problem := mismatch(key, cast("str | None", actual.get(key)), value, torch_version))
    ]
    if ctx.options.require_gpu:
        wanted["gpu"] = True
        if not ctx.has_cuda:
            problems.append(
                "a GPU is required (--require-gpu) but torch.cuda.is_available() is False "
                "(the cuda check lists the likely causes)"
            )
    details = {"expected": wanted, "actual": actual, "mismatches": problems}
    if problems:
        raise CheckFailed("; ".join(problems), **details)
    return passed(details)
