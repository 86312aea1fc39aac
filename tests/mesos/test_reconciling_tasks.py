"""The reconciliation helper follows the documented algorithm against a replay master."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from k8sbridge.mesos import reconcile, types
from k8sbridge.model.ids import AgentId, TaskId
from tests.mesos import fixtures as fx
from tests.mesos.helpers import running
from tests.mesos.replay import ReplayMaster, Script
from tests.mesos.test_subscribing_replay import make, subscribed

A = AgentId(fx.AGENT_ID)


@pytest.fixture
async def master() -> AsyncIterator[ReplayMaster]:
    m = ReplayMaster()
    await m.start()
    m.scripts.append(Script(chunks=[subscribed()]))
    yield m
    await m.stop()


def reply(task_id: str, state: str = "TASK_RUNNING") -> bytes:
    return fx.frame(fx.update(task_id, state=state, with_uuid=False))


async def test_explicit_until_all_answered_then_implicit_reports_strays(
        master: ReplayMaster,
) -> None:
    known = {TaskId("t1"): A, TaskId("t2"): A, TaskId("t3"): None}
    strays: list[types.TaskStatus] = []
    fw, rec = make(master.address)
    reconciler = reconcile.Reconciler(
        framework=fw,
        known_tasks=lambda: known,
        on_unknown_task=strays.append,
        initial_backoff=0.2,
        implicit_window=0.3,
    )

    async def responder() -> None:
        first = await master.wait_for_call("RECONCILE", count=1)
        assert len(first.body["reconcile"]["tasks"]) == 3
        master.push(reply("t1"))  # t2 and t3 stay silent in round 1
        second = await master.wait_for_call("RECONCILE", count=2)
        assert sorted(t["task_id"]["value"] for t in second.body["reconcile"]["tasks"]) == [
            "t2",
            "t3",
        ]
        master.push(reply("t2") + reply("t3", "TASK_LOST"))
        implicit = await master.wait_for_call("RECONCILE", count=3)
        assert implicit.body["reconcile"] == {"tasks": []}
        master.push(reply("t1") + reply("stray-task") + reply("t2"))

    async with running(fw) as run:
        await run.ready()
        answering = asyncio.create_task(responder())
        report = await asyncio.wait_for(reconciler.reconcile(), 10)
        await answering
    assert report.rounds == 2
    assert report.unanswered == ()
    assert [s.task_id for s in report.unknown_to_caller] == ["stray-task"]
    assert [s.task_id for s in strays] == ["stray-task"]
    assert master.calls_of("ACKNOWLEDGE") == []  # master replies carry no uuid
    t3 = master.calls_of("RECONCILE")[0].body["reconcile"]["tasks"][2]
    assert t3 == {"task_id": {"value": "t3"}}  # no agent known: no agent_id sent


async def test_explicit_gives_up_after_max_rounds(master: ReplayMaster) -> None:
    fw, rec = make(master.address)
    reconciler = reconcile.Reconciler(
        framework=fw,
        known_tasks=lambda: {TaskId("ghost"): A},
        initial_backoff=0.05,
        max_rounds=3,
        implicit_window=0.05,
    )
    async with running(fw) as run:
        await run.ready()
        report = await asyncio.wait_for(reconciler.reconcile(), 10)
    assert report.rounds == 3 and report.unanswered == ("ghost",)
    assert len(master.calls_of("RECONCILE")) == 4  # three explicit, one implicit


async def test_run_reconciles_after_each_subscription_and_periodically(
        master: ReplayMaster,
) -> None:
    master.scripts.append(Script(chunks=[subscribed()], stream_id="s2"))
    fw, rec = make(master.address)
    reconciler = reconcile.Reconciler(
        framework=fw, known_tasks=dict, implicit_window=0.05, period=0.2
    )
    stop = asyncio.Event()
    async with running(fw) as run:
        await run.ready()
        task = asyncio.create_task(reconciler.run(stop=stop, ready=asyncio.Event()))
        await master.wait_for_call("RECONCILE", count=3)  # first, then periodic implicit ones
        assert len(reconciler.reports) == 1
        master.close_stream()  # the framework re-subscribes: a full reconciliation again
        await master.wait_for_call("RECONCILE", count=6)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert len(reconciler.reports) == 2
    assert all(c.headers["Mesos-Stream-Id"] in ("stream-1", "s2") for c in master.calls)
