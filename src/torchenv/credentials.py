"""Index credentials kept out of images: `--index-url https://USER:TOKEN@mirror/simple`.

A build argument shows in `docker history` and in the image config, so a URL with credentials
is split: the URL without them stays a build argument (it keys the build cache and says in the
history which mirror was used), and the whole URL travels as the BuildKit secret `index_url`, a
file that exists only for the install step (the kit's install-env.sh reads it; pip hides the
password in what it prints). The secret's source is a file of this user's only (0600, in a 0700
folder), removed when the build ends, whatever happens.

Anything in a URL but its scheme, host, port and path is a secret: a user and password, and a
query or fragment (`?token=...`). `public_url` keeps only the public part; every URL torchenv
prints, labels or puts in an error message goes through it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from torchenv.errors import UserError

SECRET_ID = "index_url"


# scp-like git remotes: [user@]host:path (no scheme, no slash before the colon)
_SCP_LIKE = re.compile(r"^(?:[^@/]*@)?(?P<host>[^@/:]+):(?P<path>(?!//).*)$")


def public_url(url: str) -> str:
    """The public part of a URL: scheme, host, port and path; user, password, query and fragment
    (where tokens live) dropped. An scp-like remote (`git@host:o/r.git`) keeps `host:path`.
    Text that is no URL (a local path) keeps everything after a last `@`, so no `user:pass@`
    survives."""
    text = url.strip()
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if scp:
            return f"{scp['host']}:{_no_secrets(scp['path'])}"
        return _no_secrets(text.rsplit("@", 1)[-1])
    scheme, rest = text.split("://", 1)
    authority, slash, path = _no_secrets(rest).partition("/")
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"


# What a fragment may keep: pip's names for a VCS URL's package and folder, no secret there.
_PUBLIC_FRAGMENT = re.compile(r"^(?:(?:egg|subdirectory)=[\w.+/-]+&?)+$")


def _no_secrets(path: str) -> str:
    """A URL's path without its query; its fragment too, unless it only says which package and
    which folder of a repository (`#subdirectory=PythonAPI`, `#egg=pycocotools`)."""
    base, _, fragment = path.split("?", 1)[0].partition("#")
    return f"{base}#{fragment}" if fragment and _PUBLIC_FRAGMENT.match(fragment) else base


def has_secret(url: str) -> bool:
    """Whether a URL holds more than its public part (a user, password, query or fragment)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return True
    authority = text.split("://", 1)[-1].split("/", 1)[0]
    return bool(parts.username or parts.password or parts.query or parts.fragment) or (
        "@" in authority
    )


def scrub(text: str, url: str) -> str:
    """`text` (a tool's output) with the secret parts of `url` replaced by `***`: the whole URL,
    its password, user, query and fragment."""
    full = url.strip()
    try:
        parts = urlsplit(full)
        pieces = [full, parts.password, parts.query, parts.fragment]
        if parts.password:
            pieces.append(parts.username)
    except ValueError:
        pieces = [full]
    for piece in sorted((p for p in pieces if p and len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "***" if piece != full else redacted(full))
    return text


@dataclass(frozen=True)
class IndexUrl:
    public: str  # scheme, host, port and path only (public_url)
    full: str  # as given
    has_credentials: bool = False  # a user, password, query or fragment: the full URL is secret


def parse_index_url(url: str, flag: str = "--index-url") -> IndexUrl:
    """Split an index URL; UserError (one line, the URL's public part only) for anything that is
    not an http(s) URL."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # raises for a port that is not a number  # noqa: B018
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 for ch in text)
    ):
        shown = public_url(text).replace("\n", " ")
        raise UserError(
            f"{flag} {shown!r} is not an http(s) URL: e.g. https://mirror.example/simple"
        )
    secret = has_secret(text)
    return IndexUrl(public=public_url(text) if secret else text, full=text, has_credentials=secret)


def redacted(url: str) -> str:
    """How a URL with credentials is shown: `https://user:***@host/path` (no query, no
    password), `https://***@host/path` for a user alone (often a token); a URL without them as
    it is."""
    text = url.strip()
    if not has_secret(text):
        return text
    try:
        parts = urlsplit(text)
        user, password = parts.username, parts.password
    except ValueError:
        user = password = None
    public = public_url(text)
    if (user or password) and "://" in public:
        scheme, rest = public.split("://", 1)
        # a user with no password may be a token itself (https://TOKEN@host): not shown
        return f"{scheme}://{user}:***@{rest}" if user and password else f"{scheme}://***@{rest}"
    return public


# A URL anywhere in a text: a scheme (git+https:// too), then everything up to a space or quote.
_ANY_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")
# user:password@host without a scheme (a registry, a proxy): the part before @ goes.
_BARE_USERINFO = re.compile(
    r"(?<![\w/:@.-])[^\s/@:'\"]+:[^\s/@'\"]+@(?=[a-z0-9.-]+\.[a-z]{2,}|localhost)", re.I
)


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (`redacted`: no password, query or fragment) and
    every bare `user:password@host` reduced to `***@host`: the one redaction for what the kit
    prints, logs or passes on (errors, dry runs, requirement lines). Idempotent."""
    text = _ANY_URL.sub(lambda m: redacted(m.group(0)), text)
    return _BARE_USERINFO.sub("***@", text)


def shown(text: str, limit: int = 160) -> str:
    """A line from a user's file as an error may show it: redacted, one line, printable, cut
    at `limit` characters."""
    line = redact_text(" ".join(str(text).split()))
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def refuse_credentials(url: str, flag: str) -> None:
    """For URLs that can only be build arguments: credentials there would land in the history."""
    if parse_index_url(url, flag).has_credentials:
        raise UserError(
            f"{flag} holds a user or password or a query string, which would be stored in "
            "the image's history: give a URL without credentials"
        )


class SecretFile:
    """The full index URL in a private temporary file for the build's --secret; removed on exit."""

    def __init__(self, index: IndexUrl | None) -> None:
        self.index = index
        self.folder: str | None = None
        self.path: Path | None = None

    def __enter__(self) -> Path | None:
        if self.index is None or not self.index.has_credentials:
            return None
        self.folder = tempfile.mkdtemp(prefix="torchenv-secret-")
        self.path = Path(self.folder) / SECRET_ID
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.index.full)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


# The proxy variables torchenv honours, defined once: the doctor reports them (upper case, as
# users set them); builds pass each one that is set, in either case, by name only
# (`--build-arg NAME`): the value comes from the environment, and Docker keeps these predefined
# proxy arguments out of the image history.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
BUILD_PROXY_VARS = (*PROXY_VARS, *(name.lower() for name in PROXY_VARS))


def index_source(
    index: str | None, env: dict[str, str], shown: bool = False
) -> tuple[str | None, dict[str, str]]:
    """(the --index-url for pip's command line, the environment): an index URL with a secret
    (a user, password, query or fragment) never goes on a command line, which every local user
    can read in /proc: it goes to pip as PIP_INDEX_URL (`shown`: redacted, for --dry-run)."""
    if not index or not parse_index_url(index).has_credentials:
        return index, env
    return None, {**env, "PIP_INDEX_URL": redacted(index) if shown else index}
