"""Any UID, read-only root: give every Python of an image a user name and a writable HOME.

Kubernetes' `runAsUser`, OpenShift (an arbitrary UID with GID 0) and `docker run --user 12345`
run an image as a UID that has no passwd entry, and Docker then sets HOME=/; with a read-only root
filesystem only /tmp is writable, the image's own user's home included. torch, inductor, triton,
pip and the hub ask for the user's name (`getpass.getuser()` raises KeyError without a passwd
entry and without LOGNAME/USER) and write their caches under HOME.

The images import this module at the start of every interpreter (a line in the environment's
`torchenv.pth`), so it works whatever runs the process: the image's command, a replaced
entrypoint, `apptainer exec`, a Kubernetes `command`. It only ever adds to the environment:

- USER and LOGNAME = `uid<UID>`, when the UID has no passwd entry and none of the variables
  `getpass.getuser()` reads is set;
- HOME = `<tmp>/torchenv-home-<UID>` (mode 0700, owned by the UID, made on first use), when HOME is
  unset or not a writable directory. Every cache that follows HOME (~/.cache for pip, torch hub,
  XDG; ~/.triton; ~/.config) follows it there; inductor's cache goes to <tmp>/torchinductor_<user>.

It never raises: whatever goes wrong, the process starts as it would have without it. Standard
library only, and cheap (one passwd lookup and one access() when nothing needs doing).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, MutableMapping

# What getpass.getuser() reads, in its order, before the passwd database.
NAME_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")
HOME_PREFIX = "torchenv-home-"


def has_passwd_entry(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def writable_dir(path: str | None) -> bool:
    """A directory this process can create files in (False on a read-only filesystem)."""
    return bool(path and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK))


def private_dir(base: str, uid: int) -> str | None:
    """`base/torchenv-home-<uid>`, made if missing; None unless it is a real directory that
    belongs to `uid` and to nobody else (a shared /tmp, as under Apptainer, may hold another
    user's trap)."""
    path = os.path.join(base, f"{HOME_PREFIX}{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077:
        return path
    return None


def temp_bases(environ: MutableMapping[str, str]) -> list[str]:
    return [p for p in (environ.get("TMPDIR"), "/tmp", "/var/tmp") if p]


def writable_home(environ: MutableMapping[str, str], uid: int) -> str | None:
    """A private, writable HOME under the first writable temporary folder, or None."""
    import tempfile

    for base in temp_bases(environ):
        if not writable_dir(base):
            continue
        home = private_dir(base, uid)
        if home is None:  # taken by someone else: a fresh one for this process tree
            try:
                home = tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{uid}-", dir=base)
            except OSError:
                continue
        return home
    return None


def settle(
    environ: MutableMapping[str, str],
    uid: int,
    *,
    has_entry: Callable[[int], bool] = has_passwd_entry,
) -> dict[str, str]:
    """Add what `environ` lacks for `uid` (see the module docstring); returns what was added."""
    added: dict[str, str] = {}
    if not any(environ.get(name) for name in NAME_VARIABLES) and not has_entry(uid):
        added["USER"] = added["LOGNAME"] = f"uid{uid}"
    if not writable_dir(environ.get("HOME")):
        home = writable_home(environ, uid)
        if home is not None:
            added["HOME"] = home
    environ.update(added)
    return added


def at_startup() -> None:
    """The interpreter-start hook: settle os.environ for this process; never raises."""
    with contextlib.suppress(Exception):  # a start-up hook must never stop Python starting
        settle(os.environ, os.getuid())
