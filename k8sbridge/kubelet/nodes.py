"""One Kubernetes Node per Mesos agent, with its Lease renewed like a kubelet's.

Why a poller over the operator API: nodes must appear when agents register and go NotReady when
the master reports them inactive, whether or not we currently receive offers (we SUPPRESS when
idle). ``GET_AGENTS`` is cheap and level-triggered: every pass recomputes each node from the
agent and writes only what changed (status at least every ``status_report_seconds``), and the
Lease in ``kube-node-lease`` is renewed every ``lease_renew_seconds`` with optimistic concurrency
(a 409 re-reads and retries).

Node shape: exactly the labels placement matches against (``model.cluster.node_labels``:
agent attributes that are valid label values, ``kubernetes.io/hostname``, ``type``,
``kubernetes.io/os|role``, ``topology.kubernetes.io/region|zone``); the configurable taint
``virtual-kubelet.io/provider=mesos:NoSchedule``; capacity from the agent's total resources,
allocatable without what is reserved for roles other than ours; ``addresses`` point at the
bridge's kubelet API (the one serving every virtual node) and name the agent's hostname;
``daemonEndpoints.kubeletEndpoint.Port`` is that API's port.

The rendering functions are pure; ``NodeController`` is the single task owning node state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from k8sbridge import __version__
from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.model import cluster, ids
from k8sbridge.model.resources import Resources

__all__ = [
    "AGENT_ID_ANNOTATION",
    "NodeController",
    "allocatable_for",
    "node_labels",
    "node_name_for",
    "quantities",
    "render_node",
]

log = logging.getLogger(__name__)

AGENT_ID_ANNOTATION = "k8sbridge.io/agent-id"
KUBELET_VERSION = f"v{__version__}-k8sbridge"
NODE_GONE_SECONDS = 60.0  # a Node whose agent the master forgot is deleted after this long


def node_name_for(hostname: str) -> str:
    """A DNS-1123 subdomain from an agent hostname (the one rule, in ``model.cluster``)."""
    return cluster.node_name_for(hostname)


def node_labels(agent: mesos_agents.AgentInfo) -> dict[str, str]:
    """Exactly the labels placement matches nodeSelector against (``model.cluster``)."""
    return cluster.node_labels(
        hostname=agent.hostname, attributes=agent.attributes, region=agent.region,
        zone=agent.zone,
    )


def _cpu(value: float) -> str:
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _mib(value: float) -> str:
    kib = round(value * 1024)
    return f"{kib // 1024}Mi" if kib % 1024 == 0 else f"{kib}Ki"


def quantities(resources: Resources, *, max_pods: int) -> dict[str, str]:
    """Kubernetes capacity quantities from Mesos scalars."""
    out = {
        "cpu": _cpu(resources.scalar("cpus")),
        "memory": _mib(resources.scalar("mem")),
        "pods": str(max_pods),
    }
    if resources.scalar("disk"):
        out["ephemeral-storage"] = _mib(resources.scalar("disk"))
    if resources.scalar("gpus"):
        out["nvidia.com/gpu"] = str(int(resources.scalar("gpus")))
    return out


def allocatable_for(total: Resources, *, roles: Iterable[str]) -> Resources:
    """What our roles could ever be offered: unreserved + reserved for one of them (or above)."""
    mine = tuple(roles)

    def usable(res: Any) -> bool:
        if not res.reservations:
            return True
        role = res.role
        return any(r == role or r.startswith(role + "/") for r in mine)

    return total.filter(usable)


def _taints(spec: str) -> list[dict[str, str]]:
    if not spec:
        return []
    keyval, _, effect = spec.rpartition(":")
    key, _, value = keyval.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return [taint]


def _conditions(
    agent: mesos_agents.AgentInfo, *, now: str, previous: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    if agent.active:
        ready = ("True", "KubeletReady", f"Mesos agent {agent.agent_id} is active")
    elif agent.removed:
        ready = (
            "False",
            "MesosAgentRemoved",
            f"the Mesos master no longer knows agent {agent.agent_id}",
        )
    else:
        ready = (
            "False",
            "MesosAgentUnreachable",
            f"the Mesos master reports agent {agent.agent_id} as unreachable or deactivated",
        )
    wanted = [
        ("Ready", *ready),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
        ("NetworkUnavailable", "False", "RouteCreated", "the agent uses host networking"),
    ]
    out = []
    for ctype, status, reason, message in wanted:
        prev = previous.get(ctype)
        transition = prev["lastTransitionTime"] if prev and prev["status"] == status else now
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition,
            }
        )
    return out


def render_node(
    agent: mesos_agents.AgentInfo,
    *,
    settings: bridge_settings.BridgeSettings,
    now: str,
    previous_conditions: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The full Node object for ``agent`` (pure)."""
    name = node_name_for(agent.hostname)
    kubelet = settings.kubelet
    capacity = quantities(agent.total.flatten(), max_pods=kubelet.max_pods)
    allocatable = quantities(
        allocatable_for(agent.total, roles=settings.mesos.roles).flatten(),
        max_pods=kubelet.max_pods,
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(agent),
            "annotations": {AGENT_ID_ANNOTATION: str(agent.agent_id)},
        },
        "spec": {"taints": _taints(kubelet.node_taint)},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": _conditions(agent, now=now, previous=previous_conditions or {}),
            "addresses": [
                {"type": "InternalIP", "address": kubelet.advertise_address},
                {"type": "Hostname", "address": agent.hostname},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}},
            "nodeInfo": {
                "machineID": str(agent.agent_id),
                "systemUUID": str(agent.agent_id),
                "bootID": "",
                "kernelVersion": "",
                "osImage": "Mesos agent " + (agent.version or ""),
                "containerRuntimeVersion": "mesos://" + (agent.version or "unknown"),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def _status_signature(node: Mapping[str, Any]) -> Any:
    """Everything of the status that matters, without heartbeat times."""
    status = node["status"]
    conds = tuple(
        (c["type"], c["status"], c["reason"]) for c in status["conditions"]
    )
    return (
        tuple(sorted(status["capacity"].items())),
        tuple(sorted(status["allocatable"].items())),
        conds,
        tuple((a["type"], a["address"]) for a in status["addresses"]),
        status["daemonEndpoints"]["kubeletEndpoint"]["Port"],
    )


class NodeController:
    """Keeps one Node and one Lease per agent; the only writer of our nodes."""

    def __init__(
        self,
        *,
        kube: kube_client.KubeClient,
        reader: mesos_agents.MesosReader,
        settings: bridge_settings.BridgeSettings,
        on_agents: Callable[[list[mesos_agents.AgentInfo]], None] | None = None,
        _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._reader = reader
        self._settings = settings
        self._on_agents = on_agents
        self._clock = _clock
        self._agents: dict[ids.AgentId, mesos_agents.AgentInfo] = {}
        self._node_uid: dict[str, str] = {}
        self._signature: dict[str, Any] = {}
        self._conditions: dict[str, dict[str, dict[str, Any]]] = {}
        self._last_status: dict[str, float] = {}
        self._last_lease: dict[str, float] = {}
        self._labels: dict[str, Any] = {}
        self._gone_since: dict[ids.AgentId, float] = {}

    @property
    def agents(self) -> Mapping[ids.AgentId, mesos_agents.AgentInfo]:
        return self._agents

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None:
        agent = self._agents.get(agent_id)
        return node_name_for(agent.hostname) if agent else None

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        period = self._settings.mesos.agent_poll_seconds
        while not stop.is_set():
            try:
                await self.sync_once()
                ready.set()
            except (mesos_agents.AgentsError, kube_errors.KubeError) as e:
                log.warning("node sync failed (will retry): %s", e)
            except Exception:  # a bug must not stop the heartbeats of every other node
                log.exception("node sync failed (bug); retrying")
            try:
                async with asyncio.timeout(period):
                    await stop.wait()
            except TimeoutError:
                pass

    async def sync_once(self) -> None:
        agents = await self._reader.get_agents()
        now = self._clock()
        current = {a.agent_id for a in agents}
        for agent_id, known in list(self._agents.items()):
            if agent_id in current:
                continue
            # The master forgot the agent (removed / GC'd): NotReady first, then, after
            # NODE_GONE_SECONDS, the Node and its Lease are deleted (pods on it are then
            # garbage-collected by the control plane, as for any deleted Node).
            since = self._gone_since.setdefault(agent_id, now)
            gone = dataclasses.replace(known, active=False, removed=True)
            if now - since >= NODE_GONE_SECONDS:
                await self._delete_node(node_name_for(known.hostname))
                del self._agents[agent_id]
                self._gone_since.pop(agent_id, None)
            else:
                await self._sync_agent(gone)
        for agent in agents:
            self._gone_since.pop(agent.agent_id, None)
            self._agents[agent.agent_id] = agent
        if self._on_agents is not None:
            self._on_agents(agents)
        for agent in agents:
            await self._sync_agent(agent)

    async def _delete_node(self, name: str) -> None:
        for path in (kube_client.lease_path(name), kube_client.node_path(name)):
            try:
                await self._kube.delete(path)
            except kube_errors.NotFound:
                pass
        for cache in (self._node_uid, self._signature, self._conditions, self._last_status,
                      self._last_lease, self._labels):
            cache.pop(name, None)
        log.info("node %s deleted: its Mesos agent is gone", name)

    async def _sync_agent(self, agent: mesos_agents.AgentInfo) -> None:
        now = kube_client.now_rfc3339()
        name = node_name_for(agent.hostname)
        node = render_node(
            agent,
            settings=self._settings,
            now=now,
            previous_conditions=self._conditions.get(name),
        )
        clock = self._clock()
        if name not in self._node_uid:
            await self._ensure_node(name, node)
            self._last_status.pop(name, None)
        signature = _status_signature(node)
        report_every = self._settings.kubelet.status_report_seconds
        due = clock - self._last_status.get(name, -1e9) >= report_every
        if due or self._signature.get(name) != signature:
            await self._kube.patch(
                kube_client.node_path(name) + "/status", {"status": node["status"]}
            )
            self._signature[name] = signature
            self._last_status[name] = clock
            self._conditions[name] = {c["type"]: c for c in node["status"]["conditions"]}
        meta_sig = (node["metadata"]["labels"], node["spec"]["taints"])
        if self._labels.get(name) != meta_sig:
            await self._kube.patch(
                kube_client.node_path(name),
                {"metadata": {"labels": node["metadata"]["labels"]}, "spec": node["spec"]},
            )
            self._labels[name] = meta_sig
        if agent.active and (
            clock - self._last_lease.get(name, -1e9) >= self._settings.kubelet.lease_renew_seconds
        ):
            await self._renew_lease(name)
            self._last_lease[name] = clock

    async def _ensure_node(self, name: str, node: dict[str, Any]) -> None:
        try:
            created = await self._kube.create("/api/v1/nodes", node)
        except kube_errors.Conflict:
            created = await self._kube.get(kube_client.node_path(name))
            previous = (created.get("status") or {}).get("conditions") or []
            self._conditions[name] = {
                c["type"]: c for c in previous if isinstance(c, dict) and "type" in c
            }
        else:
            log.info("node %s registered", name)
            self._labels[name] = (node["metadata"]["labels"], node["spec"]["taints"])
        self._node_uid[name] = str((created.get("metadata") or {}).get("uid") or "")

    async def _renew_lease(self, name: str) -> None:
        path = kube_client.lease_path(name)
        for _ in range(5):
            now = kube_client.now_micro()
            try:
                lease = await self._kube.get(path)
            except kube_errors.NotFound:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Node",
                                "name": name,
                                "uid": self._node_uid.get(name, ""),
                            }
                        ],
                    },
                    "spec": {
                        "holderIdentity": name,
                        "leaseDurationSeconds": self._settings.kubelet.lease_duration_seconds,
                        "renewTime": now,
                    },
                }
                try:
                    await self._kube.create(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body
                    )
                    return
                except kube_errors.NotFound:
                    await self._kube.ensure_namespace("kube-node-lease")
                    continue
                except kube_errors.Conflict:
                    continue
            lease.setdefault("spec", {})["renewTime"] = now
            lease["spec"]["holderIdentity"] = name
            lease["spec"]["leaseDurationSeconds"] = self._settings.kubelet.lease_duration_seconds
            try:
                await self._kube.replace(path, lease)
                return
            except kube_errors.Conflict:
                continue  # someone else wrote it: re-read and retry
        log.warning("lease %s: gave up after 5 conflicts", name)
