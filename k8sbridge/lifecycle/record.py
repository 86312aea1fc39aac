"""One record per pod: everything the lifecycle knows about a pod's life, as one immutable value.

Why one value: before, a pod's life was spread over ten tables in the offer loop and a second
set of tables in the status writer, and each decided part of it (restarts in one, init retries
in the other). ``PodRecord`` holds the pod's facts (``PodFacts``, read from the pod object),
every container's ``ContainerRuntime``, the attempt the app containers run in, and what was
already asked for (restarts), and the launch side (``launch_side``: the attempt launched now,
when the next may launch, the attempt whose init phases run, deletion); ``lifecycle.machine.apply``
makes a new one from an event, the offer loop records what it executed in the launch side. One
store (``lifecycle.store.PodStore``) keeps one record per pod for both. Rendering
(``kubelet/statusmap``) reads it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping
from typing import Any

from k8sbridge.lifecycle import readiness, termination
from k8sbridge.lifecycle.containers import ContainerRuntime
from k8sbridge.lifecycle.launches import LaunchLife
from k8sbridge.model import ids
from k8sbridge.model import pods as model_pods

__all__ = ["PodFacts", "PodRecord", "facts_of", "fresh_runtime"]


@dataclasses.dataclass(frozen=True, slots=True)
class PodFacts:
    """What the lifecycle reads from the pod object (its spec, deletion, carried counters)."""

    uid: str
    name: str
    namespace: str
    restart_policy: model_pods.RestartPolicy = "Always"
    apps: tuple[str, ...] = ()
    inits: tuple[str, ...] = ()  # in order, sidecars included
    sidecars: frozenset[str] = frozenset()  # init containers with restartPolicy Always
    images: tuple[tuple[str, str], ...] = ()
    deleting: bool = False
    # restartCount per container as the pod's status shows it: after a bridge restart the
    # counters live only there, and a fresh runtime carries them on
    carried_restarts: tuple[tuple[str, int], ...] = ()
    # (containerID, message) of terminations the pod's status shows: a termination message
    # read before a bridge restart is kept, not read again
    carried_messages: tuple[tuple[str, str], ...] = ()
    active_deadline: float | None = None  # spec.activeDeadlineSeconds
    start_time: float | None = None  # status.startTime (kept across a bridge restart)
    # readinessProbe thresholds per container (``lifecycle.readiness``)
    probe_thresholds: tuple[tuple[str, readiness.Thresholds], ...] = ()
    # where termination messages are read, per container (``lifecycle.termination``)
    message_sources: tuple[termination.Source, ...] = ()

    def image(self, container: str) -> str:
        return next((image for name, image in self.images if name == container), "")

    def thresholds(self, container: str) -> readiness.Thresholds | None:
        return next((t for name, t in self.probe_thresholds if name == container), None)

    def carried_message(self, container_id: str) -> str | None:
        return next((m for cid, m in self.carried_messages if cid == container_id), None)

    def message_source(self, container: str) -> termination.Source | None:
        return next((t for t in self.message_sources if t.container == container), None)


@dataclasses.dataclass(frozen=True, slots=True)
class PodRecord:
    facts: PodFacts
    runtimes: Mapping[str, ContainerRuntime] = dataclasses.field(default_factory=dict)
    app_attempt: int = -1  # the attempt the app containers run in (-1: none yet)
    # the app attempt whose end already asked for the next attempt
    app_restart_requested: int = -1
    # init/sidecar tasks whose end already asked for a restart of that container
    init_restarts_requested: frozenset[ids.TaskId] = frozenset()
    # sidecar tasks already asked to stop (the app containers are done)
    sidecars_stopping: frozenset[ids.TaskId] = frozenset()
    host_ip: str = ""
    pod_ips: tuple[str, ...] = ()
    node_name: str = ""
    unschedulable: str | None = None  # the explanation last shown (PodScheduled=False)
    failure: tuple[str, str] | None = None  # (reason, message) when the launch was refused
    started: float | None = None  # when the kubelet first acted on the pod (startTime)
    wake_at: float | None = None  # the deadline a WakeAt was asked for
    deadline_exceeded: bool = False  # active longer than activeDeadlineSeconds: Failed
    # the launch side: the attempt launched now, the next relaunch, the attempt whose init
    # phases run, deletion (the offer loop records what it did here, ``lifecycle.store``)
    launch_side: LaunchLife = LaunchLife()

    @classmethod
    def new(cls, pod: Mapping[str, Any]) -> PodRecord:
        return cls(facts=facts_of(pod))


def _policy(raw: Any) -> model_pods.RestartPolicy:
    return "Never" if raw == "Never" else "OnFailure" if raw == "OnFailure" else "Always"


def facts_of(pod: Mapping[str, Any]) -> PodFacts:
    """The facts of a raw pod (JSON as the API returns it); malformed parts read as absent."""
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    apps = _mappings(spec.get("containers"))
    inits = _mappings(spec.get("initContainers"))
    carried: list[tuple[str, int]] = []
    messages: list[tuple[str, str]] = []
    for cs in [*_mappings(status.get("containerStatuses")),
               *_mappings(status.get("initContainerStatuses"))]:
        count = cs.get("restartCount")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            carried.append((str(cs.get("name")), count))
        for state in (_mapping(cs.get("state")), _mapping(cs.get("lastState"))):
            ended = _mapping(state.get("terminated"))
            if ended.get("containerID") and isinstance(ended.get("message"), str):
                messages.append((str(ended["containerID"]), ended["message"]))
    return PodFacts(
        uid=str(meta.get("uid") or ""),
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        restart_policy=_policy(spec.get("restartPolicy")),
        apps=tuple(str(c.get("name")) for c in apps),
        inits=tuple(str(c.get("name")) for c in inits),
        sidecars=frozenset(
            str(c.get("name")) for c in inits if c.get("restartPolicy") == "Always"
        ),
        images=tuple((str(c.get("name")), str(c.get("image") or "")) for c in (*apps, *inits)),
        deleting=bool(meta.get("deletionTimestamp")),
        carried_restarts=tuple(carried),
        carried_messages=tuple(messages),
        active_deadline=_seconds(spec.get("activeDeadlineSeconds")),
        start_time=_epoch(status.get("startTime")),
        probe_thresholds=tuple(
            (str(c.get("name")), t) for c in (*apps, *inits)
            if (t := readiness.thresholds_of(c)) is not None
        ),
        message_sources=tuple(
            src for c in (*apps, *inits)
            if (src := termination.source_of(c, _list(spec.get("volumes")))) is not None
        ),
    )


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def _mappings(raw: Any) -> list[Mapping[str, Any]]:
    return [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []


def _list(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else []


def _seconds(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        value = float(raw)
    except OverflowError:  # an int beyond any float: no deadline anyone could reach
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def fresh_runtime(facts: PodFacts, container: str) -> ContainerRuntime:
    """A container the kubelet has not run yet (in this process)."""
    restarts = next((n for name, n in facts.carried_restarts if name == container), 0)
    return ContainerRuntime(
        name=container,
        image=facts.image(container),
        init=container in facts.inits,
        sidecar=container in facts.sidecars,
        restart_count=restarts,
    )
