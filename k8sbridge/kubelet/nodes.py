"""One Kubernetes Node per Mesos agent, with its status and Lease kept as a kubelet keeps them.

Why a poller over the operator API: nodes must appear when agents register and stop reporting
when the master loses them, whether or not we currently receive offers (we SUPPRESS when idle).
``GET_AGENTS`` is cheap and level-triggered: every pass recomputes each node from the agent and
writes only what changed (status at least every ``status_report_seconds``), and the Lease in
``kube-node-lease`` is renewed every ``lease_renew_seconds`` with optimistic concurrency (a 409
re-reads and retries).

Who owns what, as in Kubernetes: the kubelet (here the bridge, one kubelet per agent) owns the
Node's status conditions and its Lease; the node lifecycle controller (kube-controller-manager,
or devkube's) owns the ``node.kubernetes.io/not-ready`` / ``unreachable`` taints and sets the
conditions to Unknown when the kubelet goes silent. So:

- An agent the master does not report active (disconnected, deactivated, unreachable, or no
  longer listed) is a kubelet cut off from its node: the bridge stops renewing its Lease and
  posting its status, exactly what a partitioned kubelet does (and what virtual-kubelet does
  when its provider's ping fails). After the controller's grace period the Node goes Unknown
  and gets the ``unreachable`` taints, once, so the eviction timer (the NoExecute taint's
  ``timeAdded``) starts once and pods go after their ``tolerationSeconds``. Posting
  ``Ready=False`` instead would say "the kubelet is up and the node is unhealthy" (the
  ``not-ready`` taints), which is not what the bridge knows, and a bridge that posts while the
  controller judges the node by its Lease makes the two swap taints and restart the timer.
- When the agent is active again the bridge reads the Node back, posts fresh conditions at once
  (transition times against what is stored, e.g. the controller's Unknown) and renews the
  Lease; the controller lifts its taints. While the agent stays active the bridge compares the
  stored conditions with its own every ``lease_renew_seconds`` (a kubelet's
  ``nodeStatusUpdateFrequency``) and rewrites them if someone else changed them.
- Taints: the bridge adds its one configured taint (``kubelet.node_taint``) and touches no
  other: a read-modify-write of ``spec.taints`` guarded by ``resourceVersion``, done when it
  registers or adopts a Node. Labels are a merge patch of ``metadata.labels`` alone, with the
  agent's keys only. Status is a merge patch of ``/status``. ``spec.unschedulable`` is never
  written. So what users set (``kubectl label``, ``taint``, ``cordon``) survives status
  updates and a restart of the bridge (which adopts the stored Node); only a label whose key
  the agent publishes (an attribute, the zone) is the agent's, and the bridge's own taint
  comes back on adoption. Placement reads the Nodes back (``scheduler.nodebook``).
- A Node whose agent the master no longer lists is deleted after ``NODE_GONE_SECONDS`` (Mesos
  lists neither unreachable nor removed agents, so the bridge cannot tell them apart); that is
  longer than Kubernetes' default ``tolerationSeconds`` for the ``unreachable`` taint, so the
  controller's taint-based eviction, not the Node's deletion, decides about the pods.

Node shape: exactly the labels placement matches against (``model.cluster.node_labels``:
agent attributes that are valid label values, ``kubernetes.io/hostname``, ``type``,
``kubernetes.io/os|role``, ``topology.kubernetes.io/region|zone``); the configurable taint
``virtual-kubelet.io/provider=mesos:NoSchedule``; capacity from the agent's total resources,
allocatable without what is reserved for roles other than ours; ``addresses`` are the agent's
own (InternalIP the IP of its pid, Hostname its hostname, as a kubelet reports its host's;
setting ``kubelet.node_address: kubelet`` makes InternalIP the bridge's kubelet API address
instead, for an API server that dials kubelets there); ``daemonEndpoints.kubeletEndpoint.Port``
is the port of the bridge's kubelet API (the one serving every virtual node), which then
listens on the agents' addresses too (the embedded default).

The rendering functions are pure; ``NodeController`` is the single task owning node state.
"""

from __future__ import annotations

import asyncio
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
    "NODE_GONE_SECONDS",
    "NodeController",
    "agent_ip",
    "allocatable_for",
    "internal_ip",
    "node_labels",
    "node_name_for",
    "own_taints",
    "quantities",
    "render_node",
    "with_own_taints",
]

log = logging.getLogger(__name__)

AGENT_ID_ANNOTATION = "k8sbridge.io/agent-id"
KUBELET_VERSION = f"v{__version__}-k8sbridge"
# A Node whose agent the master no longer lists is deleted after this long: more than the 300 s
# Kubernetes' DefaultTolerationSeconds admission gives pods for the ``unreachable`` taint.
NODE_GONE_SECONDS = 600.0
MAX_CONFLICTS = 5  # read-modify-write attempts of a Node's taints or Lease


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


