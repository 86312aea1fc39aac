"""Integration: the scheduler client against the REAL embedded kernel (master + agent).

Everything here goes over real HTTP (the v1 scheduler API), real RecordIO streams and real
task processes on the in-process agent; nothing of the protocol is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.agent.agent import Agent
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.kernel.master.master import Master
from k8sbridge.mesos import calls, errors, events, framework, operator, types
from k8sbridge.mesos.client import ClientConfig
from k8sbridge.model import resources as res
from k8sbridge.model.ids import TaskId
from tests.conftest import free_port
from tests.mesos.helpers import Recorder, command_task, launch_group, running

ROLE = "k8s"
INFO = types.FrameworkInfo(name="client-it", user="root", roles=(ROLE,))


def master_config(tmp_path: Path, **extra: object) -> MasterConfig:
    values: dict[str, object] = {
        "port": free_port(),
        "heartbeat_interval": 1.0,
        "allocation_interval": 0.1,
        "work_dir": tmp_path / "master",
    }
    values.update(extra)
    return MasterConfig(**values)  # type: ignore[arg-type]


def agent_config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        master="127.0.0.1:0",
        work_dir=tmp_path / "agent",
        resources="cpus:2;mem:1024;disk:1024;ports:[31000-31099]",
        attributes="rack:r1",
        status_retry_seconds=1.0,
        executor_shutdown_grace_seconds=1.0,
    )


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    async with main.running_kernel(
        master=master_config(tmp_path), agents=[agent_config(tmp_path)]
    ) as k:
        yield k


def make(
        master: str,
        *,
        store: framework.FrameworkIdStore | None = None,
        offer_constraints: dict[str, object] | None = None,
) -> tuple[framework.Framework, Recorder]:
    recorder = Recorder()
    fw = framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=INFO,
            client=ClientConfig(masters=(master,), call_timeout=10, connect_timeout=2),
            backoff_initial=0.1,
            backoff_max=0.5,
            offer_constraints=offer_constraints,  # type: ignore[arg-type]
        ),
        handler=recorder,
        id_store=store,
        _rng=random.Random(3),
    )
    return fw, recorder


async def next_offer(rec: Recorder, *, after: int = 0, timeout: float = 10) -> types.Offer:
    found = await rec.wait_for(lambda e: isinstance(e, events.Offers), count=after + 1,
                               timeout=timeout)
    offers = found[after]
    assert isinstance(offers, events.Offers)
    return offers.offers[0]


def offers_count(rec: Recorder) -> int:
    return len(rec.of(events.Offers))


def group(
        fw: framework.Framework, offer: types.Offer, commands: dict[str, str]
) -> dict[str, Any]:
    """A LAUNCH_GROUP of one shell task per command, on the offer's agent, for ``accept``."""
    assert fw.framework_id is not None
    tasks = [
        command_task(
            name,
            task_id=name,
            agent_id=offer.agent_id,
            resources=res.Resources.from_scalars({"cpus": 0.1, "mem": 32}).allocated_to(ROLE),
            command=cmd,
        )
        for name, cmd in commands.items()
    ]
    return launch_group(
        framework_id=fw.framework_id,
        executor_id=f"exec-{offer.id}",
        executor_resources=res.Resources.from_scalars(
            {"cpus": 0.1, "mem": 32, "disk": 10}
        ).allocated_to(ROLE),
        tasks=tasks,
    )


def states(rec: Recorder, task_id: str) -> list[str]:
    return [
        e.status.state
        for e in rec.events
        if isinstance(e, events.Update) and e.status.task_id == task_id
    ]


async def wait_state(
        rec: Recorder, task_id: str, state: str, *, timeout: float = 20
) -> types.TaskStatus:
    """Wait for ``state`` (or fail fast on another terminal state) of ``task_id``."""
    found = await rec.wait_for(
        lambda e: isinstance(e, events.Update)
        and e.status.task_id == task_id
        and (e.status.state == state or e.status.is_terminal),
        timeout=timeout,
    )
    update = found[0]
    assert isinstance(update, events.Update)
    assert update.status.state == state, update.status
    return update.status


