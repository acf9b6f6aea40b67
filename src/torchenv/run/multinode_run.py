"""Running a multi-node plan (torchenv.run.multinode) on the engine: the network, one container per
node, their logs followed and prefixed, node 0's JSON report kept, the run bounded in time, and
every container and the network removed on success, failure, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchenv.engine.sdk import Container, DockerClient

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torchenv import hints
from torchenv.engine.containers import Group, follow
from torchenv.engine.sdk import CallFailed, sdk_errors
from torchenv.errors import UserError
from torchenv.run.multinode import (
    JOIN_TIMEOUT_S,
    MultiNodeRequest,
    Node,
    Plan,
    create_kwargs,
    plan,
    port_in_use,
    preflight,
)  # fmt: skip
from torchenv.run.suite import report_of


@dataclass
class Outcome:
    ok: bool
    message: str  # one line
    report: dict[str, Any] | None = None  # node 0's JSON report
    wall_s: float = 0.0


class _Logs:
    """Follows every node's output in threads; prints it prefixed; keeps each node's tail."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.tails: dict[int, deque[str]] = {}
        self.reports: dict[int, dict[str, Any]] = {}
        self.threads: list[threading.Thread] = []

    def follow(self, index: int, container: Container) -> None:
        self.tails[index] = deque(maxlen=60)
        self.threads.append(
            follow(container, lambda line: self._line(index, line.removesuffix("\n")))
        )

    def _line(self, index: int, line: str) -> None:
        report = report_of(line)
        if report is not None:
            self.reports[index] = report
            return
        with self.lock:
            self.tails[index].append(line)
            self.out(f"[node {index}] {line}")

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)


def explain_exit(index: int, code: int, tail: list[str], join_timeout: int) -> str:
    """One line for a node that ended badly, from its exit code and last lines."""
    text = "\n".join(tail)
    if "RendezvousTimeoutError" in text or "RendezvousClosedError" in text:
        return (
            f"node {index} gave up waiting for the other nodes at the rendezvous "
            f"(join timeout {join_timeout} s): a node never came"
        )
    if code in (137, 143) or code < 0:
        return f"node {index} died (exit {code}, killed) before the run finished"
    failed = [line for line in tail if line.startswith("FAIL ")]
    if failed:
        return f"node {index}: the suite failed: {' '.join(failed[0].split())}"
    last = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
    return f"node {index} exited with code {code}: {last[:300]}"


def execute(
    p: Plan,
    client: DockerClient,
    out: Callable[[str], None] = print,
    join_timeout: int = JOIN_TIMEOUT_S,
) -> Outcome:
    """Make the network and containers, start every node, follow them; remove everything at the
    end, whatever happens (engine.containers.Group: SIGTERM is handled like Ctrl-C)."""
    start = time.monotonic()
    with Group(client, image=p.image, target=p.target) as group:
        try:
            group.create_network(p.network, p.labels, role="the run's network")
            _create_nodes(p, group)
            logs = _Logs(out)
            with sdk_errors():
                for index, container in enumerate(group.containers):
                    _start(container, p.nodes[index])
                    logs.follow(index, container)
                outcome = _watch(p, group.containers, logs, join_timeout)
        except CallFailed as exc:
            # the engine went away (or refused) under the run: one line, then the cleanup
            raise UserError(f"the Docker engine failed during the run: {exc.text}") from None
    outcome.wall_s = round(time.monotonic() - start, 1)
    return outcome


def _create_nodes(p: Plan, group: Group) -> None:
    """One container per node in `group`, each on the run's network under its aliases."""
    for index, node in enumerate(p.nodes):
        kwargs = create_kwargs(p, node)
        with sdk_errors():
            endpoint = group.client.api.create_endpoint_config(aliases=list(node.aliases))
        kwargs["networking_config"] = {p.network: endpoint}
        group.create(kwargs, f"node {index} of {len(p.nodes)}")


def _start(container: Container, node: Node) -> None:
    try:
        with sdk_errors():
            container.start()
    except CallFailed as exc:
        text = exc.text
        if "port is already allocated" in text or "address already in use" in text:
            port = next(iter(node.publish.values()), "?")
            raise port_in_use(port) from None
        if hints.gpu_start_failure(text):
            raise UserError(
                f"the engine cannot give {node.hostname} its GPUs {','.join(node.gpu_ids)} "
                f"({text.strip()}): use fewer nodes or GPUs per node, or --no-gpu"
            ) from None
        raise UserError(f"the engine cannot start {node.hostname}: {text}") from None


def finished_key(stamp: str) -> str:
    """Docker's FinishedAt (RFC 3339, 0 to 9 fraction digits) in an order that compares right."""
    match = re.match(r"^(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?", stamp)
    if not match:
        return stamp
    return f"{match[1]}.{(match[2] or '').ljust(9, '0')}"


def _watch(p: Plan, made: list[Any], logs: _Logs, join_timeout: int) -> Outcome:
    """Poll the nodes until all exit 0 (pass), one fails (fail), or the deadline passes."""
    deadline = time.monotonic() + p.timeout_s
    while True:
        codes, ended = {}, {}
        for index, container in enumerate(made):
            container.reload()
            if container.status in ("exited", "dead"):
                state = container.attrs["State"]
                codes[index] = int(state.get("ExitCode", 1))
                ended[index] = finished_key(state.get("FinishedAt", ""))
        bad = {i: c for i, c in codes.items() if c != 0}
        if bad:
            index = min(bad, key=lambda i: (ended[i], i))  # the first to fail is the cause
            code = bad[index]
            logs.join(2)
            tail = list(logs.tails.get(index, []))
            return Outcome(
                False, explain_exit(index, code, tail, join_timeout), logs.reports.get(0)
            )
        if len(codes) == len(made):
            logs.join(5)
            report = logs.reports.get(0)
            if report is None:
                return Outcome(False, "node 0 finished but printed no JSON report", None)
            return Outcome(True, f"{len(made)} nodes x {p.nproc} processes passed", report)
        if time.monotonic() > deadline:
            running = [p.nodes[i].hostname for i in range(len(made)) if i not in codes]
            return Outcome(
                False,
                f"the run did not finish within {p.timeout_s:g} s (still running: "
                f"{', '.join(running)}): a node hung",
                logs.reports.get(0),
            )
        time.sleep(0.5)


def write_report(report: dict[str, Any], reports: Path, target: str) -> Path:
    from torchenv.files import write_atomic

    path = reports / f"smoke-{target}-multinode.json"
    write_atomic(path, json.dumps(report, indent=2) + "\n")
    return path


def smoke(
    req: MultiNodeRequest,
    client: DockerClient,
    reports: Path | None,
    out: Callable[[str], None] = print,
) -> Outcome:
    """`invoke smoke --nodes N`: check, run, write the report; UserError (one line) on failure."""
    p = plan(req)
    preflight(p, client, req.target)
    out(f"torchenv: {len(p.nodes)} nodes x {p.nproc} processes on network {p.network}")
    outcome = execute(p, client, out, req.join_timeout)
    if outcome.report is not None and reports is not None:
        out(f"torchenv: node 0's report: {write_report(outcome.report, reports, req.target.name)}")
    if not outcome.ok:
        raise UserError(f"{outcome.message} (after {outcome.wall_s:g} s)")
    out(f"torchenv: {outcome.message} in {outcome.wall_s:g} s")
    return outcome
