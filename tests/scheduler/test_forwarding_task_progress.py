"""A launched task's STARTING/RUNNING update goes to the status writer at once, not through
the loop's inbox (which waits while the loop binds and launches); everything else, and any
update behind a queued Mesos event, keeps the inbox and its order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from k8sbridge import settings as bridge_settings
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids
from k8sbridge.scheduler import loop

UID = "0b6c7c8e-0000-4000-8000-000000000001"


class _Sink:
    """Records what the loop hands to the status writer."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str, bool]] = []

    def task_status(
        self, *, pod: dict[str, Any], status: mesos_types.TaskStatus, container: str,
        attempt: int, agent: Any, ack: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.statuses.append((status.state, container, ack is not None))

    def unschedulable(self, *, pod: dict[str, Any], message: str) -> None: ...

    def scheduled(self, *, pod: dict[str, Any], node_name: str) -> None: ...

    def launch_failed(self, *, pod: dict[str, Any], reason: str, message: str) -> None: ...

    def forget(self, uid: str) -> None: ...

    def observe(self, pod: dict[str, Any]) -> None: ...


class _Agents:
    agents: dict[ids.AgentId, Any] = {}

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None:
        return "node-1"


def _launched(sink: _Sink) -> loop.Scheduler:
    scheduler = loop.Scheduler(
        settings=bridge_settings.load(env={}), kube=None,  # type: ignore[arg-type]
        driver=None,  # type: ignore[arg-type]  # nothing here calls Mesos
        sink=sink, agents=_Agents(), list_tasks=None,  # type: ignore[arg-type]
        generation=1,
    )
    tid = ids.TaskId(f"{UID}.0.main")
    scheduler._pods[UID] = {"metadata": {"uid": UID, "name": "p", "namespace": "default"},
                            "spec": {"containers": [{"name": "main"}]}}
    scheduler._tasks[tid] = loop.TaskRecord(task_id=tid, pod_uid=UID, attempt=0,
                                            container="main", agent_id=ids.AgentId("a1"))
    _launch(scheduler)
    return scheduler


def _launch(scheduler: loop.Scheduler) -> None:
    tid = ids.TaskId(f"{UID}.0.main")
    scheduler._lives.launched(loop.PodLaunch(uid=UID, attempt=0, agent_id=ids.AgentId("a1"),
                                             node_name="node-1", task_ids=(tid,)))


def _update(state: str, *, attempt: int = 0, uuid: str | None = "dXVpZA==") -> Any:
    return mesos_events.Update(status=mesos_types.TaskStatus(
        task_id=ids.TaskId(f"{UID}.{attempt}.main"), state=state, timestamp=100.0,
        source="SOURCE_EXECUTOR", uuid=uuid, agent_id=ids.AgentId("a1"),
    ))


async def test_starting_and_running_of_a_launched_task_skip_the_inbox() -> None:
    sink = _Sink()
    scheduler = _launched(sink)
    await scheduler.on_mesos_event(_update("TASK_STARTING"))
    await scheduler.on_mesos_event(_update("TASK_RUNNING"))
    assert sink.statuses == [("TASK_STARTING", "main", True), ("TASK_RUNNING", "main", True)]
    assert scheduler.tasks[ids.TaskId(f"{UID}.0.main")].state == "TASK_RUNNING"
    assert scheduler._inbox.empty()


async def test_other_updates_and_updates_behind_them_keep_the_inbox_order() -> None:
    sink = _Sink()
    scheduler = _launched(sink)
    await scheduler.on_mesos_event(_update("TASK_FAILED"))  # terminal: the loop decides
    await scheduler.on_mesos_event(_update("TASK_RUNNING"))  # behind it: queued too
    await scheduler.on_mesos_event(_update("TASK_RUNNING", attempt=1))  # not the launch's
    assert sink.statuses == []
    assert scheduler._inbox.qsize() == 3


async def test_a_deleting_pod_or_a_killed_task_goes_through_the_loop() -> None:
    sink = _Sink()
    scheduler = _launched(sink)
    scheduler._lives.start_deleting(UID)
    await scheduler.on_mesos_event(_update("TASK_RUNNING"))
    scheduler._lives.forget(UID)  # (not deleting after all: launched as before)
    _launch(scheduler)
    scheduler._tasks[ids.TaskId(f"{UID}.0.main")].killing = True
    scheduler._mesos_queued = 0  # (as if the loop had handled the first)
    await scheduler.on_mesos_event(_update("TASK_RUNNING"))
    assert sink.statuses == []


async def test_queued_offers_do_not_hold_progress_back_but_a_queued_failure_does() -> None:
    sink = _Sink()
    scheduler = _launched(sink)
    # a burst: an offer and a rescind wait in the inbox behind the running pass
    await scheduler.on_mesos_event(mesos_events.Offers(offers=()))
    await scheduler.on_mesos_event(mesos_events.Rescind(offer_id=ids.OfferId("o1")))
    await scheduler.on_mesos_event(_update("TASK_STARTING"))
    assert sink.statuses == [("TASK_STARTING", "main", True)]
    # an agent lost may end the task: what comes after it waits its turn
    await scheduler.on_mesos_event(mesos_events.Failure(agent_id=ids.AgentId("a1")))
    await scheduler.on_mesos_event(_update("TASK_RUNNING"))
    assert sink.statuses == [("TASK_STARTING", "main", True)]
    assert scheduler._inbox.qsize() == 4
    assert scheduler._mesos_queued == 2  # the failure and the update: not the offers
