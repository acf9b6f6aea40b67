"""Env files (envs/<target>.yml): render them from the matrix and parse them back.

The format is the subset of conda's environment.yml that torchenv writes: a name, channels, and
dependencies holding `python=X.Y`, `pip` and a `pip:` list (an optional `--index-url URL` line,
then `name==version` pins). `conda env create -f` reads it as is.

This module is standard library only and also runs as a script inside the image build
(`python -m torchbuild.envfile pip-args envs/cuda13.yml`), so that the pip installer and the conda installer
read the same file through the same parser.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)$")
_PYTHON = re.compile(r"^python=(\d+\.\d+)$")
_TOP_KEYS = ("name", "channels", "dependencies")


class EnvFileError(ValueError):
    """A malformed or unreadable env file: one line that names the file (and line) and the fix.

    torchbuild depends on nothing of the host kit: torchenv turns this into its UserError in one
    place (torchenv.matrix.Target.read_env).
    """


@dataclass(frozen=True)
class EnvFile:
    name: str
    channels: tuple[str, ...]
    python: str
    index_url: str | None
    pins: dict[str, str] = field(default_factory=dict)  # name -> version, in file order

    def pip_args(self) -> list[str]:
        """pip install arguments for the pins: the index (if any) then name==version."""
        args = ["--index-url", self.index_url] if self.index_url else []
        return args + [f"{name}=={version}" for name, version in self.pins.items()]


def render(
    *, name: str, python: str, index_url: str | None, pins: dict[str, str], header: str
) -> str:
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"name: {name}", "channels:", "  - conda-forge", "  - nodefaults", "dependencies:"]
    lines += [f"  - python={python}", "  - pip", "  - pip:"]
    if index_url:
        lines.append(f"      - --index-url {index_url}")
    lines += [f"      - {pkg}=={version}" for pkg, version in pins.items()]
    return "\n".join(lines) + "\n"


def parse_text(text: str, source: str) -> EnvFile:
    """Parse env file text; EnvFileError('<source>:<line>: what is wrong; what to do')."""
    name = None
    channels: list[str] = []
    python = None
    index_url = None
    pins: dict[str, str] = {}
    section = None  # "channels" | "dependencies" | "pip"
    pip_indent = 0  # indentation of the "- pip:" item; deeper items are pip entries

    def fail(lineno: int, what: str) -> EnvFileError:
        return EnvFileError(f"{source}:{lineno}: {what}; regenerate it with `invoke generate`")

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise fail(lineno, "tab in indentation (YAML needs spaces)")
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            key, sep, value = body.partition(":")
            if not sep or key not in _TOP_KEYS:
                raise fail(lineno, f"expected one of {', '.join(_TOP_KEYS)}, got {body!r}")
            section = key if key != "name" else None
            if key == "name":
                name = value.strip()
            elif value.strip():
                raise fail(lineno, f"{key} must be a list on the following lines")
            continue
        if not body.startswith("- "):
            raise fail(lineno, f"expected a list item ('- ...'), got {body!r}")
        item = body[2:].strip()
        if section == "channels":
            channels.append(item)
        elif section in ("dependencies", "pip") and item == "pip:":
            section, pip_indent = "pip", indent
        elif section == "pip" and indent > pip_indent:
            if item.startswith("--index-url"):
                parts = item.split()
                if len(parts) != 2 or index_url is not None:
                    raise fail(lineno, "expected one '--index-url URL'")
                index_url = parts[1]
            elif match := _PIN.match(item):
                pins[match.group(1).lower()] = match.group(2)
            else:
                raise fail(lineno, f"pip entry {item!r} is not an exact pin (name==version)")
        elif section in ("dependencies", "pip"):
            section = "dependencies"
            if match := _PYTHON.match(item):
                python = match.group(1)
            elif item != "pip":
                raise fail(lineno, f"unexpected dependency {item!r} (expected python=X.Y, pip)")
        else:
            raise fail(lineno, "list item outside channels/dependencies")
    missing = [
        what for what, value in (("name", name), ("python=X.Y", python), ("pip pins", pins))
        if not value
    ]  # fmt: skip
    if missing:
        raise EnvFileError(
            f"{source}: missing {', '.join(missing)}; regenerate with `invoke generate`"
        )
    # `missing` above made name and python non-empty strings
    return EnvFile(cast(str, name), tuple(channels), cast(str, python), index_url, pins)


def parse(path: str | Path) -> EnvFile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EnvFileError(
            f"{path}: cannot read the env file ({exc.strerror}); run `invoke generate`"
        ) from None
    return parse_text(text, str(path))


def main(argv: list[str]) -> int:
    """Inside the build: `python -m torchbuild.envfile pip-args FILE` prints one pip argument per
    line; `... python FILE` prints the Python version."""
    if len(argv) != 2 or argv[0] not in ("pip-args", "python"):
        print("usage: python -m torchbuild.envfile pip-args|python ENV_FILE", file=sys.stderr)
        return 2
    try:
        env = parse(argv[1])
    except EnvFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(env.pip_args()) if argv[0] == "pip-args" else env.python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
