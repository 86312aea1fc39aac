"""Benchmark: how fast one embedded agent turns RUN_TASKs into TASK_RUNNING processes.

Why: the issue's launch target compares the kernel's launch rate with the machine's raw process
spawn rate (>= 50 %). The agent is the part that spawns, so this measures it alone: a minimal
in-script master (contract B over the real gRPC link, auto-acknowledging) sends N RUN_TASK
messages for ``sleep 600`` and times until every task reported TASK_RUNNING. The raw figure is
``fork+exec`` of ``sleep 600`` from Python (``subprocess.Popen``) measured in the same run.

Run: ``python bench/bench_agent_launch.py [--tasks 200] [--runs 3] [--isolation ISOLATORS]``
(``--isolation`` is the agent's Mesos ``--isolation``: with ``filesystem/linux`` and
``namespaces/pid`` each task gets its own overlay view and pid namespace). Bounded: every run is
capped at 120 s and kills its tasks. Prints medians, the machine's core count and load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from aiohttp import web  # noqa: E402

from k8sbridge.kernel import link  # noqa: E402
from k8sbridge.kernel.agent.agent import Agent  # noqa: E402
from k8sbridge.kernel.agent.config import AgentConfig  # noqa: E402


def raw_spawn_rate(n: int) -> float:
    """n `sleep 600` by subprocess.Popen, one after the other (killed and reaped after); /s."""
    procs = []
    start = time.perf_counter()
    for _ in range(n):
        procs.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    elapsed = time.perf_counter() - start
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    return n / elapsed


async def agent_launch_rate(n: int, isolation: str) -> float:
    running: set[str] = set()
    all_running = asyncio.Event()
    streams: list[link.AgentStream] = []

    async def handler(stream: link.AgentStream) -> None:
        async for message in stream:
            if message["type"] == "REGISTER":
                streams.append(stream)
                await stream.send({"type": "REGISTERED", "agent_id": {"value": "bench-S0"}})
            elif message["type"] == "STATUS_UPDATE":
                status = message["status"]
                # Queued without waiting for the write, as the real master's agent pump does
                # (what queues up leaves in one link frame).
                stream.post({"type": "ACKNOWLEDGE", "framework_id": message["framework_id"],
                             "task_id": status["task_id"], "uuid": status["uuid"]})
                if status["state"] == "TASK_RUNNING":
                    running.add(status["task_id"]["value"])
                    if len(running) == n:
                        all_running.set()

    server = link.LinkServer(host="127.0.0.1", port=0, handler=handler)
    link_port = await server.start()

    async def discover(request: web.Request) -> web.Response:
        return web.json_response({"address": f"127.0.0.1:{link_port}"})

    app = web.Application()
    app.router.add_get("/kernel/link", discover)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as work:
        agent = Agent(config=AgentConfig(master=f"127.0.0.1:{port}", work_dir=Path(work),
                                         resources="cpus:64;mem:65536",
                                         isolation=isolation))
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(agent.run(stop=stop, ready=ready))
        try:
            await asyncio.wait_for(ready.wait(), 20)
            framework: dict[str, Any] = {"id": {"value": "bench-fw"}, "user": "root",
                                         "name": "bench"}
            start = time.perf_counter()
            for i in range(n):  # as the master forwards one ACCEPT's launches: queued at once
                streams[0].post({"type": "RUN_TASK", "framework": framework, "task": {
                    "name": f"t{i}", "task_id": {"value": f"t{i}"},
                    "agent_id": {"value": "bench-S0"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
                    "command": {"value": "sleep 600"},
                }})
            await asyncio.wait_for(all_running.wait(), 120)
            elapsed = time.perf_counter() - start
        finally:
            stop.set()
            await asyncio.wait_for(task, 120)
            await runner.cleanup()
            await server.stop()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--isolation", default="cgroups/cpu,cgroups/mem")
    args = parser.parse_args()
    raw, agent = [], []
    for _ in range(args.runs):
        raw.append(raw_spawn_rate(args.tasks))
        agent.append(asyncio.run(agent_launch_rate(args.tasks, args.isolation)))
    raw_med, agent_med = statistics.median(raw), statistics.median(agent)
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.2f} tasks={args.tasks} "
          f"runs={args.runs} isolation={args.isolation}")
    print(f"raw spawn (Popen sleep): median {raw_med:,.0f} procs/s")
    print(f"agent RUN_TASK -> TASK_RUNNING: median {agent_med:,.1f} tasks/s "
          f"({100 * agent_med / raw_med:.1f} % of raw)")


if __name__ == "__main__":
    main()