async def test_subscribe_offer_launch_group_running_finished_with_acks(
        kernel: main.Kernel,
) -> None:
    fw, rec = make(kernel.master_address)
    async with running(fw) as run:
        await run.ready()
        sub = rec.events[0]
        assert isinstance(sub, events.Subscribed) and sub.master is not None
        offer = await next_offer(rec)
        assert offer.allocation_role == ROLE
        assert offer.resources.scalar("cpus") == 2.0
        assert {a.name: a.value_str for a in offer.attributes} == {"rack": "r1"}
        await fw.accept([offer.id], [group(fw, offer, {"quick": "echo hi", "slower": "sleep 0.5"})])
        await wait_state(rec, "quick", "TASK_FINISHED")
        await wait_state(rec, "slower", "TASK_FINISHED")
    for name in ("quick", "slower"):
        seen = states(rec, name)
        # FINISHED only arrives after RUNNING was acknowledged: acks reached the agent.
        assert seen.index("TASK_RUNNING") < seen.index("TASK_FINISHED")
    assert fw.metrics.get("acknowledged") >= 4
    assert fw.metrics.get("calls/ACKNOWLEDGE/ok") >= 4


async def test_kill_with_a_grace_period(kernel: main.Kernel) -> None:
    fw, rec = make(kernel.master_address)
    loop = asyncio.get_running_loop()
    # The task ignores SIGTERM: only SIGKILL after the grace period ends it.
    stubborn = "trap '' TERM; while true; do sleep 0.1; done"
    async with running(fw) as run:
        await run.ready()
        offer = await next_offer(rec)
        operation = group(fw, offer, {"stubborn": stubborn, "sibling": "sleep 60"})
        await fw.accept([offer.id], [operation])
        await wait_state(rec, "stubborn", "TASK_RUNNING")
        # RUNNING means "spawned": give the shell time to install its trap first.
        await asyncio.sleep(1.0)
        started = loop.time()
        await fw.kill(TaskId("stubborn"), agent_id=offer.agent_id, grace_period_seconds=1.0)
        await wait_state(rec, "stubborn", "TASK_KILLED")
        took = loop.time() - started
        await wait_state(rec, "sibling", "TASK_KILLED")  # one group, one lifecycle
    assert "TASK_KILLING" in states(rec, "stubborn")  # we declared TASK_KILLING_STATE
    assert 0.9 <= took < 10


async def test_decline_filters_and_suppress_revive_are_observable(kernel: main.Kernel) -> None:
    fw, rec = make(kernel.master_address)
    async with running(fw) as run:
        await run.ready()
        first = await next_offer(rec)
        await fw.decline([first.id], refuse_seconds=60)
        await asyncio.sleep(1.0)  # ten allocation passes: the filter holds
        assert offers_count(rec) == 1
        await fw.revive()  # clears filters
        await next_offer(rec, after=1, timeout=5)

        second = rec.of(events.Offers)[1].offers[0]  # type: ignore[attr-defined]
        await fw.suppress()
        await fw.decline([second.id], refuse_seconds=0)  # no filter, but suppressed
        await asyncio.sleep(1.0)
        assert offers_count(rec) == 2
        await fw.revive([ROLE])
        third = await next_offer(rec, after=2, timeout=5)

        await fw.decline([third.id], refuse_seconds=0.5)  # a short filter expires by itself
        await next_offer(rec, after=3, timeout=5)


