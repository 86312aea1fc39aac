"""Reliable status updates (head of line, retried until ACK), health checks and checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import updates
from tests.kernel.agent import fakemaster as fm


async def test_head_is_retried_until_acked_and_blocks_the_rest(tmp_path: Path) -> None:
    master = fm.FakeMaster(auto_ack=False)
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, status_retry_seconds=0.3) as run:
            await master.send(fm.run_task(fm.command_task("r", "exit 0")))
            await master.wait_for(lambda: len(master.updates) >= 3, timeout=10)
            # Only STARTING is in flight: retried with the same uuid, RUNNING waits behind it.
            assert {u["state"] for u in master.updates} == {"TASK_STARTING"}
            assert len({u["uuid"] for u in master.updates}) == 1
            head = master.updates[0]
            await master.ack(fm.FRAMEWORK_ID, head)
            running = await master.wait_state("r", "TASK_RUNNING")
            await master.ack(fm.FRAMEWORK_ID, running)
            finished = await master.wait_state("r", "TASK_FINISHED")
            await master.ack(fm.FRAMEWORK_ID, finished)
            count = len(master.updates)
            await asyncio.sleep(1.0)
            assert len(master.updates) == count  # nothing left to retry
            assert not run.agent._updates
    finally:
        await master.stop()


async def test_unacked_head_is_resent_after_reregistration(tmp_path: Path) -> None:
    master = fm.FakeMaster(auto_ack=False)
    await master.start()
    port = master.port
    try:
        async with fm.running_agent(tmp_path, master=master, status_retry_seconds=60) as run:
            await master.send(fm.run_task(fm.command_task("rr", "sleep 300")))
            first = (await master.wait_for(lambda: master.updates))[0]
            await master.stop()
            master.updates.clear()
            await master.start(port=port)
            await master.wait_for(lambda: len(master.registrations) >= 2, timeout=20)
            again = await master.wait_state("rr", "TASK_STARTING", timeout=10)
            assert again["uuid"] == first["uuid"]
            rereg = master.registrations[-1]
            assert rereg["agent_info"]["id"] == {"value": run.agent.agent_id}
            assert [t["task_id"]["value"] for t in rereg["tasks"]] == ["rr"]
    finally:
        await master.stop()


def test_update_streams_are_per_task_fifos() -> None:
    su = updates.StatusUpdates(retry_seconds=1.0)
    s1 = {"task_id": {"value": "a"}, "state": "TASK_RUNNING", "uuid": "u1"}
    s2 = {"task_id": {"value": "a"}, "state": "TASK_FINISHED", "uuid": "u2"}
    s3 = {"task_id": {"value": "b"}, "state": "TASK_RUNNING", "uuid": "u3"}
    assert [m["status"]["uuid"]
            for m in su.add(framework_id="f", status=s1, incarnation="c1", now=0)] == ["u1"]
    assert su.add(framework_id="f", status=s2, incarnation="c1", now=0) == []
    assert [m["status"]["uuid"]
            for m in su.add(framework_id="f", status=s3, incarnation="c2", now=0)] == ["u3"]
    assert su.due(now=0.5) == []
    assert sorted(m["status"]["uuid"] for m in su.due(now=1.0)) == ["u1", "u3"]
    assert su.due(now=2.5) == []  # backed off to 2 s
    assert su.acknowledge(framework_id="f", task_id="a", uuid="u2", now=3)[0] is None
    acked, nxt = su.acknowledge(framework_id="f", task_id="a", uuid="u1", now=3)
    assert acked == s1 and [m["status"]["uuid"] for m in nxt] == ["u2"]
    assert len(su) == 2


def test_a_new_incarnation_drops_the_stale_updates_of_the_old_one() -> None:
    su = updates.StatusUpdates(retry_seconds=1.0)
    old = {"task_id": {"value": "a"}, "state": "TASK_KILLED", "uuid": "old"}
    new = {"task_id": {"value": "a"}, "state": "TASK_STARTING", "uuid": "new"}
    su.add(framework_id="f", status=old, incarnation="c1", now=0)
    assert su.begin(framework_id="f", task_id="a", incarnation="c2") == 1
    assert su.begin(framework_id="f", task_id="b", incarnation="c2") == 0
    sent = su.add(framework_id="f", status=new, incarnation="c2", now=0)
    assert [m["status"]["uuid"] for m in sent] == ["new"]  # not queued behind the stale one
    assert [m["status"]["uuid"] for m in su.resend_all(now=1)] == ["new"]
    assert su.acknowledge(framework_id="f", task_id="a", uuid="old")[0] is None
    assert su.acknowledge(framework_id="f", task_id="a", uuid="new")[0] == new


async def test_a_relaunched_task_id_is_not_ended_by_its_old_incarnations_updates(
        tmp_path: Path) -> None:
    # A task ends while its master does not acknowledge (a master that lost its state); the
    # framework launches the same task id again. The old incarnation's TASK_KILLED must not
    # reach the master after the relaunch, and the new task's updates must not wait behind it.
    master = fm.FakeMaster(auto_ack=False)
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, status_retry_seconds=0.2):
            await master.send(fm.run_task(fm.command_task("same", "sleep 300")))
            await master.wait_state("same", "TASK_STARTING")
            await master.send(fm.kill_task("same", grace=0.2))
            old_cid = master.updates[0]["container_status"]["container_id"]["value"]
            await asyncio.sleep(1.0)  # killed by now; its updates wait for an ACK
            await master.send(fm.run_task(fm.command_task("same", "sleep 300")))

            def new_updates() -> list[dict[str, Any]]:
                return [u for u in master.updates
                        if u["container_status"]["container_id"]["value"] != old_cid]

            first_new = (await master.wait_for(new_updates))[0]
            assert first_new["state"] == "TASK_STARTING"
            await master.ack(fm.FRAMEWORK_ID, first_new)
            running = await master.wait_for(lambda: [
                u for u in new_updates() if u["state"] == "TASK_RUNNING"])
            await master.ack(fm.FRAMEWORK_ID, running[0])
            seen = len(master.updates)
            await asyncio.sleep(1.0)  # several retry rounds
            after = master.updates[master.updates.index(first_new):]
            assert [u for u in after
                    if u["container_status"]["container_id"]["value"] == old_cid] == []
            assert len(master.updates) == seen  # everything of the new task was acked
    finally:
        await master.stop()


async def test_health_check_flips_and_kills_after_consecutive_failures(tmp_path: Path) -> None:
    health = {"type": "COMMAND", "command": {"value": "test -f healthy"},
              "delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 2,
              "grace_period_seconds": 0, "consecutive_failures": 3}
    task = fm.command_task("h", "touch healthy; sleep 3; rm healthy; sleep 300",
                           health_check=health)
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        healthy = await run.master.wait_for(lambda: [
            u for u in run.master.updates if u.get("healthy") is True])
        assert healthy[0]["state"] == "TASK_RUNNING"
        assert healthy[0]["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        unhealthy = await run.master.wait_for(lambda: [
            u for u in run.master.updates if u.get("healthy") is False])
        assert unhealthy[0]["state"] == "TASK_RUNNING"
        killed = await run.master.wait_state("h", "TASK_KILLED", timeout=20)
        assert killed["healthy"] is False


async def test_tcp_and_http_checks_report_check_status(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    server = f"python3 -m http.server {port} --bind 127.0.0.1"
    check = {"type": "HTTP", "http": {"port": port, "path": "/"},
             "delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 2}
    health = {"type": "TCP", "tcp": {"port": port}, "delay_seconds": 0,
              "interval_seconds": 0.2, "timeout_seconds": 2, "grace_period_seconds": 30}
    task = fm.command_task("web", server, check=check, health_check=health)
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        running = await run.master.wait_state("web", "TASK_RUNNING")
        assert running["check_status"] == {"type": "HTTP", "http": {}}
        ok = await run.master.wait_for(lambda: [
            u for u in run.master.updates
            if (u.get("check_status") or {}).get("http", {}).get("status_code") == 200])
        assert ok[0]["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
        await run.master.wait_for(lambda: [
            u for u in run.master.updates if u.get("healthy") is True])


async def test_stopping_mid_probe_leaves_no_process_behind(tmp_path: Path) -> None:
    check = {"type": "COMMAND", "command": {"command": {"value": "sleep 30"}},
             "delay_seconds": 0, "interval_seconds": 1, "timeout_seconds": 60}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("p", "sleep 300", check=check)))
        await run.master.wait_state("p", "TASK_RUNNING")
        await asyncio.sleep(0.5)  # the probe's `sleep 30` is running now
    # Leaving the block stopped the agent: had the probe's process been abandoned, its
    # un-closed transport would fail this test with a ResourceWarning.
