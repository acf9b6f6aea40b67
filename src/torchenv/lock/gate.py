"""A build installs from a lock: missing or stale, it is made first (as cargo, npm and uv do).

`invoke build` calls `ensure` before anything is built. For the uv and pip installers a target
whose pip lock is missing, or in drift from its env file, is locked first (`invoke lock`), and the
build says so. `--frozen` refuses instead (CI wants the committed lock, never a new one). Where the
lock cannot be made (the index cannot be reached, no conda-lock for conda), the build refuses,
unless the user asked for an unlocked install (`--allow-unlocked`, or the configuration key
`torchenv.allow_unlocked`), which then installs from the pins with a loud warning.
"""

from __future__ import annotations

from collections.abc import Callable

from torchenv.errors import UserError
from torchenv.lock import drift, make, overlays
from torchenv.matrix import Target, rel

UNLOCKED_FIX = "pass --allow-unlocked to install from the pins only (not reproducible, no hashes)"


def state(t: Target, installer: str, flavor: str = "runtime") -> str | None:
    """Why the installer's locks cannot be used as they are; None when they can. The uv and pip
    installers read the overlays too: the project's lock, and for the dev flavor the dev lock
    (`invoke lock` makes them all)."""
    locks = [t.conda_lock if installer == "conda" else t.pip_lock]
    if installer != "conda":
        locks += [o.path for o in overlays.overlays(t) if o.kind != "dev" or flavor == "dev"]
    for lock in locks:
        if not lock.exists():
            return f"{rel(lock)} does not exist"
        problems = drift.check_target(t, only=lock)
        if problems:
            return f"{rel(lock)} is stale ({problems[0]})"
    return None


def ensure(
    t: Target,
    installer: str,
    *,
    frozen: bool,
    allow_unlocked: bool,
    flavor: str = "runtime",
    dry_run: bool = False,
    out: Callable[[str], None] = print,
    lock: Callable[[Target], str] = make.lock_pip,
) -> None:
    """Make the lock the build will read, or refuse in one line (see the module's docstring)."""
    why = state(t, installer, flavor)
    if why is None:
        return
    if frozen:
        raise UserError(f"{why} and --frozen was given: run `invoke lock --target {t.name}` first")
    if allow_unlocked:
        out(f"torchenv: {why}: installing from the pins only (--allow-unlocked), NOT reproducible")
        return
    conda_fix = (
        f"make it with `invoke lock --target {t.name} --installer conda` (needs conda-lock and "
        f"the conda-forge channel), or {UNLOCKED_FIX}"
    )
    if dry_run:
        then = (
            f"the build refuses: {conda_fix}" if installer == "conda" else "the build locks first"
        )
        out(f"# {why}: {then} (invoke lock --target {t.name})")
        return
    if installer == "conda":
        raise UserError(f"{why}: {conda_fix}")
    out(f"torchenv: {why}: locking first (invoke lock --target {t.name})")
    try:
        out(f"torchenv: {lock(t)}")
    except UserError as exc:
        raise UserError(f"cannot lock {t.name} before building: {exc}; or {UNLOCKED_FIX}") from None