def own_taints(spec: str) -> list[dict[str, str]]:
    """The bridge's configured taint (``key[=value]:Effect``; "" for none) as Node taints."""
    if not spec:
        return []
    keyval, _, effect = spec.rpartition(":")
    key, _, value = keyval.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return [taint]


def _taint_identity(taint: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(taint.get("key") or ""), str(taint.get("value") or ""),
            str(taint.get("effect") or ""))


def with_own_taints(current: Any, own: list[dict[str, str]]) -> list[Any] | None:
    """``spec.taints`` with the bridge's own taints in place, or None if they already are.

    Only taints with one of our keys are ours (replaced when their value or effect differ);
    every other taint (the node lifecycle controller's, an administrator's) is kept as it is,
    ``timeAdded`` included, in its place."""
    taints = [t for t in current if isinstance(t, dict)] if isinstance(current, list) else []
    keys = {t["key"] for t in own}
    mine = sorted(_taint_identity(t) for t in taints if t.get("key") in keys)
    if mine == sorted(_taint_identity(t) for t in own):
        return None
    return [t for t in taints if t.get("key") not in keys] + [dict(t) for t in own]


def _conditions(
    agent: mesos_agents.AgentInfo, *, now: str, previous: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    wanted = [
        ("Ready", "True", "KubeletReady", f"Mesos agent {agent.agent_id} is active"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
        ("NetworkUnavailable", "False", "RouteCreated", "the agent uses host networking"),
    ]
    out = []
    for ctype, status, reason, message in wanted:
        prev = previous.get(ctype)
        transition = (prev.get("lastTransitionTime") if prev and prev.get("status") == status
                      else None) or now
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


def agent_ip(agent: mesos_agents.AgentInfo) -> str:
    """The agent's own address: the IP of its pid (``slave(1)@IP:PORT``), else its
    hostname."""
    host = agent.address.rsplit(":", 1)[0] if ":" in agent.address else agent.address
    return host.strip("[]") or agent.hostname


def internal_ip(agent: mesos_agents.AgentInfo, *,
                settings: bridge_settings.KubeletSettings) -> str:
    """The Node's InternalIP (setting ``kubelet.node_address``)."""
    if settings.node_address == "kubelet":
        return settings.advertise_address
    return agent_ip(agent) or settings.advertise_address


def render_node(
    agent: mesos_agents.AgentInfo,
    *,
    settings: bridge_settings.BridgeSettings,
    now: str,
    previous_conditions: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The full Node object for ``agent`` as its kubelet reports it (pure).

    Only an active agent is reported: for any other the bridge posts nothing (see the module
    docstring), so the conditions here are those of a reachable, healthy node."""
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
        "spec": {"taints": own_taints(kubelet.node_taint)},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": _conditions(agent, now=now, previous=previous_conditions or {}),
            "addresses": [
                {"type": "InternalIP", "address": internal_ip(agent, settings=kubelet)},
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
    return (
        tuple(sorted(status["capacity"].items())),
        tuple(sorted(status["allocatable"].items())),
        _condition_signature(status["conditions"]),
        tuple((a["type"], a["address"]) for a in status["addresses"]),
        status["daemonEndpoints"]["kubeletEndpoint"]["Port"],
    )


def _condition_signature(conditions: Any) -> tuple[tuple[str, str, str], ...]:
    """(type, status, reason) of each condition, in type order (stored or rendered)."""
    found = [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) \
        else []
    return tuple(sorted((str(c.get("type")), str(c.get("status")), str(c.get("reason")))
                        for c in found))


def _conditions_by_type(node: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = (node.get("status") or {}).get("conditions") or []
    return {str(c["type"]): c for c in found if isinstance(c, dict) and "type" in c}


class NodeController:
    """Keeps one Node and one Lease per agent; the only writer of our nodes' status."""

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
        self._node_uid: dict[str, str] = {}  # nodes registered or adopted by this process
        self._signature: dict[str, Any] = {}
        self._conditions: dict[str, dict[str, dict[str, Any]]] = {}
        self._last_status: dict[str, float] = {}
        self._last_lease: dict[str, float] = {}
        self._labels: dict[str, Any] = {}
        self._silent: set[str] = set()  # nodes whose agent is not active: nothing is posted
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
            # The master no longer lists the agent (unreachable, removed or forgotten): silent
            # first, so the node lifecycle controller marks the Node Unknown and taints it
            # unreachable; after NODE_GONE_SECONDS the Node and its Lease are deleted (pods
            # still bound to it are then garbage-collected, as for any deleted Node).
            since = self._gone_since.setdefault(agent_id, now)
            if now - since >= NODE_GONE_SECONDS:
                await self._delete_node(node_name_for(known.hostname))
                del self._agents[agent_id]
                self._gone_since.pop(agent_id, None)
            else:
                self._go_silent(known, why="the Mesos master no longer lists it (unreachable "
                                           "or removed)")
        for agent in agents:
            self._gone_since.pop(agent.agent_id, None)
            self._agents[agent.agent_id] = agent
        if self._on_agents is not None:
            self._on_agents(agents)
        for agent in agents:
            if agent.active:
                await self._sync_agent(agent)
            else:
                self._go_silent(agent, why="the Mesos master reports it inactive "
                                           "(disconnected or deactivated)")

    def _go_silent(self, agent: mesos_agents.AgentInfo, *, why: str) -> None:
        """Post nothing more for ``agent``'s Node until it is active again."""
        name = node_name_for(agent.hostname)
        if name in self._silent:
            return
        self._silent.add(name)
        log.warning("node %s: agent %s is not reachable: %s; its Lease and status are no "
                    "longer renewed, so the node lifecycle controller marks it Unknown and "
                    "taints it node.kubernetes.io/unreachable", name, agent.agent_id, why)

    async def _delete_node(self, name: str) -> None:
        for path in (kube_client.lease_path(name), kube_client.node_path(name)):
            try:
                await self._kube.delete(path)
            except kube_errors.NotFound:
                pass
        for cache in (self._node_uid, self._signature, self._conditions, self._last_status,
                      self._last_lease, self._labels):
            cache.pop(name, None)
        self._silent.discard(name)
        log.info("node %s deleted: its Mesos agent is gone", name)

    async def _sync_agent(self, agent: mesos_agents.AgentInfo) -> None:
        name = node_name_for(agent.hostname)
        clock = self._clock()
        renew_every = self._settings.kubelet.lease_renew_seconds
        lease_due = clock - self._last_lease.get(name, -1e9) >= renew_every
        if name not in self._node_uid:
            await self._ensure_node(name, agent)
        elif name in self._silent or lease_due:
            await self._read_back(name, agent)
        if name in self._silent:
            self._silent.discard(name)
            log.info("node %s: agent %s is active again; reporting its status", name,
                     agent.agent_id)
        now = kube_client.now_rfc3339()
        node = render_node(agent, settings=self._settings, now=now,
                           previous_conditions=self._conditions.get(name))
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
        labels = node["metadata"]["labels"]
        if self._labels.get(name) != labels:
            await self._kube.patch(kube_client.node_path(name), {"metadata": {"labels": labels}})
            self._labels[name] = labels
        if lease_due:
            await self._renew_lease(name)
            self._last_lease[name] = clock

    async def _read_back(self, name: str, agent: mesos_agents.AgentInfo) -> None:
        """Compare the stored conditions with ours: if someone else changed them (the node
        lifecycle controller's Unknown while we were silent or slow), report again now, with
        transition times against what is stored. A Node deleted meanwhile is registered again."""
        try:
            stored = await self._kube.get(kube_client.node_path(name))
        except kube_errors.NotFound:
            self._node_uid.pop(name, None)
            await self._ensure_node(name, agent)
            return
        self._conditions[name] = _conditions_by_type(stored)
        ours = self._signature.get(name)
        stored_conditions = (stored.get("status") or {}).get("conditions")
        if ours is None or ours[2] != _condition_signature(stored_conditions):
            self._signature.pop(name, None)  # post now

    async def _ensure_node(self, name: str, agent: mesos_agents.AgentInfo) -> None:
        """Register the Node, or adopt the one stored (adding our taint to its others)."""
        node = render_node(agent, settings=self._settings, now=kube_client.now_rfc3339())
        try:
            created = await self._kube.create("/api/v1/nodes", node)
        except kube_errors.Conflict:
            created = await self._adopt(name)
        else:
            log.info("node %s registered", name)
            self._labels[name] = node["metadata"]["labels"]
        self._signature.pop(name, None)
        self._last_status.pop(name, None)
        self._node_uid[name] = str((created.get("metadata") or {}).get("uid") or "")

    async def _adopt(self, name: str) -> dict[str, Any]:
        """The stored Node, with our configured taint added (a read-modify-write guarded by its
        resourceVersion: the node lifecycle controller's taints are never replaced)."""
        own = own_taints(self._settings.kubelet.node_taint)
        for _ in range(MAX_CONFLICTS):
            stored = await self._kube.get(kube_client.node_path(name))
            self._conditions[name] = _conditions_by_type(stored)
            taints = with_own_taints((stored.get("spec") or {}).get("taints"), own)
            if taints is None:
                return stored
            meta = stored.get("metadata") or {}
            try:
                return await self._kube.patch(kube_client.node_path(name), {
                    "metadata": {"resourceVersion": meta.get("resourceVersion")},
                    "spec": {"taints": taints},
                })
            except kube_errors.Conflict:
                continue  # someone else wrote the Node: re-read and merge again
        log.warning("node %s: gave up adding taint %s after %d conflicts", name,
                    self._settings.kubelet.node_taint, MAX_CONFLICTS)
        return stored

    async def _renew_lease(self, name: str) -> None:
        path = kube_client.lease_path(name)
        for _ in range(MAX_CONFLICTS):
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
        log.warning("lease %s: gave up after %d conflicts", name, MAX_CONFLICTS)
