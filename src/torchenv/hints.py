"""Why something failed, in one line, and what to do: the one table of failure hints.

Builds (`invoke build`), locks (`invoke lock`) and the doctor read what a tool printed and turn it
into the likely cause plus the fix. Network failures come first: pip also prints "No matching
distribution" after them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from torchenv.errors import UserError

if TYPE_CHECKING:
    from torchenv.runner import Result

_UNREACHABLE = (
    ("CERTIFICATE_VERIFY_FAILED", "TLS verification failed"),
    ("invalid peer certificate", "TLS verification failed"),  # uv
    ("Name or service not known", "name resolution failed"),
    ("Temporary failure in name resolution", "name resolution failed"),
    ("NameResolutionError", "name resolution failed"),
    ("Could not resolve host", "name resolution failed"),
    ("ProxyError", "the proxy refused"),
    ("Connection refused", "connection refused"),
    ("Network is unreachable", "network unreachable"),
    ("Failed to establish a new connection", "no connection"),
    ("Max retries exceeded", "no connection"),
    ("timed out", "timed out"),
)


def unreachable_reason(output: str) -> str | None:
    """Why a resolver could not reach its index, from what it printed; None: it did reach it."""
    for needle, reason in _UNREACHABLE:
        if needle in output:
            return reason
    return None


PIP_REACH = "a mirror of the index (--index-url), a proxy (HTTPS_PROXY) or its CA bundle (PIP_CERT)"
CONDA_REACH = (
    "a channel mirror (channel_alias in .condarc), a proxy (HTTPS_PROXY) or its CA bundle "
    "(REQUESTS_CA_BUNDLE)"
)


def unreachable(what: str, reason: str, reach: str) -> UserError:
    """The one-line error of a resolver that could not reach `what`."""
    return UserError(
        f"{what} is unreachable from here ({reason}): lock where it is reachable, or reach it "
        f"through {reach}"
    )


_BUILDKIT_PREFIX = re.compile(r"^#\d+ \d+(?:\.\d+)? ")
_MISMATCH_REQ = re.compile(r"^\s*(?P<req>[A-Za-z0-9][A-Za-z0-9._-]*==\S+?)(?: from \S+.*)?:\s*$")
_EXPECTED = re.compile(r"Expected sha256\s+(?P<hex>[0-9a-f]{64})")
_GOT = re.compile(r"Got\s+(?P<hex>[0-9a-f]{64})")


def explain_hash_mismatch(pip_stderr: str) -> str | None:
    """One line naming each package whose download did not match its locked sha256.

    Reads pip's "THESE PACKAGES DO NOT MATCH THE HASHES" report (also inside BuildKit's
    `#12 3.4 `-prefixed build output); None when there is no such report.
    """
    lines = [_BUILDKIT_PREFIX.sub("", line) for line in pip_stderr.splitlines()]
    start = next((i for i, ln in enumerate(lines) if "DO NOT MATCH THE HASHES" in ln), None)
    if start is None:
        return None
    found: list[list[str]] = []  # [requirement, expected, got]
    for line in lines[start + 1 :]:
        if match := _MISMATCH_REQ.match(line):
            found.append([match["req"], "", ""])
        elif found and (match := _EXPECTED.search(line)):
            found[-1][1] = found[-1][1] or match["hex"]
        elif found and (match := _GOT.search(line)):
            found[-1][2] = match["hex"]
    if not found:
        return "a downloaded package does not match its locked sha256 (see pip's output above)"
    return hash_mismatch_message(found)


_UV_MISMATCH = re.compile(r"Hash mismatch for `(?P<req>[^`]+)`")
_UV_SHA = re.compile(r"sha256:(?P<hex>[0-9a-f]{64})")


def explain_uv_hash_mismatch(output: str) -> str | None:
    """One line for uv's `Hash mismatch for `name==version`` errors; None when there is none.

    Works on BuildKit's prefixed output too: after each requirement, the first sha256 that
    follows `Expected:` is the locked one and the first after `Computed:` the downloaded one.
    """
    found: list[list[str]] = []  # [requirement, expected, got]
    slot = 0
    for line in output.splitlines():
        if match := _UV_MISMATCH.search(line):
            found.append([match["req"], "", ""])
            slot = 0
        elif found and line.rstrip().endswith(("Expected:", "Computed:")):
            slot = 1 if line.rstrip().endswith("Expected:") else 2
        elif found and slot and (match := _UV_SHA.search(line)):
            found[-1][slot] = found[-1][slot] or match["hex"]
    return hash_mismatch_message(found) if found else None


def hash_mismatch_message(found: Iterable[Sequence[str]]) -> str:
    """The one line for [requirement, locked sha256, downloaded sha256] items (pip's or uv's)."""
    parts = [
        f"{req} (locked sha256 {expected[:12] or '?'}..., downloaded {got[:12] or '?'}...)"
        for req, expected, got in found
    ]
    return (
        f"hash mismatch for {', '.join(parts)}: the index serves a different file than the one "
        "locked, or the lock is damaged; check where the file comes from (mirror, proxy), then "
        "regenerate the lock with invoke lock"
    )


TLS_HINT = (
    "TLS verification failed: behind a TLS-inspecting proxy pass --ca-cert PATH "
    "(for example /etc/ssl/certs/ca-certificates.crt)"
)
NETWORK_HINT = (
    "cannot reach the package index ({reason}): set HTTPS_PROXY/NO_PROXY, use --index-url "
    "MIRROR, or --wheelhouse DIR for an offline build"
)
NO_SUCH_VERSION = (
    "the index has no such version: check the pins (invoke matrix), or point --index-url at a "
    "mirror that has them"
)
# What else a failed build printed -> the likely cause and what to do; the first match wins.
_BUILD_FAILURES = (
    ("No matching distribution found", NO_SUCH_VERSION),
    ("was not found in the provided package locations",  # uv, offline
     "the wheelhouse lacks a locked package: fill it with pip download --no-deps -d DIR -r "
     "envs/TARGET.pip.lock.txt"),
    ("was not found in the package registry", NO_SUCH_VERSION),  # uv
    ("buildx component is missing",
     "this docker client needs the buildx plugin for BuildKit: install it, or use engine "
     "20.10's own client /usr/bin/docker"),
)  # fmt: skip


_METADATA = re.compile(r"load metadata for (?P<image>\S+?):?\s*$", re.M)
_REGISTRY_FAILURES = (
    ("no such host", "name resolution failed"),
    ("dial tcp", "no connection"),
    ("i/o timeout", "timed out"),
    ("TLS handshake timeout", "timed out"),
    ("x509:", "TLS verification failed"),
    ("pull access denied", "access denied"),
    ("not found", "no such image or tag"),
    ("unauthorized", "access denied"),
)


def image_unavailable(output: str) -> str | None:
    """The hint for an image the build could not pull (the base, or micromamba's), else None."""
    match = _METADATA.search(output)
    if match is None or "failed to" not in output:
        return None
    tail = output[match.end() :]
    why = next((reason for needle, reason in _REGISTRY_FAILURES if needle in tail), "no registry")
    return image_hint(match["image"], why)


def gpu_start_failure(engine_error: str) -> bool:
    """Whether a container failed to start because the engine cannot give it GPUs."""
    return "capabilities: [[gpu]]" in engine_error or "nvidia" in engine_error.lower()


def image_fix(image: str) -> str:
    """What to do about an image that cannot be had: micromamba's, or a base image."""
    if "micromamba" in image:
        return (
            "pick an installer that does not need it (--installer uv or pip), or load it into "
            "the engine (docker load)"
        )
    return (
        "pass --base-image with an image you have locally (and --allow-unpinned-base when it "
        "has no digest), or load it into the engine (docker load)"
    )


def image_hint(image: str, why: str) -> str:
    """The one line for an image that cannot be pulled from its registry (`why`)."""
    return f"cannot pull {image} from its registry ({why}): {image_fix(image)}"


def diagnose_build(output: str) -> str | None:
    """The likely cause of a failed image build, from what it printed; None when unknown."""
    pulled = image_unavailable(output)
    if pulled:
        return pulled
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in output:
        return explain_hash_mismatch(output)
    if uv_mismatch := explain_uv_hash_mismatch(output):
        return uv_mismatch
    reason = unreachable_reason(output)
    if reason == "TLS verification failed":
        return TLS_HINT
    if reason:
        return NETWORK_HINT.format(reason=reason)
    return next((hint for needle, hint in _BUILD_FAILURES if needle in output), None)


def resolve_failure(
    result: Result, index: str | None, tool: str, what: str, last: str, default_index: str
) -> UserError:
    """The one line for a resolve that failed: the index out of reach (and what could help), else
    the resolver's own reason; an index's secret never in it."""
    from torchenv import credentials

    reason = unreachable_reason(result.stderr + "\n" + result.stdout)
    if reason:
        return unreachable(
            credentials.redacted(index) if index else default_index, reason, PIP_REACH
        )
    line = credentials.scrub(last, index) if index else last
    return UserError(f"{tool} could not resolve {what}: {credentials.redact_text(line)}")


def last_error(result: Result) -> str:
    """The line of a failed command's output that says why: its last error line, else its last line."""
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines()]
    errors = [ln for ln in lines if ln.startswith("ERROR") or "Error" in ln]
    return (errors or [ln for ln in lines if ln] or [f"exit status {result.returncode}"])[-1]
