"""The tasks' options, each declared once (name, type, help, default, configurable), and `command`.

A task is declared with `command(name, options)`: its invoke signature (the flags, their help) is
made from the options, and its body gets one `Given` holding every value already typed. An option
marked `config=True` falls back to invoke's configuration (`torchenv.<name>` in an invoke.yaml, or
`INVOKE_TORCHENV_<NAME>`) when its flag is not given; a flag on the command line wins. Values from
the configuration are strings or YAML scalars: they are parsed as strictly as flags are (a boolean
is one of the words in `TRUE`/`FALSE`, anything else is one line).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit
from invoke.tasks import Task

from torchenv import matrix
from torchenv.credentials import redact_text
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.errors import Problems, UserError
from torchenv.matrix import DEFAULT_INSTALLER, INSTALLERS

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
# What each kind of option takes, for the one-line error of a bad value.
_WANTED = {bool: "true or false", int: "a whole number", Path: "a path", str: "a value"}


@dataclass(frozen=True)
class Option:
    name: str  # the Python name; the flag is --name with dashes
    help: str
    default: Any = None  # what the task gets when neither flag nor configuration says
    kind: type = str  # str, bool, int or Path
    config: bool = False  # configurable as torchenv.<name> / INVOKE_TORCHENV_<NAME>
    choices: tuple[str, ...] = ()
    low: int | None = None  # inclusive bounds of an int option
    high: int | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def full_help(self) -> str:
        default = {True: "on", False: "off", None: "none"}.get(self.default, self.default)
        text = f"{self.help} (default: {default}"
        if self.config:
            text += f"; configurable: INVOKE_TORCHENV_{self.name.upper()}"
        return text + ")"

    def parse(self, value: object, origin: str) -> Any:
        """The typed value, or one UserError line naming `origin` (the flag or config key)."""
        if value is None:
            return None
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE:
                return True
            if word in FALSE:
                return False
            raise UserError(
                f"{origin} {value!r} is not {_WANTED[bool]}: use one of {', '.join(TRUE + FALSE)}"
            )
        text = str(value)
        if self.kind is int:
            try:
                number = int(text.strip())
            except ValueError:
                raise UserError(f"{origin} {value!r} is not {_WANTED[int]}") from None
            low, high = self.low, self.high
            if (low is not None and number < low) or (high is not None and number > high):
                raise UserError(f"{origin} {number} is out of range: give {low}..{high}")
            return number
        if "\n" in text or "\r" in text or "\0" in text:
            raise UserError(f"{origin} holds a line break or NUL: give it on one line")
        if self.choices and text not in self.choices:
            raise UserError(
                f"{origin} {value!r} is unknown: choose one of {', '.join(self.choices)}"
            )
        if self.kind is Path:
            return Path(text) if text else None  # `--reports ""`: no folder at all
        return text


class Given(Mapping[str, Any]):
    """The typed values of one task call, by option name; `explicit` names the flags given."""

    def __init__(self, values: dict[str, Any], explicit: frozenset[str]) -> None:
        self._values = values
        self.explicit = explicit

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _invoke_default(opt: Option) -> Any:
    """The default invoke sees: False for a switch (a flag without value), None otherwise, so that
    'not given' is told apart from 'given the default'."""
    return False if opt.kind is bool else None


def resolve(options: Sequence[Option], raw: Mapping[str, Any], config: Mapping[str, Any]) -> Given:
    """Flags as invoke passed them, then the configuration, then each option's default."""
    values: dict[str, Any] = {}
    explicit = set()
    for opt in options:
        given = raw.get(opt.name, _invoke_default(opt))
        if given not in (None, False):
            values[opt.name] = opt.parse(given, opt.flag)
            explicit.add(opt.name)
        elif opt.config and config.get(opt.name) is not None:
            key = f"torchenv.{opt.name} (INVOKE_TORCHENV_{opt.name.upper()})"
            values[opt.name] = opt.parse(config[opt.name], key)
        else:
            values[opt.name] = opt.parse(opt.default, opt.flag) if opt.default is not None else None
            if opt.kind is bool and values[opt.name] is None:
                values[opt.name] = False
    return Given(values, frozenset(explicit))


