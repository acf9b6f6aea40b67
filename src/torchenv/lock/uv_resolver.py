"""Resolving a lock with uv (`uv pip compile`), the default resolver; pip's is torchenv.lock.pip_resolver.

uv resolves for the image's platform as given (`--python-platform x86_64-manylinux_2_28`,
`--python-version`), so, unlike pip, it needs no host of the image's kind: markers are evaluated
for the image. Its output is a requirements file with every package pinned and `--hash=sha256:`
for each of that version's files on the index; the image installs it with `--require-hashes`
(any of a package's hashes matches only that package's own files).

As with pip, the user's configuration stays out (`--no-config`, and no UV_* variable but those
that say how to reach the network), and an index URL with a secret goes to uv by the environment
(UV_INDEX_URL), never on a command line.

One index serves a resolve, except where a target's torch family lives on an index of its own
(PyTorch's, for cpu, cu118, cu128) and a project's dependency needs torch: then the requirements
go to uv as a throwaway project (`pinned_project`) whose [tool.uv.sources] take the torch family,
at its locked versions, from that index, declared `explicit` (it serves nothing else), and
everything else comes from the default index. No second index can then serve a package of the
same name. The index's user and password go by UV_INDEX_TARGET_USERNAME/_PASSWORD.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from torchenv.credentials import index_source
from torchenv.errors import UserError
from torchenv.hints import last_error, resolve_failure
from torchenv.lock.lockfile import RESOLVE_TIMEOUT, SHA256_HEX, LockedPackage
from torchenv.project.wheel import backend_error
from torchenv.runner import Result, Runner, uv_executable

# glibc 2.28 or newer on x86_64, as pip's platform list (torchenv.lock.pip_resolver.PIP_PLATFORMS) says.
PLATFORM = "x86_64-manylinux_2_28"
# uv variables that only say how to reach the network (or where its cache is); the rest go.
UV_ENV_KEEP = frozenset(
    {"UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_CACHE_DIR", "UV_NO_CACHE",
     "UV_INSECURE_HOST", "UV_CONCURRENT_DOWNLOADS"}
)  # fmt: skip
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<rest>.*)$")
_HASH = re.compile(r"--hash=sha256:(\S+)")


def executable() -> str | None:
    """The host's uv (torchenv.runner.uv_executable)."""
    return uv_executable()


