"""Multi-node DDP between containers: `invoke smoke --target T --nodes N [--nproc-per-node P]`.

One container per node, on a private user-defined network made for the run (its DNS resolves the
nodes' names; the default bridge has none). Every node runs the same command a Kubernetes pod of
`invoke k8s` runs (`node_command`): torchrun with c10d rendezvous at node 0, whose
`JOB_COMPLETION_INDEX` is 0, and the smoke suite's env, expect and ddp checks; under torchrun the
ddp check joins the job's process group, trains across every rank and compares the world size,
the hosts and the parameters of every rank.

The nodes are named as an Indexed Job's pods are: hostname `<job>-<i>`, reachable from the others
as `<job>-<i>.<service>` (a network alias). Node 0's rendezvous port is also published on this
host's loopback, 127.0.0.1:<rdzv port> (so a port already taken there ends the run before it
starts, with one line). Root is read-only with /tmp a tmpfs, and HOME and every cache point under
/tmp, as in the pod spec.

A node that never joins ends the run when node 0's rendezvous times out (`JOIN_TIMEOUT_S`); a node
that dies ends it at once; the whole run is bounded by `RUN_TIMEOUT_S`. Each ends with one line.
Every container and the network carry `io.torchenv.managed=true` and `io.torchenv.multinode=<run
id>`, and are removed on success, on failure, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container
    from docker.models.networks import Network

import errno
import json
import re
import secrets
import shlex
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import hints
from torchenv.errors import UserError
from torchenv.interrupts import sigterm_as_ctrl_c
from torchenv.labels import MANAGED, role_key
from torchenv.matrix import Target

MANAGED_LABEL = MANAGED
MULTINODE_LABEL = role_key("multinode")  # its value is the run id, not the target
RDZV_PORT = 29400
JOIN_TIMEOUT_S = 60  # node 0 waits this long for the others at the rendezvous
RUN_TIMEOUT_S = 600  # the whole run, start to last exit
STOP_GRACE_S = 5
# What one rank needs (torch, gloo, the small DDP model), rounded up from measuring it here.
PROC_MEMORY_BYTES = 1 << 30
TMP_SIZE = "2g"
SHM_SIZE = "1g"
CHECKS = "env,expect,ddp"
REPORT_MARK = '{"schema":"torchsmoke/report/v1"'
# A pod spec (and a node) with an arbitrary UID, no passwd entry and a read-only root: HOME and
# every cache under the writable /tmp, and a user name for getpass.getuser().
WRITABLE_ENV = {
    "HOME": "/tmp",
    "USER": "torch",
    "LOGNAME": "torch",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "TORCH_HOME": "/tmp/.cache/torch",
    "TORCHINDUCTOR_CACHE_DIR": "/tmp/.cache/torchinductor",
    "TRITON_CACHE_DIR": "/tmp/.cache/triton",
    "MPLCONFIGDIR": "/tmp/.cache/matplotlib",
    "PIP_CACHE_DIR": "/tmp/.cache/pip",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# gloo binds to the address the hostname resolves to; name the interface so that it never picks
# loopback. NCCL matches prefixes and skips lo and docker* by itself.
NET_ENV = {"GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0"}


def node_command(
    nodes: int, nproc: int, endpoint: str, run_id: str, suite_args: list[str],
    join_timeout: int = JOIN_TIMEOUT_S,
) -> list[str]:  # fmt: skip
    """The node's (the pod's) command: torchrun, c10d rendezvous at `endpoint`; the node whose
    JOB_COMPLETION_INDEX is 0 hosts the rendezvous. Each node shows its local rank 0's output,
    which ends with the JSON report on one line."""
    torchrun = [
        "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}", "--max-restarts=0",
        "--local-ranks-filter=0", "-m", "torchsmoke", "--only", CHECKS, *suite_args, "--json", "-",
    ]  # fmt: skip
    conf = f"--rdzv-conf=join_timeout={join_timeout},is_host=$is_host"
    script = (
        'is_host=false; [ "${JOB_COMPLETION_INDEX:?set by the Job controller}" = 0 ] '
        f"&& is_host=true; exec {shlex.join(torchrun[:6])} {conf} {shlex.join(torchrun[6:])}"
    )
    return ["/bin/sh", "-c", script]


def node_env(nodes: int, nproc: int) -> dict[str, str]:
    """The environment every node (every pod) gets, JOB_COMPLETION_INDEX aside."""
    return {
        **WRITABLE_ENV,
        **NET_ENV,
        "TORCHSMOKE_EXPECT_WORLD_SIZE": str(nodes * nproc),
        "TORCHSMOKE_EXPECT_NODES": str(nodes),
    }


@dataclass(frozen=True)
class Node:
    """One container, described the way a kubelet would run a pod."""

    name: str  # the container's name
    hostname: str
    domainname: str
    aliases: tuple[str, ...]  # names the other nodes resolve on the run's network
    command: tuple[str, ...]
    environment: dict[str, str]
    user: str | None = None  # None: the image's user
    read_only: bool = True
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options
    cap_drop: tuple[str, ...] = ("ALL",)
    no_new_privileges: bool = True
    gpu_ids: tuple[str, ...] = ()  # GPUs given to this node
    publish: dict[int, int] = field(default_factory=dict)  # container port -> 127.0.0.1 port


@dataclass(frozen=True)
class Plan:
    run_id: str
    network: str
    image: str
    nodes: tuple[Node, ...]
    nproc: int
    target: str
    timeout_s: float = RUN_TIMEOUT_S

    @property
    def labels(self) -> dict[str, str]:
        return {MANAGED_LABEL: "true", MULTINODE_LABEL: self.run_id}


@dataclass(frozen=True)
class MultiNodeRequest:
    target: Target
    image: str
    nodes: int
    nproc: int = 1
    gpus_per_node: int = 0
    rdzv_port: int = RDZV_PORT
    quick: bool = True
    join_timeout: int = JOIN_TIMEOUT_S
    timeout_s: float = RUN_TIMEOUT_S


def validate(nodes: object, nproc: object, rdzv_port: object) -> tuple[int, int, int]:
    """The three numbers, or one line saying which is wrong."""
    out = []
    for flag, value, low, high in (
        ("--nodes", nodes, 1, 256),
        ("--nproc-per-node", nproc, 1, 64),
        ("--rdzv-port", rdzv_port, 1024, 65535),
    ):
        text = str(value).strip()
        if not re.fullmatch(r"\d+", text) or not low <= int(text) <= high:
            raise UserError(f"{flag} {value!r} is not a whole number from {low} to {high}")
        out.append(int(text))
    return out[0], out[1], out[2]


def new_run_id() -> str:
    return f"torchenv-mn-{secrets.token_hex(4)}"


def plan(req: MultiNodeRequest, run_id: str | None = None) -> Plan:
    """The run, as data (pure): network, containers, commands, env."""
    run_id = run_id or new_run_id()
    job = service = f"torchsmoke-{req.target.name}"
    endpoint = f"{job}-0.{service}:{req.rdzv_port}"
    suite = [*req.target.smoke_expectations(), *(["--quick"] if req.quick else [])]
    command = tuple(node_command(req.nodes, req.nproc, endpoint, run_id, suite, req.join_timeout))
    nodes = []
    for index in range(req.nodes):
        gpus = req.gpus_per_node
        nodes.append(
            Node(
                name=f"{run_id}-{index}",
                hostname=f"{job}-{index}",
                domainname=service,
                aliases=(f"{job}-{index}.{service}",),
                command=command,
                environment={**node_env(req.nodes, req.nproc), "JOB_COMPLETION_INDEX": str(index)},
                tmpfs={"/tmp": f"rw,mode=1777,size={TMP_SIZE}", "/dev/shm": f"rw,size={SHM_SIZE}"},
                gpu_ids=tuple(str(g) for g in range(index * gpus, (index + 1) * gpus)),
                publish={req.rdzv_port: req.rdzv_port} if index == 0 else {},
            )
        )
    return Plan(run_id, run_id, req.image, tuple(nodes), req.nproc, req.target.name, req.timeout_s)


def create_kwargs(p: Plan, node: Node) -> dict[str, Any]:
    """docker SDK `containers.create` arguments for one node (pure; aliases are attached apart)."""
    kwargs: dict[str, Any] = {
        "image": p.image,
        "command": list[Any](node.command),
        "name": node.name,
        "hostname": node.hostname,
        "domainname": node.domainname,
        "environment": dict(node.environment),
        "labels": {**p.labels, "io.torchenv.node": node.hostname},
        "read_only": node.read_only,
        "tmpfs": dict(node.tmpfs),
        "cap_drop": list[Any](node.cap_drop),
        "network": p.network,
        "detach": True,
    }
    if node.user:
        kwargs["user"] = node.user
    if node.no_new_privileges:
        kwargs["security_opt"] = ["no-new-privileges"]
    if node.publish:
        kwargs["ports"] = {f"{c}/tcp": ("127.0.0.1", h) for c, h in node.publish.items()}
    if node.gpu_ids:
        import docker.types

        kwargs["device_requests"] = [
            docker.types.DeviceRequest(device_ids=list(node.gpu_ids), capabilities=[["gpu"]])
        ]
    return kwargs


def describe(p: Plan) -> list[str]:
    """The equivalent docker CLI lines (for --dry-run and logs)."""
    labels = [f"--label={k}={v}" for k, v in p.labels.items()]
    lines = [shlex.join(["docker", "network", "create", *labels, p.network])]
    for node in p.nodes:
        args = ["docker", "run", "--detach", f"--name={node.name}", f"--network={p.network}"]
        args += [f"--hostname={node.hostname}", f"--domainname={node.domainname}"]
        args += [f"--network-alias={a}" for a in node.aliases]
        args += [*labels, f"--label=io.torchenv.node={node.hostname}"]
        args += ["--read-only"] if node.read_only else []
        args += [f"--tmpfs={path}:{opts}" for path, opts in node.tmpfs.items()]
        args += [f"--cap-drop={c}" for c in node.cap_drop]
        args += ["--security-opt=no-new-privileges"] if node.no_new_privileges else []
        args += [f"--user={node.user}"] if node.user else []
        args += [f"--gpus=device={','.join(node.gpu_ids)}"] if node.gpu_ids else []
        args += [f"--publish=127.0.0.1:{h}:{c}" for c, h in node.publish.items()]
        args += [f"--env={k}={v}" for k, v in node.environment.items()]
        lines.append(shlex.join([*args, p.image, *node.command]))
    lines.append(shlex.join(["docker", "rm", "--force", *(n.name for n in p.nodes)]))
    lines.append(shlex.join(["docker", "network", "rm", p.network]))
    return lines


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_in_use(port: object) -> UserError:
    return UserError(
        f"rendezvous port {port} is in use on this host: free it, or pass --rdzv-port with a "
        "free port"
    )


def capacity_problem(nodes: int, nproc: int, ncpu: int, mem_bytes: int) -> str | None:
    """Why this engine cannot run `nodes` x `nproc` ranks at once; None when it can."""
    ranks = nodes * nproc
    need = ranks * PROC_MEMORY_BYTES
    if mem_bytes and need > mem_bytes:
        return (
            f"{nodes} node(s) x {nproc} process(es) need about {need / 2**30:.0f} GiB of memory "
            f"and this engine has {mem_bytes / 2**30:.0f} GiB: use fewer nodes or processes"
        )
    if ncpu and ranks > 8 * ncpu:
        return (
            f"{ranks} ranks on this engine's {ncpu} CPUs would not finish in time: "
            "use fewer nodes or processes"
        )
    return None


def preflight(p: Plan, client: DockerClient, target: Target) -> None:
    """Everything that can be known before anything is made: image, rendezvous port, capacity."""
    import docker.errors

    try:
        client.images.get(p.image)
    except docker.errors.ImageNotFound:
        raise UserError(
            f"image {p.image} is not built yet: run `invoke build --target {target.name}`"
        ) from None
    for port in {h for n in p.nodes for h in n.publish.values()}:
        if not port_is_free(port):
            raise port_in_use(port)
    info = client.info()
    problem = capacity_problem(
        len(p.nodes), p.nproc, int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0)
    )
    if problem:
        raise UserError(problem)


# ---------------------------------------------------------------------------------------------
# Running a plan


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
        thread = threading.Thread(target=self._pump, args=(index, container), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _pump(self, index: int, container: Container) -> None:
        buffer = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._line(index, raw.decode(errors="replace"))
        except Exception:  # the container was removed under us: the run is over
            return
        if buffer:
            self._line(index, buffer.decode(errors="replace"))

    def _line(self, index: int, line: str) -> None:
        if line.startswith(REPORT_MARK):
            try:
                self.reports[index] = json.loads(line)
            except json.JSONDecodeError:
                pass
            else:
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
    end, whatever happens (SIGTERM is handled like Ctrl-C)."""
    made: list[Any] = []
    network = None
    start = time.monotonic()
    import docker.errors
    import requests

    with sigterm_as_ctrl_c():
        try:
            network = _create_network(p, client)
            made = _create_nodes(p, client)
            logs = _Logs(out)
            for index, container in enumerate(made):
                _start(container, p.nodes[index])
                logs.follow(index, container)
            outcome = _watch(p, made, logs, join_timeout)
            outcome.wall_s = round(time.monotonic() - start, 1)
            return outcome
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # the engine went away (or answered nonsense) under the run: one line, then cleanup
            raise UserError(f"lost the Docker engine during the run: {_one_line(exc)}") from None
        finally:
            _remove(made, network)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _create_network(p: Plan, client: DockerClient) -> Network:
    import docker.errors

    try:
        return client.networks.create(p.network, driver="bridge", labels=p.labels)
    except docker.errors.APIError as exc:
        raise UserError(f"cannot create the run's network: {exc.explanation or exc}") from None


