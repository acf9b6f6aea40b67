"""Every task's --dry-run with hostile values (issue 20): spaces, quotes, newlines, `;`, `..`, and
credentials (`user:S3CRET@`, `?token=S3CRET`) in every URL field. Each run either succeeds or
ends in one line, never a traceback, and the secret is in no output.

The tasks run through invoke as subprocesses (as a user runs them), from a folder deep in a
temporary directory, so a relative path such as `../../x` stays inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support import REPO

ROOT = REPO
SECRET = "S3CRET"
DIGEST_REF = f"r.example/o/cuda13@sha256:{'a' * 64}"

HOSTILE = [
    "a b",
    "it's",
    'say "hi"',
    "line1\nline2",
    "x; touch pwned",
    "../../x",
    "$(touch pwned)",
]
URLS = [
    f"https://user:{SECRET}@mirror.example/simple",
    f"https://mirror.example/simple?token={SECRET}",
    f"https://user:{SECRET}@mirror.example:8443/simple?token={SECRET}#{SECRET}",
    f"http://user:{SECRET}@mirror.example/a b",
    f"ftp://user:{SECRET}@mirror.example/simple",
    f"https://user:{SECRET}@mirror.example:99999/simple",
    f"https://mirror.example/simple?token={SECRET}\nX",
    f"mirror.example/simple?token={SECRET}",
]

# task, its fixed arguments, the flags given hostile values, the flags given URLs (the fields
# where a URL or a registry goes; k8s's --image goes into a file for a cluster)
TASKS: list[tuple[str, list[str], list[str], list[str]]] = [
    ("build", ["--target", "cuda13", "--dry-run"],
     ["--target", "--flavor", "--installer", "--ca-cert", "--wheelhouse", "--base-image",
      "--uid", "--gid", "--tag"],
     ["--index-url", "--conda-channel-alias"]),
    ("lock", ["--target", "cuda13", "--dry-run"], ["--target", "--installer"], ["--index-url"]),
    ("smoke", ["--target", "cpu", "--dry-run"],
     ["--target", "--flavor", "--image", "--args", "--reports", "--timeout", "--nodes"], []),
    ("shell", ["--target", "cpu", "--dry-run"], ["--target", "--flavor"], []),
    ("export", ["--target", "cpu", "--dry-run"],
     ["--target", "--format", "--out", "--flavor", "--image"], []),
    ("push", ["--target", "cpu", "--registry", "localhost:5000/ns", "--dry-run"],
     ["--target", "--registry", "--flavor"], ["--registry"]),
    ("k8s", ["--target", "cpu", "--image", DIGEST_REF],
     ["--target", "--nodes", "--gpus-per-node", "--image", "--flavor"], ["--image"]),
]  # fmt: skip


def cases() -> list[tuple[str, list[str]]]:
    found = []
    for task, fixed, flags, url_flags in TASKS:
        for flag, values in [*((f, HOSTILE) for f in flags), *((f, URLS) for f in url_flags)]:
            for value in values:
                args = list(fixed)
                if flag in args:  # replace the fixed value
                    args[args.index(flag) + 1] = value
                else:
                    args += [flag, value]
                found.append((task, args))
    return found


def run(task: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), task, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_every_dry_run_with_hostile_values_is_one_line_and_keeps_the_secret(tmp_path: Path):
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    todo = cases()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: run(case[0], case[1], cwd), todo))
    problems = []
    for (task, args), done in zip(todo, results, strict=True):
        both = done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        why = []
        if "Traceback" in both:
            why.append("a traceback")
        if SECRET in both:
            why.append("the secret")
        if done.returncode != 0 and len(errors) != 1:
            why.append(f"{len(errors)} lines of errors")
        if done.returncode == 0 and errors:
            why.append("exit 0 with error output")
        if why:
            problems.append(f"invoke {task} {args!r}: {', '.join(why)}: {both[-600:]!r}")
    assert not list(tmp_path.rglob("pwned")), "a value ran as a command"
    assert problems == [], "\n".join(problems)
    assert len(todo) > 150
