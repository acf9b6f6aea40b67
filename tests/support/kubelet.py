"""The manifest of `invoke k8s` read back (`load`) and run the way a kubelet would run its pods
(`kubelet_plan`, a multinode.Plan), so that a test on Docker proves what the manifest says."""

from __future__ import annotations

import re
from typing import Any

import yaml

from torchenv.errors import UserError
from torchenv.run import multinode
from torchenv.run.k8s import INDEX_VAR


def load(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _size(quantity: str) -> str:
    """A Kubernetes quantity (2Gi) as a tmpfs size (2g)."""
    match = re.fullmatch(r"(\d+)([KMG])i", quantity)
    if not match:
        raise UserError(f"cannot turn the quantity {quantity!r} into a tmpfs size")
    return f"{match[1]}{match[2].lower()}"


def kubelet_plan(docs: list[dict[str, Any]], run_id: str, target: str = "") -> multinode.Plan:
    """Containers for the Job's pods, every setting read from the manifest: the command, env
    (plus JOB_COMPLETION_INDEX, which the Job controller adds), hostname `<job>-<index>` in the
    Service's subdomain (a network alias), user and group, read-only root, capabilities,
    no-new-privileges, and each emptyDir as a tmpfs (medium Memory at /dev/shm included)."""
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    if spec.get("completionMode") != "Indexed" or spec["completions"] != spec["parallelism"]:
        raise UserError("the Job is not an Indexed Job with completions = parallelism")
    if pod["subdomain"] != service["metadata"]["name"] or service["spec"]["clusterIP"] != "None":
        raise UserError("the pods' subdomain is not the headless Service")
    (container,) = pod["containers"]
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs = {}
    for mount in container.get("volumeMounts", []):
        empty = volumes[mount["name"]]["emptyDir"]
        size = f",size={_size(empty['sizeLimit'])}" if "sizeLimit" in empty else ""
        tmpfs[mount["mountPath"]] = f"rw,mode=1777{size}"
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    name = job["metadata"]["name"]
    subdomain = pod["subdomain"]
    nodes = tuple(
        multinode.Node(
            name=f"{run_id}-{index}",
            hostname=f"{name}-{index}",
            domainname=subdomain,
            aliases=(f"{name}-{index}.{subdomain}",),
            command=tuple(container["command"] + container.get("args", [])),
            environment={**env, INDEX_VAR: str(index)},
            user=None if uid is None else f"{uid}:{0 if gid is None else gid}",
            read_only=bool(sc.get("readOnlyRootFilesystem")),
            tmpfs=tmpfs,
            cap_drop=tuple(sc.get("capabilities", {}).get("drop", [])),
            no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
            publish={},
        )
        for index in range(spec["completions"])
    )
    world = int(env.get("TORCHSMOKE_EXPECT_WORLD_SIZE", "0") or 0)
    nproc = max(1, world // max(1, spec["completions"]))
    return multinode.Plan(
        run_id, run_id, container["image"], nodes, nproc, target or name,
        timeout_s=spec["activeDeadlineSeconds"],
    )  # fmt: skip
