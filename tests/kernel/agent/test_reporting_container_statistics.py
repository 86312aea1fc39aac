"""Agent statistics as Mesos serves them: /monitor/statistics, /containers, GET_CONTAINERS.

A real task burns cpu and holds ~40 MB; the agent's figures (cgroups where writable, /proc of the
container's process tree otherwise) must show both, and cpu time must grow between two samples.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge.kernel.agent import stats
from tests.kernel.agent import fakemaster as fm

_BUSY = ("python3 -c \"b = bytearray(40 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\n"
         "while True: pass\"")


async def _json(s: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    async with s.get(url, **kw) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_monitor_statistics_shows_growing_cpu_and_resident_memory(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run, aiohttp.ClientSession() as s:
        await run.master.send(fm.run_task(fm.command_task("busy", _BUSY, mem=256, cpus=0.5)))
        await run.master.wait_state("busy", "TASK_RUNNING")
        base = f"http://{run.agent.http_address}"
        async with asyncio.timeout(20):
            while True:
                first = await _json(s, base + "/monitor/statistics")
                if first and first[0]["statistics"].get("mem_rss_bytes", 0) > 40 * 1024 * 1024:
                    break
                await asyncio.sleep(0.2)
        entry = first[0]
        assert entry["executor_id"] == "busy" and entry["framework_id"] == fm.FRAMEWORK_ID
        assert {"executor_name", "source"} <= entry.keys()
        st = entry["statistics"]
        assert st["cpus_limit"] == 0.5 and st["mem_limit_bytes"] == 256 * 1024 * 1024
        assert isinstance(st["timestamp"], float)
        cpu1 = st["cpus_user_time_secs"] + st["cpus_system_time_secs"]
        await asyncio.sleep(1.0)
        listed = await _json(s, base + "/containers")
        st2 = listed[0]["statistics"]
        cpu2 = st2["cpus_user_time_secs"] + st2["cpus_system_time_secs"]
        assert cpu2 > cpu1 and st2["timestamp"] > st["timestamp"]
        async with s.post(base + "/api/v1", json={"type": "GET_CONTAINERS"}) as r:
            v1 = await r.json()
        rs = v1["get_containers"]["containers"][0]["resource_statistics"]
        assert rs["mem_rss_bytes"] > 40 * 1024 * 1024 and "cpus_user_time_secs" in rs
        await run.master.send(fm.kill_task("busy", grace=0.5))
        await run.master.wait_state("busy", "TASK_KILLED")
        async with asyncio.timeout(10):  # the executor container goes once its task ended
            while await _json(s, base + "/monitor/statistics"):
                await asyncio.sleep(0.1)


def test_proc_usage_counts_a_process_tree() -> None:
    import os
    tree = stats.proc_tree({os.getpid()})
    assert os.getpid() in tree
    usage = stats.proc_usage(tree)
    assert usage["mem_rss_bytes"] > 0 and usage["processes"] >= 1
    assert stats.proc_tree({2**22 + 7}) == set()  # no such pid: nothing, no error
    assert stats.proc_usage(set()) == {}
