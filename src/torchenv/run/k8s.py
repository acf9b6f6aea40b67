"""`invoke k8s`: a Kubernetes manifest that runs the distributed smoke suite, no operator needed.

An Indexed Job (completions = parallelism = nodes), a headless Service and a NetworkPolicy that
admits only the job's own pods to them (the rendezvous port included): each pod gets
JOB_COMPLETION_INDEX and the hostname `<job>-<index>`, and, through the Service named in the pod
spec's `subdomain`, the others resolve it as `<job>-<index>.<service>`. The pods run the same
command the containers of `invoke smoke --nodes` run (`multinode.node_command`): torchrun with c10d
rendezvous hosted by index 0. Pod Security "restricted": a non-root arbitrary UID (GID 0, as
OpenShift does), no privilege escalation, every capability dropped, the runtime's seccomp profile,
a read-only root; /tmp and /dev/shm (medium Memory) are emptyDirs, and HOME and every cache point
under /tmp. GPUs: `nvidia.com/gpu` limits when asked. Each pod prints the JSON report of its
local rank 0 on one line at the end of its log (`kubectl logs`). The Service and the
NetworkPolicy outlive the Job (ttlSecondsAfterFinished removes the Job and its pods only; an
ownerReference needs the Job's uid, which does not exist before the Job): the manifest's header
gives the `kubectl delete` that removes them.

`validate` checks the manifest offline and strictly (unknown fields are errors) against the
schema of `KUBERNETES_VERSION` (kubernetes-validate). tests/support/kubelet.py turns the manifest
back into containers the way a kubelet would run the pods, so a test on Docker proves what it says.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.run import multinode

KUBERNETES_VERSION = "1.31.0"  # the schema the manifest is validated against
RUN_AS_USER = 12345  # arbitrary, not the image's 1000: the image must work for any UID
RUN_AS_GROUP = 0
DEADLINE_S = 1800
BACKOFF_LIMIT = 0  # one pod failing fails the job: a retried pod cannot rejoin the rendezvous
TTL_S = 3600
SHM_LIMIT = "2Gi"
TMP_LIMIT = "4Gi"
INDEX_VAR = "JOB_COMPLETION_INDEX"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def job_name(target: Target) -> str:
    return f"torchsmoke-{target.name}"


def manifest(
    target: Target, image: str, nodes: int, gpus_per_node: int = 0, nproc: int | None = None,
    name: str | None = None, rdzv_port: int = multinode.RDZV_PORT,
) -> list[dict[str, Any]]:  # fmt: skip
    """The Service, the Job and the NetworkPolicy (pure). `nproc` defaults to the GPUs per
    node, else 1."""
    name = name or job_name(target)
    if not _NAME.match(name) or len(name) > 50:
        raise UserError(f"job name {name!r} is not a DNS label of at most 50 characters")
    nproc = nproc or gpus_per_node or 1
    labels = {"app.kubernetes.io/name": "torchsmoke", "app.kubernetes.io/instance": name}
    endpoint = f"{name}-0.{name}:{rdzv_port}"
    command = multinode.node_command(
        nodes, nproc, endpoint, name, target.smoke_expectations(), require_gpu=gpus_per_node > 0
    )
    resources: dict[str, Any] = {
        "requests": {"cpu": str(nproc), "memory": f"{2 * nproc}Gi"},
        "limits": {"memory": f"{4 * nproc}Gi"},
    }
    if gpus_per_node:
        resources["limits"]["nvidia.com/gpu"] = gpus_per_node
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # DNS records before the pods are Ready
            "selector": {"job-name": name},
            "ports": [{"name": "rdzv", "port": rdzv_port, "targetPort": rdzv_port}],
        },
    }
    container = {
        "name": "torchsmoke",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [{"name": k, "value": v} for k, v in multinode.node_env(nodes, nproc).items()],
        "ports": [{"name": "rdzv", "containerPort": rdzv_port}],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": DEADLINE_S,
            "ttlSecondsAfterFinished": TTL_S,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "subdomain": name,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_GROUP,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_LIMIT}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_LIMIT}},
                    ],
                },
            },
        },
    }
    # Only the job's own pods may reach its pods: the rendezvous port and the ports gloo and
    # NCCL open between the ranks (ephemeral ones, so the rule names no port).
    own_pods = {"podSelector": {"matchLabels": {"job-name": name}}}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": {"job-name": name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [own_pods]}],
        },
    }
    return [service, job, policy]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(
        self, _data: object
    ) -> bool:  # repeated labels are written out, not anchored
        return True


def dump(docs: list[dict[str, Any]], header: str = "") -> str:
    body = "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=100) for d in docs)
    return header + body


def validate(docs: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str] | None:
    """Strict schema problems, one line each ("Kind/name: message"); [] when valid; None when
    kubernetes-validate (the `k8s` extra) is not installed, so nothing could be checked."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints
    except ImportError:
        return None

    problems = []
    for doc in docs:
        where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{where}: {path or '(top)'}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            problems.append(f"{where}: no schema for Kubernetes {version} in kubernetes-validate")
    return problems


def check_gpus_per_node(gpus: int) -> None:
    if not 0 <= gpus <= 64:
        raise UserError(f"--gpus-per-node {gpus} is out of range: give 0 to 64")


def checked_manifest(target: Target, ref: str, source: str, nodes: int, gpus_per_node: int) -> str:
    """What `invoke k8s` writes: the manifest, refused in one line unless it validates, with a
    header that says what it runs and how."""
    check_gpus_per_node(gpus_per_node)
    docs = manifest(target, ref, nodes, gpus_per_node=gpus_per_node)
    problems = validate(docs)
    if problems:
        raise UserError(f"the manifest does not validate: {problems[0]}")
    checked = (
        f"validated against Kubernetes {KUBERNETES_VERSION}"
        if problems is not None
        else "NOT validated (pip install 'torchenv[k8s]' adds kubernetes-validate)"
    )
    header = (
        f"# torchenv k8s: {nodes} nodes of {target.name}, image {source}; {checked}. "
        f"kubectl apply -f THIS; kubectl logs "
        f"-l job-name={job_name(target)}\n"
        f"# The Job and its pods go {TTL_S} s after it ends (ttlSecondsAfterFinished); the Service "
        f"and the NetworkPolicy stay (a Job cannot own what is made before it): kubectl delete "
        f"service,networkpolicy -l app.kubernetes.io/instance={job_name(target)}\n"
    )
    return dump(docs, header)