async def test_failover_to_a_new_instance_reconciles_the_running_task(
        kernel: main.Kernel, tmp_path: Path
) -> None:
    store_path = tmp_path / "framework-id"
    first, rec1 = make(kernel.master_address, store=framework.FileFrameworkIdStore(store_path))
    async with running(first) as run:
        await run.ready()
        offer = await next_offer(rec1)
        await first.accept([offer.id], [group(first, offer, {"long": "sleep 60"})])
        running_status = await wait_state(rec1, "long", "TASK_RUNNING")
    # The first instance is gone (its stream closed); a new one starts from the stored id.
    framework_id = framework.FileFrameworkIdStore(store_path).load()
    assert framework_id == first.framework_id
    second, rec2 = make(kernel.master_address, store=framework.FileFrameworkIdStore(store_path))
    reader = operator.OperatorClient(transport=second.transport)

    def about_long(e: events.Event) -> bool:
        return isinstance(e, events.Update) and e.status.task_id == "long"

    async with running(second) as run:
        await run.ready()
        assert second.framework_id == framework_id  # the same framework, not a new one
        # What the bridge reads first: GET_TASKS on the subscription's transport.
        [task] = [t for t in await reader.get_tasks() if t["task_id"]["value"] == "long"]
        assert task["state"] == "TASK_RUNNING"
        assert task["framework_id"]["value"] == framework_id
        # Explicit: the task we remember is RUNNING.
        await second.reconcile({TaskId("long"): running_status.agent_id})
        [explicit] = await rec2.wait_for(about_long, timeout=10)
        assert isinstance(explicit, events.Update)
        assert explicit.status.state == "TASK_RUNNING"
        assert explicit.status.uuid is None  # a master reply: never acknowledged
        assert explicit.status.reason == "REASON_RECONCILIATION"
        # Implicit: the master answers for every task it knows of ours.
        await second.reconcile({})
        implicit = (await rec2.wait_for(about_long, count=2, timeout=10))[1]
        assert isinstance(implicit, events.Update)
        assert implicit.status.state == "TASK_RUNNING" and implicit.status.uuid is None
        await second.kill(TaskId("long"), grace_period_seconds=0.5)
        await wait_state(rec2, "long", "TASK_KILLED")