def config_defaults(options: Sequence[Option]) -> dict[str, Any]:
    """The `torchenv` configuration namespace: every configurable option, None (unset).

    None, not the option's default: invoke casts an environment variable to the type of the value
    it overrides, and would read any word but '0' as true for a bool.
    """
    return {opt.name: None for opt in options if opt.config}


def signature(options: Sequence[Option]) -> inspect.Signature:
    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(
            opt.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_invoke_default(opt)
        )
        for opt in options
    ]
    return inspect.Signature(params)


def body(
    options: Sequence[Option],
    run: Callable[[Any, Given], None],
    doc: str | None,
    guard: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Callable[..., None]:
    """A function invoke can read as a task: its signature is the options', it calls `run` with
    the typed values, both inside `guard` (which turns a bad value into one line)."""

    def task_body(c: Any, **raw: Any) -> None:
        config = c.config.get("torchenv", {}) if hasattr(c, "config") else {}
        with guard():
            run(c, resolve(options, raw, config))

    task_body.__signature__ = signature(options)  # type: ignore[attr-defined]
    task_body.__doc__ = doc
    task_body.__name__ = run.__name__
    return task_body


def helps(options: Sequence[Option]) -> dict[str, str]:
    return {opt.name: opt.full_help() for opt in options}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A user mistake ends the task with its one-line message, never a traceback (and with every
    URL in it redacted: the last guard); SIGTERM (a cancelled CI job) ends it as Ctrl-C does, so
    that temporary folders are removed and the commands it started are stopped."""
    try:
        with sigterm_as_ctrl_c():
            yield
    except Problems as exc:  # several problems found at once: a line each
        for line in exc.lines[:-1]:
            print("error: " + redact_text(line), file=sys.stderr)
        raise Exit("error: " + redact_text(exc.lines[-1]), code=1) from None
    except UserError as exc:
        # one line, whatever a value held (a newline in a flag's value)
        raise Exit("error: " + redact_text(" ".join(str(exc).splitlines())), code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None
    except BrokenPipeError:  # `invoke ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise Exit(code=141) from None


def command(
    name: str, *options: Option, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[[Any, Given], None]], Task]:  # type: ignore[type-arg]
    """Declare a task: its flags are `options`; its body runs inside `user_errors`."""

    def declare(run: Callable[[Any, Given], None]) -> Task:  # type: ignore[type-arg]
        return Task(
            body(options, run, run.__doc__, user_errors), name=name, aliases=aliases,
            help=helps(options), auto_shortflags=False,
        )  # fmt: skip

    return declare


def after_dashes(c: Any) -> tuple[str, ...]:
    """The words after `--`: from the command line itself where it holds them (invoke joins
    them with spaces, which loses the quoting of `-k "a and b"`), else split from invoke's."""
    remainder = getattr(c, "remainder", "") or ""
    if "--" in sys.argv:
        tail = sys.argv[sys.argv.index("--") + 1 :]
        if " ".join(tail) == remainder:
            return tuple(tail)
    try:
        return tuple(shlex.split(remainder))
    except ValueError as exc:
        raise UserError(f"the arguments after -- cannot be split ({exc})") from None


def target_of(name: str | None, root: Path) -> matrix.Target:
    """--target's target of the project at `root` (each task finds its root once, passes it)."""
    if not name:
        raise UserError(f"--target is required: choose one of {', '.join(matrix.names(root))}")
    return matrix.get(name, root)


def targets_of(name: str | None, root: Path) -> list[matrix.Target]:
    """--target's target, or every target when it is not given."""
    return [target_of(name, root)] if name else list(matrix.load(root).values())


def target_names() -> str:
    """The target names for help texts; a broken targets.toml must not break `invoke --list`
    (the task itself then fails with the matrix's one-line error)."""
    try:
        return ", ".join(matrix.names())
    except UserError:
        return "see `invoke matrix`"


MAX_ID = 2**31 - 1  # the largest UID/GID every tool in the image (useradd, tar, Docker) takes

# The options, each once. Tasks pick theirs by name below.
TARGET = Option("target", f"the target: {target_names()}")
TARGET_ALL = Option("target", "only this target (default: all targets)")
FLAVOR = Option("flavor", "runtime or dev (adds ipykernel, JupyterLab, TensorBoard, git)",
                "runtime", choices=matrix.FLAVORS)  # fmt: skip
IGNORE_ARCH = Option(
    "ignore_arch", "hand the GPUs to an image that has no kernels for them", False, bool
)
DRY_RUN = Option("dry_run", "print the exact commands without running them", False, bool)
NO_GPU = Option(
    "no_gpu", "do not request GPUs for CUDA targets (default: when the engine can)", False, bool
)
IMAGE = Option("image", "use this image instead of the target's (default: the matrix's name)")
REPORTS = Option("reports", "folder for the reports", "reports", Path)
PORT = Option("port", "the port on 127.0.0.1 (only) to serve on", 8888, int, low=1024,
              high=65535)  # fmt: skip
UID = Option("uid", "UID of the image's user", 1000, int, low=1, high=MAX_ID)
GID = Option("gid", "GID of the image's user", 1000, int, low=1, high=MAX_ID)
BUILD_CONFIGURABLE = (
    Option("installer", "uv, pip (the pip lock into a venv) or conda (micromamba)",
           DEFAULT_INSTALLER, config=True, choices=INSTALLERS),
    Option("ca_cert", "a CA bundle for a TLS-inspecting proxy, passed as a BuildKit secret",
           kind=Path, config=True),
    Option("wheelhouse", "a folder of wheels: build offline from it", kind=Path, config=True),
    Option("base_image", "replace the matrix's digest-pinned base image", config=True),
    Option("allow_unpinned_base", "accept a base image given by tag alone", False, bool,
           config=True),
    Option("index_url", "a mirror of the target's pip index", config=True),
    Option("conda_channel_alias", "a conda channel mirror, as micromamba's channel alias",
           config=True),
    Option("registry", "HOST[:PORT]/NAMESPACE: pull the image of this content key from it "
           "instead of building; else build with its cache and push (docker login first)",
           config=True),
    Option("no_push", "with --registry: pull and use its cache, push nothing", False, bool,
           config=True),
)  # fmt: skip
SMOKE_OPTIONS = (
    Option("no_gpu", "never request GPUs (default: for CUDA targets when the engine can)",
           False, bool),
    Option("require_gpu", "request GPUs and fail when the container sees none", False, bool),
    Option("quick", "the suite's quick mode", False, bool),
    REPORTS, IMAGE,
    Option("args", "more arguments for the suite, e.g. '--only mlp,cnn'", ""),
    Option("timeout", "stop the suite after this many seconds, exit 124 (default: the target's "
           "smoke_timeout_s)"),
    IGNORE_ARCH,
    Option("nodes", "multi-node DDP: this many containers on a private network, torchrun",
           kind=int, low=1, high=256),
    Option("nproc_per_node", "with --nodes: processes (ranks) per node", 1, int, low=1, high=64),
    Option("rdzv_port", "with --nodes: node 0's rendezvous port, also on 127.0.0.1", 29400, int,
           low=1024, high=65535),
)  # fmt: skip
RESOLVER = Option("resolver", "uv or pip (default: uv where it is installed, as with the kit)",
                  choices=("uv", "pip"), config=True)  # fmt: skip
CONFIGURABLE = (*BUILD_CONFIGURABLE, RESOLVER)
