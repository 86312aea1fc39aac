"""The pod status writer: the sole writer of ``pod.status`` for pods on our nodes.

Why a separate component with its own workers: task updates arrive in bursts (a Deployment of
100 pods starts at once) and each becomes one PATCH. Updates are coalesced per pod (keyed,
level-triggered: a pod queued twice is written once, from its latest state), written by a few
concurrent workers, and **acknowledged to Mesos only after the write succeeded** — an update
that was never shown to Kubernetes is re-sent by the agent.

Status mapping here is deliberately the minimum of issue 5 (phase, containerStatuses
waiting/running/terminated with exit codes, podIP/hostIP, startTime, the standard conditions);
the full kubelet mapping (restart counts, back-off, probes, init containers) is the pure
``kubelet/statusmap.py`` of issue 6 and replaces ``map_status`` once it is wired in.
Events (Scheduled, FailedScheduling, Started, Failed) are posted alongside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.model import tasks as model_tasks

__all__ = ["PodStatusWriter", "map_status"]

log = logging.getLogger(__name__)

RawPod = dict[str, Any]
Ack = Callable[[], Awaitable[None]]

_EXIT = re.compile(r"(?:exit(?:ed)?(?: with)?(?: status| code)?|status)[ =:]*(-?\d+)", re.I)


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerUpdate:
    state: str
    timestamp: float
    reason: str | None
    message: str
    healthy: bool | None
    ip_addresses: tuple[str, ...]
    task_id: str


@dataclasses.dataclass(slots=True)
class _PodState:
    pod: RawPod
    containers: dict[str, list[ContainerUpdate]] = dataclasses.field(default_factory=dict)
    acks: list[Ack] = dataclasses.field(default_factory=list)
    host_ip: str = ""
    node_name: str = ""
    unschedulable: str | None = None
    failure: tuple[str, str] | None = None  # (reason, message) when the launch was refused
    start_time: str | None = None
    written: Any = None
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    started_seen: set[str] = dataclasses.field(default_factory=set)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exit_code(update: ContainerUpdate) -> int:
    if update.state == "TASK_FINISHED":
        return 0
    m = _EXIT.search(update.message or "")
    if m:
        return int(m.group(1))
    if update.state == "TASK_KILLED":
        return 137
    return 1 if update.state == "TASK_FAILED" else 128


def _latest(history: Sequence[ContainerUpdate]) -> ContainerUpdate | None:
    """The most advanced update (a stale, lower-ranked one never moves a container back)."""
    best: ContainerUpdate | None = None
    for upd in history:
        if best is None or model_tasks.state_rank(upd.state) >= model_tasks.state_rank(
            best.state
        ):
            best = upd
    return best


def map_status(
    *,
    pod: Mapping[str, Any],
    containers: Mapping[str, Sequence[ContainerUpdate]],
    host_ip: str,
    start_time: str,
    now: str,
    unschedulable: str | None = None,
    failure: tuple[str, str] | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The pod status a kubelet would report for these task histories (minimal mapping)."""
    spec = pod.get("spec") or {}
    prev_conditions = {
        c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)
    }

    def condition(ctype: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = prev_conditions.get(ctype)
        transition = (
            prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
        )
        out: dict[str, Any] = {
            "type": ctype, "status": status, "lastProbeTime": None,
            "lastTransitionTime": transition,
        }
        if reason:
            out["reason"] = reason
        if message:
            out["message"] = message
        return out

    if unschedulable is not None and not containers and failure is None:
        return {
            "phase": "Pending",
            "conditions": [condition("PodScheduled", False, "Unschedulable", unschedulable)],
        }

    statuses: list[dict[str, Any]] = []
    pod_ip = ""
    running = terminated = succeeded = 0
    unready: list[str] = []
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    images = {str(c.get("name")): str(c.get("image", "")) for c in spec.get("containers") or []}
    for name in names:
        latest = _latest(containers.get(name, ()))
        cs: dict[str, Any] = {
            "name": name, "image": images.get(name, ""), "imageID": "",
            "restartCount": 0, "ready": False, "started": False,
        }
        if latest is None:
            if failure is not None:
                cs["state"] = {"waiting": {"reason": failure[0], "message": failure[1]}}
            else:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            unready.append(name)
        else:
            cs["containerID"] = f"mesos://{latest.task_id}"
            pod_ip = pod_ip or (latest.ip_addresses[0] if latest.ip_addresses else "")
            first_run = min(
                (u.timestamp for u in containers[name] if u.state == "TASK_RUNNING"),
                default=None,
            )
            if latest.state in ("TASK_STAGING", "TASK_STARTING"):
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
                unready.append(name)
            elif latest.state in ("TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE",
                                  "TASK_UNKNOWN"):
                running += 1
                cs["state"] = {"running": {"startedAt": _iso(first_run or latest.timestamp)}}
                cs["started"] = True
                ready = latest.state == "TASK_RUNNING" and latest.healthy is not False
                cs["ready"] = ready
                if not ready:
                    unready.append(name)
            else:
                terminated += 1
                code = _exit_code(latest)
                if code == 0:
                    succeeded += 1
                reason = "Completed" if code == 0 else "Error"
                if latest.reason == "REASON_CONTAINER_LIMITATION_MEMORY":
                    reason = "OOMKilled"
                elif latest.state in ("TASK_LOST", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                                      "TASK_DROPPED"):
                    reason = "ContainerStatusUnknown"
                term: dict[str, Any] = {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": _iso(first_run) if first_run else None,
                    "finishedAt": _iso(latest.timestamp),
                    "containerID": f"mesos://{latest.task_id}",
                }
                if latest.message:
                    term["message"] = latest.message
                cs["state"] = {"terminated": term}
                unready.append(name)
        statuses.append(cs)

    total = len(names)
    if failure is not None and not running and not terminated:
        phase = "Failed" if spec.get("restartPolicy") == "Never" else "Pending"
    elif terminated == total and total:
        phase = "Succeeded" if succeeded == total else "Failed"
    elif running or terminated:
        phase = "Running"
    else:
        phase = "Pending"
    all_ready = not unready and phase == "Running"
    not_ready_msg = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    finished = phase in ("Succeeded", "Failed")
    conditions = [
        condition("PodReadyToStartContainers", bool(running or terminated)),
        condition("Initialized", True),
        condition(
            "Ready", all_ready,
            "PodCompleted" if finished else ("" if all_ready else "ContainersNotReady"),
            "" if all_ready or finished else not_ready_msg,
        ),
        condition(
            "ContainersReady", all_ready,
            "PodCompleted" if finished else ("" if all_ready else "ContainersNotReady"),
            "" if all_ready or finished else not_ready_msg,
        ),
        condition("PodScheduled", True),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": statuses,
        "startTime": start_time,
        "qosClass": (previous or {}).get("qosClass") or (pod.get("status") or {}).get(
            "qosClass", "BestEffort"
        ),
    }
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
        ip = pod_ip or host_ip
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    if failure is not None and phase == "Failed":
        status["reason"], status["message"] = failure
    return status


class PodStatusWriter:
    """Implements the scheduler loop's ``PodSink``; a component (``run(stop=, ready=)``)."""

    def __init__(self, *, kube: kube_client.KubeClient, workers: int = 8) -> None:
        self._kube = kube
        self._workers = workers
        self._state: dict[str, _PodState] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    # -- PodSink ---------------------------------------------------------------------------

    def _entry(self, pod: RawPod) -> tuple[str, _PodState]:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        state = self._state.get(uid)
        if state is None:
            state = self._state[uid] = _PodState(pod=pod)
        else:
            state.pod = pod
        return uid, state

    def _enqueue(self, uid: str) -> None:
        if uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def task_status(
        self, *, pod: RawPod, status: Any, container: str, agent: Any, ack: Ack | None
    ) -> None:
        uid, state = self._entry(pod)
        update = ContainerUpdate(
            state=str(status.state),
            timestamp=float(status.timestamp or 0.0) or _now_ts(),
            reason=status.reason,
            message=str(status.message or ""),
            healthy=status.healthy,
            ip_addresses=tuple(status.ip_addresses or ()),
            task_id=str(status.task_id),
        )
        history = state.containers.setdefault(container, [])
        history.append(update)
        del history[:-20]  # bounded memory per container
        if agent is not None:
            state.host_ip = getattr(agent, "host_ip", "") or state.host_ip
            state.node_name = getattr(agent, "node_name", "") or state.node_name
        if update.state == "TASK_RUNNING" and container not in state.started_seen:
            state.started_seen.add(container)
            state.events.append(("Normal", "Started", f"Started container {container}"))
        elif update.state == "TASK_FAILED":
            state.events.append(
                ("Warning", "Failed", f"Container {container} failed: {update.message}")
            )
        if ack is not None:
            state.acks.append(ack)
        self._enqueue(uid)

    def unschedulable(self, *, pod: RawPod, message: str) -> None:
        uid, state = self._entry(pod)
        state.unschedulable = message
        state.events.append(("Warning", "FailedScheduling", message))
        self._enqueue(uid)

    def scheduled(self, *, pod: RawPod, node_name: str) -> None:
        uid, state = self._entry(pod)
        state.unschedulable = None
        state.node_name = node_name
        meta = pod.get("metadata") or {}
        state.events.append(
            (
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta.get('name')} "
                f"to {node_name}",
            )
        )
        self._enqueue(uid)

    def launch_failed(self, *, pod: RawPod, reason: str, message: str) -> None:
        uid, state = self._entry(pod)
        state.failure = (reason, message)
        state.events.append(("Warning", "Failed", f"Error: {message}"))
        self._enqueue(uid)

    def forget(self, uid: str) -> None:
        self._state.pop(uid, None)

    # -- the component -----------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        ready.set()
        try:
            await stop.wait()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            try:
                await self._write(uid)
            except kube_errors.KubeError as e:
                log.warning("writing status of pod %s failed (retrying): %s", uid, e)
                await asyncio.sleep(0.5)
                self._enqueue(uid)
            except Exception:  # a mapping bug must not stop every other pod's status
                log.exception("writing status of pod %s failed", uid)

    async def _write(self, uid: str) -> None:
        state = self._state.get(uid)
        if state is None:
            return
        acks, state.acks = state.acks, []
        events, state.events = state.events, []
        pod = state.pod
        meta = pod.get("metadata") or {}
        now = kube_client.now_rfc3339()
        if state.start_time is None and (state.containers or state.failure):
            state.start_time = (pod.get("status") or {}).get("startTime") or now
        status = map_status(
            pod=pod,
            containers=state.containers,
            host_ip=state.host_ip,
            start_time=state.start_time or now,
            now=now,
            unschedulable=state.unschedulable,
            failure=state.failure,
            previous=state.written or pod.get("status"),
        )
        signature = _signature(status)
        try:
            if signature != _signature(state.written):
                await self._kube.patch_pod_status(
                    namespace=str(meta.get("namespace") or "default"),
                    name=str(meta.get("name")),
                    uid=uid,
                    status=status,
                )
                state.written = status
        except (kube_errors.NotFound, kube_errors.Conflict):
            log.info("pod %s/%s is gone; dropping its status", meta.get("namespace"),
                     meta.get("name"))
            self._state.pop(uid, None)
        except kube_errors.KubeError:
            state.acks[:0] = acks  # not written: keep the acks for the retry
            state.events[:0] = events
            raise
        for ack in acks:
            try:
                await ack()
            except Exception as e:  # the agent re-sends an unacknowledged update
                log.warning("acknowledging an update of pod %s failed: %s", uid, e)
        for etype, reason, message in events:
            await self._kube.post_event(
                involved={"apiVersion": "v1", "kind": "Pod", "metadata": meta},
                reason=reason,
                message=message,
                type_=etype,
                component="k8sbridge" if reason.endswith("Scheduling") or reason == "Scheduled"
                else "kubelet",
                host=state.node_name or None,
            )


def _signature(status: Any) -> Any:
    if not status:
        return None
    conds = tuple(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    )
    return (status.get("phase"), conds, repr(status.get("containerStatuses")),
            status.get("podIP"), status.get("reason"))


def _now_ts() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()
