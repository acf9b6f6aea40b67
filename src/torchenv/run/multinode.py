"""Multi-node DDP between containers: `invoke smoke --target T --nodes N [--nproc-per-node P]`.

One container per node, on a private user-defined network made for the run (its DNS resolves the
nodes' names; the default bridge has none). Every node runs the same command a Kubernetes pod of
`invoke k8s` runs (`node_command`): torchrun with c10d rendezvous at node 0, whose
`JOB_COMPLETION_INDEX` is 0, and the smoke suite's env, expect and ddp checks; under torchrun the
ddp check joins the job's process group, trains across every rank and compares the world size,
the hosts and the parameters of every rank. This module plans the run (pure, but for the
preflight's look at the engine); torchenv.run.multinode_run runs it.

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
    from torchenv.engine.sdk import DockerClient

import errno
import re
import secrets
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from torchenv.engine.images import get_image
from torchenv.engine.labels import MANAGED, PROJECT, role_key
from torchenv.engine.sdk import gpu_request
from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.run.suite import suite_command

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
    nodes: int, nproc: int, endpoint: str, run_id: str, expectations: Sequence[str] = (), *,
    quick: bool = False, require_gpu: bool = False, join_timeout: int = JOIN_TIMEOUT_S,
) -> list[str]:  # fmt: skip
    """The node's (the pod's) command: torchrun, c10d rendezvous at `endpoint`; the node whose
    JOB_COMPLETION_INDEX is 0 hosts the rendezvous. Each node shows its local rank 0's output,
    which ends with the JSON report on one line."""
    launcher = [
        "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}", "--max-restarts=0",
        "--local-ranks-filter=0",
    ]  # fmt: skip
    torchrun = suite_command(
        expectations,
        launcher=launcher,
        only=CHECKS,
        require_gpu=require_gpu,
        quick=quick,
        json_to="-",
    )
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
    project: str = ""  # the project's image_repo (io.torchenv.project: `invoke clean` finds it)

    @property
    def labels(self) -> dict[str, str]:
        found = {MANAGED_LABEL: "true", MULTINODE_LABEL: self.run_id}
        return {**found, PROJECT: self.project} if self.project else found


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
    command = tuple(
        node_command(
            req.nodes, req.nproc, endpoint, run_id, req.target.smoke_expectations(),
            quick=req.quick, join_timeout=req.join_timeout,
        )
    )  # fmt: skip
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
    return Plan(
        run_id, run_id, req.image, tuple(nodes), req.nproc, req.target.name, req.timeout_s,
        project=req.target.image_repo,
    )  # fmt: skip


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
        kwargs["device_requests"] = [gpu_request(node.gpu_ids)]
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

    get_image(client, p.image, target.name)
    for port in {h for n in p.nodes for h in n.publish.values()}:
        if not port_is_free(port):
            raise port_in_use(port)
    info = client.info()
    problem = capacity_problem(
        len(p.nodes), p.nproc, int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0)
    )
    if problem:
        raise UserError(problem)