def _create_nodes(p: Plan, client: DockerClient) -> list[Any]:
    import docker.errors

    made = []
    try:
        for node in p.nodes:
            kwargs = create_kwargs(p, node)
            endpoint = client.api.create_endpoint_config(aliases=list(node.aliases))
            kwargs["networking_config"] = {p.network: endpoint}
            made.append(client.containers.create(**kwargs))
    except docker.errors.ImageNotFound:
        _remove(made, None)
        raise UserError(f"image {p.image} is not built yet: run `invoke build`") from None
    except docker.errors.APIError as exc:
        _remove(made, None)
        raise UserError(
            f"the engine cannot create node {len(made)} of {len(p.nodes)}: {exc.explanation or exc}"
        ) from None
    except BaseException:
        _remove(made, None)
        raise
    return made


def _start(container: Container, node: Node) -> None:
    import docker.errors

    try:
        container.start()
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
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


def _remove(made: list[Any], network: Network | None, say: Callable[[str], object] = print) -> None:
    """Remove the containers, then the network (a second try after a second: a container that
    is still stopping can refuse once); what is already gone is fine. An error (the engine
    refusing, or gone) never stops the others: each one left is one line at the end."""
    import docker.errors

    # containers and the network: their remove() take different arguments
    left: list[Any] = [*made, *([network] if network is not None else [])]
    why: dict[int, str] = {}
    for attempt in (1, 2):
        failed = []
        for item in left:
            try:
                item.remove(force=True) if item is not network else item.remove()  # type: ignore[union-attr]  # here item is network, never None
            except docker.errors.NotFound:
                pass
            except Exception as exc:  # noqa: BLE001 - one line each, the others still go
                failed.append(item)
                why[id(item)] = _one_line(exc)
        left = failed
        if not left:
            return
        if attempt == 1:
            time.sleep(1)
    for item in left:
        name = getattr(item, "name", "?")
        say(f"torchenv: could not remove {name} ({why[id(item)]}): run `invoke clean`")


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
