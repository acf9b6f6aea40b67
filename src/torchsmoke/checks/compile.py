"""`compile`: torch.compile (inductor) on a small function, equal to eager.

Inductor needs a C++ compiler on CPU (g++, or $CXX) and triton needs a C compiler on CUDA. Every
torchenv image has both, so a missing compiler is a failure whose reason says how to install one
(it never skips for that). Compiled kernels are loaded from a writable folder that allows running
code: without one (a noexec /tmp on a read-only root) the check skips and says so. It compiles
into a fresh cache directory, so the result proves the compiler works now rather than replaying
kernels cached by an earlier run, and leaves nothing behind.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, cast

import torch

from torchsmoke.core import (
    CheckFailed,
    CheckSkipped,
    Context,
    Outcome,
    check,
    error_summary,
    passed,
    require,
)


class _InductorConfig(Protocol):
    """The part of torch._inductor.config this check sets."""

    compile_threads: int | None


_COMPILER_ERROR = re.compile(
    r"InvalidCxxCompiler|No working C\+\+ compiler|CppCompileError|Failed to find C compiler"
    r"|C compiler",
    re.I,
)


COMPILER_FIX = (
    "install one (Debian/Ubuntu: apt-get install g++ libc6-dev; every torchenv image has it: "
    "rebuild with `invoke build`)"
)


def nameless_user() -> str | None:
    """Why torch._dynamo cannot even be imported here, or None.

    torch names its compile cache after getpass.getuser(): with no LOGNAME/USER in the
    environment and a UID that /etc/passwd does not list (`docker run --user 4242`), importing
    torch._dynamo (torch.compile, torch.export) raises KeyError, and a half-done import breaks
    the imports that follow. This check comes first, so it fails cleanly, with the fix.
    """
    if any(os.environ.get(name) for name in ("LOGNAME", "USER", "LNAME", "USERNAME")):
        return None
    try:
        pwd = importlib.import_module("pwd")
        pwd.getpwuid(os.getuid())
    except ModuleNotFoundError:  # not a POSIX system: getuser() fails differently there
        return None
    except KeyError:
        return (
            f"UID {os.getuid()} has no /etc/passwd entry and USER is not set: torch.compile "
            "and torch.export cannot name their cache directory; run with -e USER=$(id -un) "
            "(invoke shell does) or as a user the image knows"
        )
    return None


def require_named_user() -> None:
    """Fail the running check when torch cannot name its cache (see `nameless_user`)."""
    problem = nameless_user()
    if problem:
        raise CheckFailed(problem)


def missing_compiler(compilers: dict[str, str | None], device: torch.device) -> str | None:
    """Why torch.compile cannot work here, or None when the needed compiler is on PATH."""
    if device.type == "cpu" and not compilers.get("cxx"):
        if not compilers.get("cc"):
            return f"no C compiler (cc/gcc) on PATH: torch.compile needs one; {COMPILER_FIX}"
        return (
            f"no C++ compiler (g++, or $CXX) on PATH: torch.compile on CPU needs one; "
            f"{COMPILER_FIX}"
        )
    if device.type == "cuda" and not compilers.get("cc"):
        return f"no C compiler (cc/gcc) on PATH: torch.compile (triton) needs one; {COMPILER_FIX}"
    return None


def exec_capable_dir(candidates: list[str]) -> str | None:
    """The first writable folder whose filesystem lets code run from it, or None.

    Inductor loads the kernels it compiles as shared libraries from its cache folder, which fails
    on a noexec mount: Docker's `--tmpfs /tmp` is one, and on a read-only root it is the only
    writable place.
    """
    for path in candidates:
        usable = path and Path(path).is_dir() and os.access(path, os.W_OK | os.X_OK)
        if usable and not os.statvfs(path).f_flag & os.ST_NOEXEC:
            return path
    return None


def _function(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * y + torch.cos(x).relu()


@check("compile")
def torch_compile(ctx: Context) -> Outcome:
    if ctx.quick:
        raise CheckSkipped("skipped in --quick mode")  # a cold compile takes 10-20 s
    device = ctx.device
    problem = nameless_user() or missing_compiler(ctx.env.compilers, device)
    if problem:
        raise CheckFailed(problem, compilers=ctx.env.compilers)
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (7, 0):
        major, minor = torch.cuda.get_device_capability(device)
        raise CheckSkipped(
            f"torch.compile on CUDA (triton) needs compute capability >= 7.0; "
            f"this GPU has {major}.{minor}"
        )

    tmp = tempfile.gettempdir()
    base = exec_capable_dir([tmp, str(Path("~").expanduser()), "/dev/shm"])
    if base is None:
        problem = (
            f"no writable folder lets compiled code run ({tmp} is mounted noexec, as Docker's "
            "--tmpfs is by default): torch.compile cannot load its kernels; mount it with exec "
            "(docker run --tmpfs /tmp:exec) or point TMPDIR at such a folder"
        )
        if ctx.options.require_compiler:
            raise CheckFailed(f"{problem} (--require-compiler was given)")
        raise CheckSkipped(problem)

    dynamo = importlib.import_module("torch._dynamo")
    inductor_config = cast(_InductorConfig, importlib.import_module("torch._inductor.config"))

    gen = ctx.generator()
    x, y = (torch.randn(64, 32, generator=gen).to(device) for _ in range(2))
    threads = inductor_config.compile_threads
    with tempfile.TemporaryDirectory(prefix="torchsmoke-inductor-", dir=base) as cache:
        # The runner restores os.environ; compile in-process, no worker pool to start.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        os.environ["TRITON_CACHE_DIR"] = str(Path(cache) / "triton")
        inductor_config.compile_threads = 1
        dynamo.reset()
        try:
            compiled = torch.compile(_function, backend="inductor", fullgraph=True)
            got = compiled(x, y)
        except Exception as exc:
            if _COMPILER_ERROR.search(f"{type(exc).__name__} {exc}"):
                raise CheckFailed(
                    f"{error_summary(exc)}; likely cause: the C/C++ compiler does not work: "
                    f"{COMPILER_FIX}"
                ) from exc
            raise
        finally:
            inductor_config.compile_threads = threads
            dynamo.reset()
    expected = _function(x, y)
    err = (got - expected).abs().max().item()
    require(
        torch.allclose(got, expected, rtol=1e-5, atol=1e-5),
        f"the compiled function differs from eager (max error {err:.3g})",
    )
    return passed({"device": str(device), "backend": "inductor", "max_error": err})
