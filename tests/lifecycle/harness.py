"""A harness for the lifecycle, as Nomad's ``scheduler/testing.go`` is for its reconciler.

It owns one pod's record, feeds events through ``machine.apply`` at a clock it controls, and
records every intent (``intents``), so a test reads as: "these updates happen; these intents
follow; the rendered status shows this".
"""

from __future__ import annotations

from typing import Any

from k8sbridge.kubelet import statusmap
from k8sbridge.lifecycle import events, intents, machine
from k8sbridge.lifecycle.record import PodRecord
from k8sbridge.model import ids, tasks

T0 = 1_800_000_000.0
UID = "u1"


def pod(
    *,
    apps: tuple[str, ...] = ("app",),
    inits: tuple[str, ...] = (),
    sidecars: tuple[str, ...] = (),
    policy: str = "Always",
    deleting: bool = False,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A bound pod; ``sidecars`` are init containers with restartPolicy Always."""
    init_specs = [
        {"name": n, "image": "busybox", **({"restartPolicy": "Always"} if n in sidecars else {})}
        for n in inits
    ]
    meta: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": UID}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    raw: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": policy,
            "initContainers": init_specs,
            "containers": [{"name": n, "image": "busybox"} for n in apps],
        },
    }
    if status is not None:
        raw["status"] = status
    return raw


class Harness:
    def __init__(self, raw_pod: dict[str, Any]) -> None:
        self.pod = raw_pod
        self.record = PodRecord.new(raw_pod)
        self.now = T0
        self.intents: list[intents.Intent] = []

    def feed(self, event: events.Event, *, at: float | None = None) -> tuple[intents.Intent, ...]:
        if at is not None:
            self.now = T0 + at
        self.record, out = machine.apply(self.record, event, self.now)
        self.intents.extend(out)
        return out

    def update(
        self, container: str, attempt: int, state: str, *, at: float, code: int = 0,
        needs_ack: bool = False,
    ) -> tuple[intents.Intent, ...]:
        """An update of the task ``<uid>.<attempt>.<container>`` (``state`` without TASK_)."""
        full = f"TASK_{state}"
        status = tasks.TaskStatusView(
            task_id=ids.TaskId(f"{UID}.{attempt}.{container}"),
            state=full,
            timestamp=T0 + at,
            message=f"Command exited with status {code}" if full == "TASK_FAILED" else "",
        )
        return self.feed(
            events.TaskUpdated(container=container, attempt=attempt, status=status,
                               needs_ack=needs_ack),
            at=at,
        )

    def run(self, container: str, attempt: int, *, at: float) -> None:
        self.update(container, attempt, "STARTING", at=at)
        self.update(container, attempt, "RUNNING", at=at)

    def relaunches(self) -> list[intents.Relaunch]:
        return [i for i in self.intents if isinstance(i, intents.Relaunch)]

    def kills(self) -> list[str]:
        return [str(i.task_id) for i in self.intents if isinstance(i, intents.Kill)]

    def events(self) -> list[str]:
        return [i.reason for i in self.intents if isinstance(i, intents.RecordEvent)]

    def status(self) -> dict[str, Any]:
        return statusmap.pod_status(
            pod=self.pod, containers=self.record.runtimes, now=self.now, host_ip="10.0.0.1"
        )

    def container(self, name: str) -> dict[str, Any]:
        status = self.status()
        found: dict[str, Any] = next(
            c for c in [*status.get("initContainerStatuses", ()), *status["containerStatuses"]]
            if c["name"] == name
        )
        return found
