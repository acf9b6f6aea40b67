"""Index credentials kept out of images: `--index-url https://USER:TOKEN@mirror/simple`.

A build argument shows in `docker history` and in the image config, so a URL with credentials
is split: the URL without them stays a build argument (it keys the build cache and says in the
history which mirror was used), and the whole URL travels as the BuildKit secret `index_url`, a
file that exists only for the install step (docker/install-env.sh reads it; pip hides the
password in what it prints). The secret's source is a file of this user's only (0600, in a 0700
folder), removed when the build ends, whatever happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from torchenv.errors import UserError

SECRET_ID = "index_url"


@dataclass(frozen=True)
class IndexUrl:
    public: str  # the URL without user and password
    full: str  # as given

    @property
    def has_credentials(self) -> bool:
        return self.public != self.full


def parse_index_url(url: str, flag: str = "--index-url") -> IndexUrl:
    """Split an index URL; UserError (one line) for anything that is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises for a port that is not a number
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{flag} {url!r} is not an http(s) URL: e.g. https://mirror.example/simple")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port is not None else "")
    public = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return IndexUrl(
        public=public if parts.username or parts.password else url.strip(), full=url.strip()
    )


def refuse_credentials(url: str, flag: str) -> None:
    """For URLs that can only be build arguments: credentials there would land in the history."""
    if parse_index_url(url, flag).has_credentials:
        raise UserError(
            f"{flag} holds a user or password, which would be stored in the image's history: "
            "give a URL without credentials"
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
