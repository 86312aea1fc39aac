"""Benchmark: launch N `sleep 600` tasks on the embedded kernel, ACCEPT -> all TASK_RUNNING.

Runs a real master and real in-process agents (tasks are real processes) and drives them over
the v1 scheduler API like any framework (SUBSCRIBE, ACCEPT, ACKNOWLEDGE). For comparison it
measures, in the same run on the same machine, the raw rate of spawning the same number of
`sleep 600` processes with asyncio (no kernel at all).

Modes: ``command`` = N command tasks (LAUNCH; one executor process per task, as Mesos' command
executor), ``group`` = the same N tasks as one LAUNCH_GROUP per agent (DEFAULT executor: one
executor process per group, as the bridge launches pods).

    python bench/bench_kernel_launch.py [--tasks 1000] [--agents 10] [--mode both] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8sbridge.kernel import main  # noqa: E402
from k8sbridge.kernel.agent.config import AgentConfig  # noqa: E402
from k8sbridge.kernel.master.config import MasterConfig  # noqa: E402

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Framework:
    """A minimal v1 scheduler: SUBSCRIBE stream parsed by hand, calls on other connections."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.framework_id = ""
        self.stream_id = ""
        self._resp: aiohttp.ClientResponse | None = None
        self._buf = b""

    async def subscribe(self) -> None:
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "bench", "name": "bench-launch", "failover_timeout": 60}}}
        self._resp = await self.session.post(f"{self.url}/api/v1/scheduler",
                                             data=json.dumps(body), headers=JSON)
        self.stream_id = self._resp.headers["Mesos-Stream-Id"]
        event = await self.event()
        self.framework_id = event["subscribed"]["framework_id"]["value"]

    async def event(self) -> dict[str, Any]:
        assert self._resp is not None
        while True:
            if b"\n" in self._buf:
                head, rest = self._buf.split(b"\n", 1)
                n = int(head)
                if len(rest) >= n:
                    self._buf = rest[n:]
                    event: dict[str, Any] = json.loads(rest[:n])
                    return event
            chunk = await self._resp.content.readany()
            if not chunk:
                raise EOFError("stream ended")
            self._buf += chunk

    async def call(self, body: dict[str, Any]) -> None:
        body = {"framework_id": {"value": self.framework_id}, **body}
        async with self.session.post(
            f"{self.url}/api/v1/scheduler", data=json.dumps(body),
            headers={**JSON, "Mesos-Stream-Id": self.stream_id},
        ) as resp:
            if resp.status != 202:
                raise RuntimeError(f"{body['type']}: {resp.status} {await resp.text()}")

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()


def _task(task_id: str, agent_id: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}}],
        "command": {"value": "sleep 600"},
    }


async def raw_spawn_rate(n: int) -> float:
    """Spawn n `sleep 600` processes as fast as asyncio allows; tasks/s."""
    start = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            "sleep", "600", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.kill()
    for p in procs:
        await p.wait()
    return n / elapsed


async def kernel_launch_rate(n: int, agents: int, mode: str, work: Path) -> float:
    per_agent = -(-n // agents)
    mcfg = MasterConfig(port=_free_port(), allocation_interval=0.2, heartbeat_interval=15.0)
    acfgs = [
        AgentConfig(master="127.0.0.1:0", work_dir=work / f"{mode}-agent{i}",
                    resources=f"cpus:{per_agent * 0.01 + 1:.2f};mem:{per_agent + 256};"
                              "disk:1024;ports:[31000-31099]")
        for i in range(agents)
    ]
    async with main.running_kernel(master=mcfg, agents=acfgs) as kernel, \
            aiohttp.ClientSession() as session:
        fw = Framework(session, kernel.master_url)
        await fw.subscribe()
        offers: dict[str, dict[str, Any]] = {}
        while len(offers) < agents:
            event = await asyncio.wait_for(fw.event(), timeout=30)
            if event["type"] == "OFFERS":
                for offer in event["offers"]["offers"]:
                    offers[offer["agent_id"]["value"]] = offer
        start = time.perf_counter()
        left = n
        for idx, (agent_id, offer) in enumerate(sorted(offers.items())):
            count = min(per_agent, left)
            left -= count
            tasks = [_task(f"t{idx}-{j}", agent_id) for j in range(count)]
            if mode == "command":
                op = {"type": "LAUNCH", "launch": {"task_infos": tasks}}
            else:
                executor = {"type": "DEFAULT", "executor_id": {"value": f"group-{idx}"},
                            "framework_id": {"value": fw.framework_id},
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                                {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}]}
                op = {"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": tasks}}}
            await fw.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                                                        "operations": [op]}})
        running: set[str] = set()
        acks = []
        async with asyncio.timeout(300):  # one deadline for the run, not a timer per event
            while len(running) < n:
                event = await fw.event()
                if event["type"] != "UPDATE":
                    continue
                status = event["update"]["status"]
                if status["state"] == "TASK_RUNNING":
                    running.add(status["task_id"]["value"])
                elif status["state"] not in ("TASK_STARTING", "TASK_STAGING"):
                    raise RuntimeError(f"task failed: {status}")
                if "uuid" in status:
                    acks.append(asyncio.create_task(fw.call({
                        "type": "ACKNOWLEDGE", "acknowledge": {
                            "agent_id": status["agent_id"], "task_id": status["task_id"],
                            "uuid": status["uuid"]}})))
        elapsed = time.perf_counter() - start
        await asyncio.gather(*acks)
        await fw.call({"type": "TEARDOWN"})
        fw.close()
        return n / elapsed


async def amain(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    modes = ["command", "group"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        for mode in modes:
            raws, rates = [], []
            for _ in range(args.runs):
                raws.append(await raw_spawn_rate(args.tasks))
                rates.append(await kernel_launch_rate(args.tasks, args.agents, mode, Path(tmp)))
            raw, rate = statistics.median(raws), statistics.median(rates)
            print(f"{mode:8s} {args.tasks} tasks on {args.agents} agents: ACCEPT->all RUNNING "
                  f"median {rate:.1f} tasks/s; raw spawn of the same processes median "
                  f"{raw:.1f}/s; ratio {100 * rate / raw:.1f}% (runs={args.runs})")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--mode", choices=["command", "group", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    cli()
