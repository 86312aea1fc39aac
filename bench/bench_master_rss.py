"""Benchmark: resident memory of the master with 10,000 running tasks.

The master runs unmodified in its own process (``k8sbridge kernel master``), so its RSS is read
from ``/proc/<pid>/status`` without the benchmark's own memory mixed in. A framework launches
the tasks over the v1 scheduler API and acknowledges every update.

What is simulated, and why it stays honest: the agents here are small link clients that speak
the real master<->agent protocol (REGISTER, PING/PONG, RUN_TASK -> STATUS_UPDATE RUNNING with a
uuid, ACKNOWLEDGE) but start no processes. The master cannot tell them from real agents: it
keeps exactly the same books (tasks, statuses, resources, offers). Starting 10,000 real
executors on a shared 2-core box would measure the box, not the master;
``bench_kernel_launch.py`` covers real processes.

    python bench/bench_master_rss.py [--tasks 10000] [--agents 10] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8sbridge.kernel import link  # noqa: E402

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def sim_agent(address: str, index: int, *, cpus: float, mem: float,
                    stop: asyncio.Event) -> None:
    stream = await link.connect(address)
    await stream.send({"type": "REGISTER", "version": "1.12.0", "tasks": [], "executors": [],
                       "frameworks": [], "agent_info": {
                           "hostname": f"sim{index}.local", "port": 5051,
                           "resources": [
                               {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                               {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                               {"name": "disk", "type": "SCALAR", "scalar": {"value": 10240}},
                           ],
                           "attributes": [{"name": "rack", "type": "TEXT",
                                           "text": {"value": f"r{index}"}}]}})
    agent_id = ""

    def running(fid: dict[str, Any], task: dict[str, Any], executor_id: str) -> dict[str, Any]:
        return {"type": "STATUS_UPDATE", "framework_id": fid, "status": {
            "task_id": task["task_id"], "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR",
            "agent_id": {"value": agent_id}, "executor_id": {"value": executor_id},
            "timestamp": time.time(),
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
            "container_status": {"container_id": {"value": str(uuid.uuid4())},
                                 "network_infos": [{"ip_addresses": [
                                     {"protocol": "IPv4", "ip_address": "127.0.0.1"}]}]}}}

    async def reader() -> None:
        nonlocal agent_id
        async for message in stream:
            mtype = message.get("type")
            if mtype == "REGISTERED":
                agent_id = message["agent_id"]["value"]
            elif mtype == "PING":
                await stream.send({"type": "PONG"})
            elif mtype == "RUN_TASK":
                task = message["task"]
                await stream.send(running(message["framework"]["id"], task,
                                          task["task_id"]["value"]))
            elif mtype == "RUN_TASK_GROUP":
                eid = message["executor"]["executor_id"]["value"]
                for task in message["task_group"]["tasks"]:
                    await stream.send(running(message["framework"]["id"], task, eid))

    task = asyncio.create_task(reader())
    await stop.wait()
    task.cancel()
    await stream.close()


async def amain(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    port = _free_port()
    master = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel", "master",
        "--port", str(port), stdout=asyncio.subprocess.PIPE,
    )
    stop = asyncio.Event()
    try:
        assert master.stdout is not None
        await asyncio.wait_for(master.stdout.readline(), timeout=30)
        url = f"http://127.0.0.1:{port}"
        base_rss, _ = rss_mb(master.pid)
        per_agent = -(-args.tasks // args.agents)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/kernel/link") as resp:
                address = (await resp.json())["address"]
            agents = [asyncio.create_task(sim_agent(
                address, i, cpus=per_agent * 0.01 + 1, mem=per_agent * 4 + 1024, stop=stop))
                for i in range(args.agents)]
            body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
                "user": "bench", "name": "bench-rss", "failover_timeout": 600}}}
            resp = await session.post(f"{url}/api/v1/scheduler", data=json.dumps(body),
                                      headers=JSON)
            stream_id = resp.headers["Mesos-Stream-Id"]
            buf = b""

            async def event() -> dict[str, Any]:
                nonlocal buf
                while True:
                    if b"\n" in buf:
                        head, rest = buf.split(b"\n", 1)
                        n = int(head)
                        if len(rest) >= n:
                            buf = rest[n:]
                            out: dict[str, Any] = json.loads(rest[:n])
                            return out
                    chunk = await resp.content.readany()
                    if not chunk:
                        raise EOFError("stream ended")
                    buf += chunk

            fid = (await event())["subscribed"]["framework_id"]["value"]

            async def call(payload: dict[str, Any]) -> None:
                payload = {"framework_id": {"value": fid}, **payload}
                async with session.post(f"{url}/api/v1/scheduler", data=json.dumps(payload),
                                        headers={**JSON, "Mesos-Stream-Id": stream_id}) as r:
                    if r.status != 202:
                        raise RuntimeError(await r.text())

            launched = running = 0
            started = time.perf_counter()
            pending_acks: list[asyncio.Task[None]] = []
            while running < args.tasks:
                ev = await asyncio.wait_for(event(), timeout=120)
                if ev["type"] == "OFFERS":
                    for offer in ev["offers"]["offers"]:
                        have = {r["name"]: r.get("scalar", {}).get("value", 0.0)
                                for r in offer["resources"]}
                        fits = int(min((have.get("cpus", 0) + 1e-6) / 0.01,
                                       have.get("mem", 0) / 4))
                        count = max(0, min(args.batch, args.tasks - launched, fits))
                        agent_id = offer["agent_id"]["value"]
                        tasks = [{
                            "name": f"t{launched + j}", "task_id": {"value": f"t{launched + j}"},
                            "agent_id": {"value": agent_id},
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": 4}}],
                            "command": {"value": "sleep 600"},
                            "labels": {"labels": [{"key": "bench", "value": "rss"}]},
                        } for j in range(count)]
                        launched += count
                        ops = [{"type": "LAUNCH", "launch": {"task_infos": tasks}}] if tasks else []
                        await call({"type": "ACCEPT", "accept": {
                            "offer_ids": [offer["id"]], "operations": ops,
                            "filters": {"refuse_seconds": 0}}})
                elif ev["type"] == "UPDATE":
                    status = ev["update"]["status"]
                    if status["state"] == "TASK_RUNNING":
                        running += 1
                    if "uuid" in status:
                        pending_acks.append(asyncio.create_task(call({
                            "type": "ACKNOWLEDGE", "acknowledge": {
                                "agent_id": status["agent_id"], "task_id": status["task_id"],
                                "uuid": status["uuid"]}})))
            await asyncio.gather(*pending_acks)
            elapsed = time.perf_counter() - started
            samples = []
            for _ in range(5):
                await asyncio.sleep(0.5)
                samples.append(rss_mb(master.pid)[0])
            steady = statistics.median(samples)
            t0 = time.perf_counter()
            async with session.post(f"{url}/api/v1", data=json.dumps({"type": "GET_TASKS"}),
                                    headers=JSON) as r:
                tasks_body = await r.read()
            get_tasks_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            async with session.get(f"{url}/state") as r:
                state_body = await r.read()
            state_s = time.perf_counter() - t0
            after, hwm = rss_mb(master.pid)
            print(f"{args.tasks} running tasks on {args.agents} (simulated) agents, launched in "
                  f"{elapsed:.1f}s")
            print(f"master RSS: idle {base_rss:.1f} MB; with {args.tasks} running tasks median "
                  f"{steady:.1f} MB (5 samples); after GET_TASKS ({len(tasks_body) / 1e6:.1f} MB,"
                  f" {get_tasks_s:.2f}s) and /state ({len(state_body) / 1e6:.1f} MB, "
                  f"{state_s:.2f}s): {after:.1f} MB; peak (VmHWM) {hwm:.1f} MB")
            resp.close()
            stop.set()
            await asyncio.gather(*agents, return_exceptions=True)
    finally:
        stop.set()
        if master.returncode is None:
            master.terminate()
            await master.wait()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="tasks per ACCEPT")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    cli()
