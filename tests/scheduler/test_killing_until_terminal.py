"""A task the bridge decided to stop is killed again with back-off until it is terminal, and
never in a loop on the master's answers.

The loop this replaces: a task no pod owns, on an unreachable agent; the bridge killed it on
every update, the master answered each KILL of the (to it unknown) task with a reconciliation
that said TASK_UNREACHABLE again, and so on at ~1,800 log lines a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8sbridge import settings as bridge_settings
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids
from k8sbridge.scheduler import kills, loop

UID = "0b6c7c8e-0000-4000-8000-0000000000aa"
TASK = ids.TaskId(f"{UID}.0.1.main")
AGENT = ids.AgentId("a1")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Sink:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def task_status(self, *, status: Any, **_: Any) -> None:
        self.statuses.append(status.state)

    def unschedulable(self, **_: Any) -> None: ...
    def scheduled(self, **_: Any) -> None: ...
    def launch_failed(self, **_: Any) -> None: ...
    def forget(self, uid: str) -> None: ...
    def observe(self, pod: dict[str, Any]) -> None: ...


class _Driver:
    framework_id = ids.FrameworkId("fw")

    def __init__(self) -> None:
        self.kills: list[str] = []
        self.reconciled: list[dict[str, str]] = []

    async def kill(self, task_id: ids.TaskId, *, agent_id: ids.AgentId | None = None,
                   grace_period_seconds: float | None = None) -> None:
        self.kills.append(str(task_id))

    async def acknowledge(self, status: mesos_types.TaskStatus) -> None: ...

    async def reconcile(self, tasks: Mapping[ids.TaskId, ids.AgentId | None] | None = None
                        ) -> None:
        self.reconciled.append({str(k): str(v) for k, v in (tasks or {}).items()})


class _Info:
    def __init__(self, active: bool) -> None:
        self.active = active
        self.hostname = "h1"


class _Agents:
    def __init__(self) -> None:
        self.agents: dict[ids.AgentId, _Info] = {AGENT: _Info(True)}

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None:
        return "node-1"


def _loop() -> tuple[loop.Scheduler, _Driver, _Sink, _Clock, _Agents]:
    driver, sink, clock, agents = _Driver(), _Sink(), _Clock(), _Agents()
    scheduler = loop.Scheduler(
        settings=bridge_settings.load(env={}), kube=None,  # type: ignore[arg-type]
        driver=driver, sink=sink, agents=agents,  # type: ignore[arg-type]
        list_tasks=None,  # type: ignore[arg-type]  # not reconciling here
        generation=1, _clock=clock,
    )
    scheduler._pods_synced = scheduler._reconciled = scheduler._subscribed = True
    return scheduler, driver, sink, clock, agents


def _status(state: str, task: ids.TaskId = TASK) -> mesos_types.TaskStatus:
    return mesos_types.TaskStatus(task_id=task, state=state, timestamp=1.0,
                                  source="SOURCE_MASTER", agent_id=AGENT)


async def test_an_unreachable_orphan_is_not_killed_on_every_answer() -> None:
    scheduler, driver, _, clock, agents = _loop()
    await scheduler._on_update(_status("TASK_RUNNING"))
    assert driver.kills == [TASK]  # no pod has its uid: killed once
    agents.agents[AGENT].active = False
    for _ in range(1000):  # the master's answer to each kill of an unreachable task
        await scheduler._on_update(_status("TASK_UNREACHABLE"))
    assert driver.kills == [TASK]
    sent = []
    for _ in range(600):  # ten minutes of ticks, a second apart
        clock.now += 1.0
        await scheduler._tick()
        sent.append(len(driver.kills))
        await scheduler._on_update(_status("TASK_UNREACHABLE"))
    # repeated on the back-off's timer only: after 1, 2, 4 ... seconds, then every 5 minutes
    assert 8 <= len(driver.kills) <= 12, len(driver.kills)
    assert sent[:8] == [2, 2, 3, 3, 3, 3, 4, 4], sent[:8]
    # the agent re-registers: the kill is sent at once, and the terminal answer ends it
    agents.agents[AGENT].active = True
    before = len(driver.kills)
    clock.now += 0.5
    await scheduler._tick()
    assert len(driver.kills) == before + 1
    await scheduler._on_update(_status("TASK_KILLED"))
    assert TASK not in scheduler._kills
    clock.now += 1000
    await scheduler._tick()
    assert len(driver.kills) == before + 1


async def test_a_task_seen_reachable_again_is_killed_at_once() -> None:
    scheduler, driver, _, _, _ = _loop()
    await scheduler._on_update(_status("TASK_UNREACHABLE"))
    await scheduler._on_update(_status("TASK_UNREACHABLE"))
    assert driver.kills == [TASK]
    await scheduler._on_update(_status("TASK_RUNNING"))  # back: kill now, not at the timer
    assert driver.kills == [TASK, TASK]
    await scheduler._on_update(_status("TASK_RUNNING"))  # (already reachable: wait)
    assert driver.kills == [TASK, TASK]


async def test_an_ended_incarnation_that_comes_back_is_killed_and_not_shown() -> None:
    scheduler, driver, sink, _, _ = _loop()
    scheduler._uids_seen.add(UID)
    scheduler._pods[UID] = {"metadata": {"uid": UID, "name": "p", "namespace": "default"},
                            "spec": {"containers": [{"name": "main"}]}}
    await scheduler._on_update(_status("TASK_GONE"))  # its pod restarts it elsewhere
    assert sink.statuses == ["TASK_GONE"] and driver.kills == []
    await scheduler._on_update(_status("TASK_RUNNING"))  # its agent came back with it
    assert driver.kills == [TASK]
    assert sink.statuses == ["TASK_GONE"]  # the pod never sees the old incarnation again
    assert scheduler.tasks[TASK].terminal


async def test_an_older_live_incarnation_of_a_container_is_killed() -> None:
    scheduler, driver, sink, _, _ = _loop()
    scheduler._uids_seen.add(UID)
    scheduler._pods[UID] = {"metadata": {"uid": UID, "name": "p", "namespace": "default"},
                            "spec": {"containers": [{"name": "main"}]}}
    newer = ids.TaskId(f"{UID}.1.2.main")
    await scheduler._on_update(_status("TASK_RUNNING", newer))
    await scheduler._on_update(_status("TASK_RUNNING", ids.TaskId(f"{UID}.0.main")))
    assert driver.kills == [f"{UID}.0.main"]
    assert sink.statuses == ["TASK_RUNNING"]


async def test_an_agent_back_gets_its_unreachable_tasks_reconciled() -> None:
    scheduler, driver, _, clock, agents = _loop()
    scheduler._uids_seen.add(UID)
    scheduler._pods[UID] = {"metadata": {"uid": UID, "name": "p", "namespace": "default"},
                            "spec": {"containers": [{"name": "main"}]}}
    await scheduler._tick()  # the agent is known active
    await scheduler._on_update(_status("TASK_UNREACHABLE"))
    del agents.agents[AGENT]  # unreachable: the master no longer lists it
    clock.now += 1
    await scheduler._tick()
    assert driver.reconciled == []
    agents.agents[AGENT] = _Info(True)
    clock.now += 1
    await scheduler._tick()
    assert driver.reconciled == [{TASK: AGENT}]
    assert driver.kills == []


def test_the_back_off_doubles_from_the_grace_up_to_five_minutes() -> None:
    book = kills.KillBook()
    dues = [book.killed(TASK, agent_id=AGENT, grace=2.0, why="w", now=0.0).due
            for _ in range(12)]
    assert dues[:4] == [3.0, 4.0, 6.0, 10.0]
    assert dues[-1] == kills.MAX_RETRY_SECONDS
    assert book.observe(TASK, state="TASK_UNKNOWN") == "wait"  # not terminal
    assert book.observe(TASK, state="TASK_STARTING") == "kill"
    assert book.observe(TASK, state="TASK_GONE_BY_OPERATOR") == "done"
    assert TASK not in book and book.next_due() is None