class Component:
    """A kernel part started by hand (the master restart test needs to stop just one)."""

    def __init__(self, run: object, name: str) -> None:
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(
            run(stop=self.stop, ready=self.ready), name=name  # type: ignore[operator]
        )

    async def started(self) -> None:
        waiter = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait({waiter, self.task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self.ready.is_set():
            self.task.result()
            raise TimeoutError("component did not start")

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def test_a_master_restart_during_the_stream_is_survived(tmp_path: Path) -> None:
    config = master_config(tmp_path, agent_reregister_timeout=30.0)
    master = Component(Master(config=config).run, "master-1")
    await master.started()
    agent = Agent(
        config=dataclasses.replace(
            agent_config(tmp_path),
            master=f"127.0.0.1:{config.port}",
            registration_backoff_max_seconds=0.5,
        )
    )
    agent_run = Component(agent.run, "agent")
    fw, rec = make(f"127.0.0.1:{config.port}")
    try:
        await agent_run.started()
        async with running(fw) as run:
            await run.ready()
            offer = await next_offer(rec)
            await fw.accept([offer.id], [group(fw, offer, {"survivor": "sleep 60"})])
            await wait_state(rec, "survivor", "TASK_RUNNING")
            framework_id = fw.framework_id
            assert fw.subscription == 1

            await master.halt()  # the stream breaks mid-way
            master = Component(Master(config=config).run, "master-2")
            await master.started()

            await asyncio.wait_for(fw.wait_for_subscription(after=1), 20)
            assert fw.framework_id == framework_id  # re-subscribed, not re-registered
            assert fw.metrics.get("reconnects") >= 1
            # Once the agent is back, the master knows the task again and offers flow.
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                before = len(rec.events)
                await fw.reconcile({TaskId("survivor"): offer.agent_id})
                await asyncio.sleep(0.5)
                replies = [
                    e.status for e in rec.events[before:]
                    if isinstance(e, events.Update) and e.status.task_id == "survivor"
                ]
                if replies and replies[-1].state == "TASK_RUNNING":
                    break
                assert asyncio.get_running_loop().time() < deadline, replies
            subscribed_events = rec.of(events.Subscribed)
            assert len(subscribed_events) == 2
            await fw.kill(TaskId("survivor"), grace_period_seconds=0.5)
            await wait_state(rec, "survivor", "TASK_KILLED")
    finally:
        await agent_run.halt()
        await master.halt()


async def test_update_framework_moves_offers_to_a_new_role_and_teardown_ends_run(
        kernel: main.Kernel,
) -> None:
    fw, rec = make(kernel.master_address)
    async with running(fw) as run:
        await run.ready()
        offer = await next_offer(rec)
        assert offer.allocation_role == ROLE
        await fw.accept([offer.id], [group(fw, offer, {"doomed": "sleep 60"})])
        await wait_state(rec, "doomed", "TASK_RUNNING")
        seen = offers_count(rec)
        await fw.update_framework(
            framework_info=dataclasses.replace(INFO, roles=(ROLE, "batch")),
            suppressed_roles=[ROLE],
        )
        assert fw.framework_info.roles == (ROLE, "batch")
        moved = await next_offer(rec, after=seen, timeout=10)
        assert moved.allocation_role == "batch"
        with pytest.raises(errors.BadRequest):  # changing the user is refused (400)
            await fw.update_framework(framework_info=dataclasses.replace(INFO, user="other"))
        await fw.teardown()
        await run.result(timeout=10)  # the master closed the stream: run() returned
    # The framework is gone, so its task's end is only visible to the operator API.
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.post(
                kernel.master_url + "/api/v1",
                json={"type": "GET_TASKS"},
                headers={"Accept": "application/json"},
            ) as response:
                tasks = (await response.json())["get_tasks"]
            done = {t["task_id"]["value"]: t["state"] for t in tasks.get("completed_tasks", [])}
            if done.get("doomed") == "TASK_KILLED":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"task not killed after TEARDOWN: {tasks}")
    assert fw.metrics.get("calls/UPDATE_FRAMEWORK/ok") == 1
    assert fw.metrics.get("calls/TEARDOWN/ok") == 1
    # A new instance started from the torn-down id is told it was removed and registers anew
    # (not a crash loop on an id that can never come back).
    assert fw.framework_id is not None
    store = framework.MemoryFrameworkIdStore(fw.framework_id)
    again, _ = make(kernel.master_address, store=store)
    async with running(again) as run:
        await run.ready()
        assert again.framework_id not in (None, fw.framework_id)
    assert store.framework_id == again.framework_id
    assert again.replacements == [(fw.framework_id, again.framework_id)]


async def test_an_operator_teardown_kills_the_tasks_and_the_framework_registers_anew(
        kernel: main.Kernel,
) -> None:
    store = framework.MemoryFrameworkIdStore()
    fw, rec = make(kernel.master_address, store=store)
    async with running(fw) as run:
        await run.ready()
        old = fw.framework_id
        offer = await next_offer(rec)
        await fw.accept([offer.id], [group(fw, offer, {"victim": "sleep 60"})])
        await wait_state(rec, "victim", "TASK_RUNNING")
        generation = fw.subscription
        async with aiohttp.ClientSession() as session:
            async with session.post(
                kernel.master_url + "/api/v1",
                json={"type": "TEARDOWN", "teardown": {"framework_id": {"value": old}}},
            ) as response:
                assert response.status == 200, await response.text()
        async with asyncio.timeout(20):
            await fw.wait_for_subscription(after=generation)
        assert fw.framework_id not in (None, old)
        assert store.framework_id == fw.framework_id
        assert fw.replacements == [(old, fw.framework_id)]
        assert not run.task.done()
        # The new framework is offered resources again (the old one's task is gone).
        await next_offer(rec, after=offers_count(rec), timeout=20)
    async with aiohttp.ClientSession() as session:
        async with session.post(kernel.master_url + "/api/v1", json={"type": "GET_TASKS"},
                                headers={"Accept": "application/json"}) as response:
            tasks_now = (await response.json())["get_tasks"]
    assert [t["task_id"]["value"] for t in tasks_now.get("tasks", [])] == []
    assert {t["task_id"]["value"]: t["state"] for t in tasks_now.get("completed_tasks", [])
            } == {"victim": "TASK_KILLED"}


async def test_offer_constraints_filter_offers_and_update_framework_changes_them(
        kernel: main.Kernel,
) -> None:
    elsewhere = calls.offer_constraints(
        {ROLE: [[calls.attribute_constraint(attribute="rack", predicate="text_equals",
                                            value="r9")]]}
    )
    here = calls.offer_constraints(
        {ROLE: [[calls.attribute_constraint(attribute="rack", predicate="text_matches",
                                            value="r[0-9]")]]}
    )
    fw, rec = make(kernel.master_address, offer_constraints=elsewhere)
    async with running(fw) as run:
        await run.ready()
        await asyncio.sleep(1.0)  # ten allocation passes: the only agent is on rack r1
        assert offers_count(rec) == 0
        await fw.update_framework(offer_constraints=here)
        offer = await next_offer(rec, timeout=10)
        assert {a.name: a.value_str for a in offer.attributes} == {"rack": "r1"}


async def test_a_lost_agent_gives_failure_and_unreachable_then_reconciliation(
        tmp_path: Path,
) -> None:
    config = master_config(tmp_path, agent_ping_interval=0.2, max_missed_pings=2)
    async with main.running_kernel(master=config) as kernel:
        await kernel.add_agent(agent_config(tmp_path), _keep_tasks=True)
        fw, rec = make(kernel.master_address)
        async with running(fw) as run:
            await run.ready()
            offer = await next_offer(rec)
            await fw.accept([offer.id], [group(fw, offer, {"orphan": "sleep 3"})])
            await wait_state(rec, "orphan", "TASK_RUNNING")
            await kernel.stop_agent(0)  # the agent process goes away, its task keeps running
            status = await wait_state(rec, "orphan", "TASK_UNREACHABLE")
            failure = await rec.wait_for(lambda e: isinstance(e, events.Failure))
            assert failure[0] == events.Failure(agent_id=offer.agent_id)  # no executor: agent lost
            assert not status.is_terminal and status.uuid is None
            assert status.unreachable_time is not None
            assert status.reason == "REASON_AGENT_REMOVED"
            seen = len(states(rec, "orphan"))
            await fw.reconcile({TaskId("orphan"): offer.agent_id})
            replies = await rec.wait_for(
                lambda e: isinstance(e, events.Update) and e.status.task_id == "orphan",
                count=seen + 1,
            )
            reply = replies[-1]
            assert isinstance(reply, events.Update)
            assert reply.status.state == "TASK_UNREACHABLE" and reply.status.uuid is None


async def test_a_second_instance_takes_over_and_the_first_stops_without_fighting(
        kernel: main.Kernel,
) -> None:
    store = framework.MemoryFrameworkIdStore()
    first, rec1 = make(kernel.master_address, store=store)
    second, rec2 = make(kernel.master_address, store=store)
    async with running(first) as run1:
        await run1.ready()
        async with running(second) as run2:
            await run2.ready()
            assert second.framework_id == first.framework_id
            with pytest.raises(errors.SubscriptionFailed, match="failed over"):
                await run1.result(timeout=10)
            assert rec1.events[-1] == events.Error("Framework failed over")
            await next_offer(rec2, timeout=10)  # the new instance gets the offers
            assert second.subscribed


async def test_after_its_failover_timeout_expired_the_framework_registers_anew(
        kernel: main.Kernel, tmp_path: Path
) -> None:
    store_path = tmp_path / "framework-id"
    brief = dataclasses.replace(INFO, failover_timeout=0.5)
    first = framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=brief,
            client=ClientConfig(masters=(kernel.master_address,), call_timeout=10,
                                connect_timeout=2),
            backoff_initial=0.1, backoff_max=0.5,
        ),
        handler=Recorder(), id_store=framework.FileFrameworkIdStore(store_path),
    )
    async with running(first) as run:
        await run.ready()
    old = framework.FileFrameworkIdStore(store_path).load()
    assert old is not None and old == first.framework_id
    await asyncio.sleep(2.0)  # disconnected longer than its failover timeout: removed
    second, _ = make(kernel.master_address, store=framework.FileFrameworkIdStore(store_path))
    async with running(second) as run:
        await run.ready()
        assert second.framework_id not in (None, old)
        assert second.replacements == [(old, second.framework_id)]
    assert framework.FileFrameworkIdStore(store_path).load() == second.framework_id