def clean_env(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """`env -u ...` for every UV_* variable that is not about the network, and what is set."""
    environ = os.environ if environ is None else environ
    drop = sorted(k for k in environ if k.startswith("UV_") and k not in UV_ENV_KEEP)
    prefix = ["env", *(arg for k in drop for arg in ("-u", k))] if drop else []
    return prefix, {"UV_NO_PROGRESS": "1"}


def index_env(
    index: str | None, env: dict[str, str], shown: bool = False
) -> tuple[str | None, dict[str, str]]:
    """torchenv.credentials.index_source for uv: an index URL with a secret goes by UV_INDEX_URL."""
    on_line, env = index_source(index, env, shown)
    if on_line is None and "PIP_INDEX_URL" in env:
        env = {**env, "UV_INDEX_URL": env["PIP_INDEX_URL"]}
        del env["PIP_INDEX_URL"]
    return on_line, env


def invocation(
    uv: str,
    python: str,
    index: str | None,
    requirements: Path,
    out: Path,
    constraints: Path | None = None,
    env: Mapping[str, str] | None = None,
    shown: bool = False,
    sdists: bool = False,
    find_links: Path | None = None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """(`env -u` prefix, argv, environment) of one `uv pip compile`, as it runs and as --dry-run
    shows it (`shown`: a secret index redacted): the user's uv settings kept out (the prefix
    unsets them), a secret index by variable."""
    prefix, env_vars = clean_env()
    on_line, env_vars = index_env(index, {**env_vars, **(env or {})}, shown)
    argv = command(uv, python, on_line, requirements, out, constraints, sdists)
    if find_links is not None:
        argv[-1:-1] = ["--find-links", str(find_links)]
    return prefix, argv, env_vars


def command(
    uv: str,
    python: str,
    index_url: str | None,
    requirements: Path,
    out: Path,
    constraints: Path | None = None,
    sdists: bool = False,
) -> list[str]:
    """`uv pip compile` for the image's platform; wheels only, unless `sdists` (the project's
    layer: a package with no wheel for the image is then locked by its sdist's hash, its
    metadata built here, the package itself built in the image)."""
    argv = [
        uv, "pip", "compile", "--no-config", "--quiet", "--generate-hashes", "--no-header",
        "--no-annotate", *([] if sdists else ["--only-binary", ":all:"]),
        "--python-version", python, "--python-platform", PLATFORM, "--output-file", str(out),
    ]  # fmt: skip
    if index_url:
        argv += ["--index-url", index_url]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    return argv + [str(requirements)]


def parse(text: str) -> list[LockedPackage]:
    """The packages of `uv pip compile --generate-hashes` output, each with its sha256s."""
    joined = re.sub(r"\\\n\s*", " ", text)
    packages = []
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise UserError(f"uv wrote a line torchenv cannot read as a pin: {line[:80]!r}")
        hashes = tuple(_HASH.findall(match["rest"]))
        name, version = canonicalize_name(match["name"]), match["version"]
        if not hashes or not all(SHA256_HEX.match(h) for h in hashes):
            raise UserError(f"the index gave no sha256 for {name} {version}: cannot lock it")
        packages.append(LockedPackage(name, version, tuple(sorted(hashes))))
    return sorted(packages, key=lambda p: p.name)


FAMILY_INDEX = "target"  # the name of the family's index in `pinned_project`


def pinned_project(requirements: str, family_index: str, family: Mapping[str, str]) -> str:
    """A pyproject.toml asking for `requirements` plus the torch family at its versions, the
    family taken from `family_index` alone (an explicit index: it serves nothing else)."""
    wanted = [ln.strip() for ln in requirements.splitlines() if ln.strip()]
    wanted += [f"{name}=={version}" for name, version in sorted(family.items())]
    sources = "".join(f'{name} = {{ index = "{FAMILY_INDEX}" }}\n' for name in sorted(family))
    return (
        '[project]\nname = "torchenv-lock"\nversion = "0"\n'
        f"dependencies = {json.dumps(wanted)}\n\n[tool.uv.sources]\n{sources}\n"
        f'[[tool.uv.index]]\nname = "{FAMILY_INDEX}"\nurl = {json.dumps(family_index)}\n'
        "explicit = true\n"
    )


def _family_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(the URL without its user and password, uv's variables for them)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise UserError(
            "the torch family's index URL carries a query or fragment, which uv cannot take as "
            "an index's credentials: give user:password@ in the URL, or lock with --resolver pip"
        )
    if not (parts.username or parts.password):
        return url, {}
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    prefix = f"UV_INDEX_{FAMILY_INDEX.upper()}_"
    env = {f"{prefix}USERNAME": unquote(parts.username or "")}
    if parts.password:
        env[f"{prefix}PASSWORD"] = unquote(parts.password)
    return urlunsplit(parts._replace(netloc=netloc)), env


def report(
    python: str,
    index: str | None,
    requirements: str,
    runner: Runner,
    constraints: str = "",
    what: str = "the pins",
    family: tuple[str, Mapping[str, str]] | None = None,
    preferred: str = "",
    sdists: bool = False,
    find_links: Path | None = None,
) -> list[LockedPackage]:
    """torchenv.lock.resolvers.report through `uv pip compile`; `family`: (the index, {name: version})
    of a torch family that only that index may serve (see `pinned_project`); `preferred`: a
    lock's text whose versions uv keeps where it can (its output file, seeded)."""
    uv = executable()
    if uv is None:
        raise UserError("uv is not installed here: pip install uv, or lock with --resolver pip")
    with tempfile.TemporaryDirectory(prefix="torchenv-lock-") as tmp:
        req_file, out = Path(tmp, "requirements.in"), Path(tmp, "requirements.txt")
        family_env: dict[str, str] = {}
        if family is None:
            req_file.write_text(requirements)
        else:
            url, family_env = _family_credentials(family[0])
            req_file = Path(tmp, "pyproject.toml")
            req_file.write_text(pinned_project(requirements, url, family[1]))
        held = None
        if constraints:
            held = Path(tmp, "constraints.txt")
            held.write_text(constraints)
        if preferred:
            out.write_text(preferred)  # uv keeps an output file's versions where it can
        prefix, argv, env_vars = invocation(
            uv, python, index, req_file, out, held, family_env, sdists=sdists,
            find_links=find_links,
        )  # fmt: skip
        # uv's own temporary files (an sdist build's uv-setuptools-*.lock) go with this folder
        result = runner(prefix + argv, timeout=RESOLVE_TIMEOUT, env={**env_vars, "TMPDIR": tmp})
        if not result.ok:
            raise resolve_failure(
                result, index, "uv", what, error_line(result), "the default index"
            )
        return parse(out.read_text())


def error_line(result: Result) -> str:
    """uv's reason: its `error:` line with the explanation that follows, as one line."""
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    if start is None:
        return last_error(result)
    text = " ".join(ln.lstrip("╰─▶ ").strip() for ln in lines[start : start + 6])
    if "Failed to build" in result.stderr:  # an sdist's build: its own error, not uv's frame
        first = lines[start].removeprefix("error: ")
        return f"{first}: {backend_error(result.stderr)}"
    return text.removeprefix("error: ")
