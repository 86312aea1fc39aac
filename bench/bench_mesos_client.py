"""Benchmark: the Mesos scheduler client's hot paths.

Why: a busy cluster sends OFFERS with hundreds of offers every allocation interval, and the
bridge launches whole pods as one ACCEPT; both must stay cheap on a 2-core box. Targets (issue 3):

1. decode and parse OFFERS events of 100 offers each (10 resources, 5 attributes per offer):
   10,000 offers in <= 0.5 s (RecordIO framing, JSON, typed values with resource parsing);
2. one ACCEPT of a 100-task LAUNCH_GROUP built (plain wire-JSON dicts, as the bridge builds
   it) and sent over HTTP to a master in <= 5 ms of client CPU. The "master" is a tiny aiohttp
   server in a child process (so its CPU is not counted); the client is the real
   ``MesosClient`` after SUBSCRIBE.

Run: ``python bench/bench_mesos_client.py [--runs 7] [--accepts 50]``. Bounded (a few seconds).
Prints medians and the machine's core count.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.mesos import calls, events, recordio  # noqa: E402
from k8sbridge.mesos.client import ClientConfig, MesosClient  # noqa: E402
from k8sbridge.model import resources as res  # noqa: E402
from k8sbridge.model.ids import AgentId, FrameworkId, OfferId  # noqa: E402

OFFERS_PER_EVENT = 100
TOTAL_OFFERS = 10_000


def raw_offer(n: int, *, distinct: bool = False) -> dict[str, Any]:
    """Offer ``n``; with ``distinct`` every scalar value and attribute differs between offers
    (a check that the parser's speed does not depend on values repeating, as they do when
    agents re-offer the same free quantities and attributes)."""
    role = "k8s"
    alloc = {"allocation_info": {"role": role}}
    scalars = ["cpus", "mem", "disk", "gpus", "net_bw", "custom_a", "custom_b"]
    bump = n / 1000 if distinct else 0.0
    resources: list[dict[str, Any]] = [
        {"name": s, "type": "SCALAR", "scalar": {"value": 10.0 + i + bump}, **alloc}
        for i, s in enumerate(scalars)
    ]
    resources.append(
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0},
         "reservations": [{"type": "STATIC", "role": role}], **alloc}
    )
    resources.append(
        {"name": "ports", "type": "RANGES",
         "ranges": {"range": [{"begin": 31000, "end": 31500}, {"begin": 32000, "end": 32999}]},
         **alloc}
    )
    resources.append({"name": "zones", "type": "SET", "set": {"item": ["a", "b", "c"]}, **alloc})
    return {
        "id": {"value": f"m-O{n}"},
        "framework_id": {"value": "m-0000"},
        "agent_id": {"value": f"m-S{n % 1000}"},
        "hostname": f"agent-{n}.example.com",
        "url": {"scheme": "http", "address": {"hostname": f"agent-{n}", "ip": "10.0.0.1",
                                              "port": 5051}, "path": "/slave(1)"},
        "domain": {"fault_domain": {"region": {"name": "r1"}, "zone": {"name": "z1"}}},
        "allocation_info": {"role": role},
        "resources": resources,
        "attributes": [
            {"name": "rack", "type": "TEXT", "text": {"value": f"r{n if distinct else n % 40}"}},
            {"name": "level", "type": "SCALAR", "scalar": {"value": 10.0 + bump}},
            {"name": "keys", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 9}]}},
            {"name": "os", "type": "TEXT", "text": {"value": f"os-{n}" if distinct else "linux"}},
            {"name": "gen", "type": "SCALAR", "scalar": {"value": 3.0 + bump}},
        ],
        "executor_ids": [],
    }


def offers_stream(*, distinct: bool = False) -> bytes:
    chunks = []
    for e in range(TOTAL_OFFERS // OFFERS_PER_EVENT):
        offers = [
            raw_offer(e * OFFERS_PER_EVENT + i, distinct=distinct)
            for i in range(OFFERS_PER_EVENT)
        ]
        event = {"type": "OFFERS", "offers": {"offers": offers}}
        chunks.append(recordio.encode(json.dumps(event).encode()))
    return b"".join(chunks)


def decode_all(stream: bytes, chunk: int = 64 * 1024) -> int:
    """What the client does with the stream: framing, then ``events.decode`` (JSON + typed
    ``Offer`` values, fully parsed: ids, hostname, url, domain, resources, attributes)."""
    decoder = recordio.Decoder()
    count = 0
    for i in range(0, len(stream), chunk):
        for record in decoder.feed(stream[i : i + chunk]):
            event = events.decode(record)
            assert isinstance(event, events.Offers)
            count += len(event.offers)
    return count


def check_fully_parsed(stream: bytes) -> None:
    """The values the bridge reads are really there (nothing is deferred or skipped)."""
    record = recordio.Decoder().feed(stream)[0]
    event = events.decode(record)
    assert isinstance(event, events.Offers) and len(event.offers) == OFFERS_PER_EVENT
    offer = event.offers[1]
    assert offer.id == "m-O1" and offer.agent_id == "m-S1" and offer.framework_id == "m-0000"
    assert offer.hostname == "agent-1.example.com" and offer.agent_url == "http://agent-1:5051"
    assert (offer.region, offer.zone, offer.allocation_role) == ("r1", "z1", "k8s")
    assert len(offer.resources.items) == 10 and len(offer.attributes) == 5
    assert offer.resources.ranges("ports") == ((31000, 31500), (32000, 32999))
    assert offer.resources.reserved("k8s").scalar("cpus") == 2.0


def cpu_runs(fn: Any, runs: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


def json_only(records: list[bytes]) -> None:
    """``json.loads`` of every record, under the same GC pause as ``events.decode``."""
    for record in records:
        if len(record) >= events.GC_PAUSE_MIN_BYTES and gc.isenabled():
            gc.disable()
            try:
                json.loads(record)
            finally:
                gc.enable()
        else:
            json.loads(record)


def decode_only(records: list[bytes]) -> None:
    for record in records:
        events.decode(record)


SERVER = r"""
import asyncio, sys
from aiohttp import web

async def scheduler(request):
    body = await request.json()
    if body["type"] != "SUBSCRIBE":
        return web.Response(status=202)
    resp = web.StreamResponse(status=200, headers={
        "Content-Type": "application/json", "Mesos-Stream-Id": "bench-stream"})
    await resp.prepare(request)
    ev = b'{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"m-0000"},' \
         b'"heartbeat_interval_seconds":15.0}}'
    await resp.write(str(len(ev)).encode() + b"\n" + ev)
    while True:
        await asyncio.sleep(3600)

app = web.Application()
app.router.add_post("/api/v1/scheduler", scheduler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: None)
"""


def build_accept(framework_id: FrameworkId, agent: AgentId, n_tasks: int) -> dict[str, Any]:
    """An ACCEPT of one LAUNCH_GROUP of ``n_tasks`` tasks, built as wire JSON the way the bridge
    builds it (``scheduler/launch.py``): plain dicts in Mesos' ``Offer.Operation`` shape."""
    per_task = res.Resources.from_scalars({"cpus": 0.1, "mem": 64, "disk": 10}).allocated_to("k8s")
    executor = {
        "type": "DEFAULT",
        "executor_id": {"value": "pod-x"},
        "framework_id": {"value": framework_id},
        "resources": res.Resources.from_scalars(
            {"cpus": 0.1, "mem": 32, "disk": 10}
        ).allocated_to("k8s").to_raw(),
    }
    tasks = [
        {
            "name": f"c{i}",
            "task_id": {"value": f"pod-x.c{i}"},
            "agent_id": {"value": agent},
            "resources": per_task.to_raw(),
            "command": {
                "shell": True,
                "value": "exec my-server --port 8080",
                "environment": {"variables": [
                    {"name": "POD", "type": "VALUE", "value": "x"},
                    {"name": "I", "type": "VALUE", "value": str(i)},
                ]},
            },
            "container": {
                "type": "MESOS",
                "mesos": {"image": {"type": "DOCKER",
                                    "docker": {"name": "registry.example.com/app:1.2.3"}}},
            },
            "kill_policy": {"grace_period": {"nanoseconds": 30_000_000_000}},
            "labels": {"labels": [{"key": "k8sbridge.io/pod", "value": "default/x"}]},
        }
        for i in range(n_tasks)
    ]
    operation: Any = {
        "type": "LAUNCH_GROUP",
        "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
    }
    return calls.accept(
        framework_id=framework_id,
        offer_ids=[OfferId("m-O1")],
        operations=[operation],
        refuse_seconds=5,
    )


async def accept_cpu(accepts: int) -> list[float]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        config = ClientConfig(masters=(f"127.0.0.1:{port}",), connect_timeout=1.0)
        async with MesosClient(config=config) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    stream = await client.subscribe({"type": "SUBSCRIBE", "subscribe": {}})
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            try:
                await stream.next_event(timeout=5)
                samples = []
                for i in range(accepts + 5):
                    start = time.process_time()
                    call = build_accept(FrameworkId("m-0000"), AgentId("m-S0"), 100)
                    await client.call(call)
                    if i >= 5:  # warm-up excluded
                        samples.append(time.process_time() - start)
                return samples
            finally:
                await stream.close()
    finally:
        server.kill()  # it holds a stream open: no graceful shutdown wanted
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--accepts", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"python {sys.version.split()[0]}")

    ms = 1000
    for distinct in (False, True):
        stream = offers_stream(distinct=distinct)
        check_fully_parsed(stream)
        decode_all(stream)  # warm-up
        wall, cpu = cpu_runs(lambda: decode_all(stream), args.runs)  # noqa: B023
        # Where the time goes: framing, stdlib JSON, typed values (decode minus JSON).
        records = recordio.Decoder().feed(stream)
        _, framing = cpu_runs(lambda: recordio.Decoder().feed(stream), args.runs)  # noqa: B023
        _, decoding = cpu_runs(lambda: json_only(records), args.runs)  # noqa: B023
        _, both = cpu_runs(lambda: decode_only(records), args.runs)  # noqa: B023
        typed = statistics.median(both) - statistics.median(decoding)
        label = "every value distinct" if distinct else "issue workload"
        print(f"OFFERS decode+parse ({label}): {TOTAL_OFFERS} offers in "
              f"{TOTAL_OFFERS // OFFERS_PER_EVENT} events ({len(stream) / 1e6:.1f} MB): median "
              f"{statistics.median(wall) * ms:.0f} ms wall, {statistics.median(cpu) * ms:.0f} ms "
              f"CPU (min {min(cpu) * ms:.0f}) over {args.runs} runs (target <= 500 ms)")
        print(f"  of which (CPU medians): RecordIO framing {statistics.median(framing) * ms:.0f} "
              f"ms, json.loads {statistics.median(decoding) * ms:.0f} ms, typed values "
              f"{typed * ms:.0f} ms ({typed / TOTAL_OFFERS * 1e6:.0f} us per offer)")

    samples = asyncio.run(accept_cpu(args.accepts))
    body = json.dumps(
        build_accept(FrameworkId("m-0000"), AgentId("m-S0"), 100), separators=(",", ":")
    ).encode()
    print(f"ACCEPT with a 100-task LAUNCH_GROUP ({len(body) / 1e3:.0f} kB), built and sent: "
          f"median {statistics.median(samples) * 1000:.2f} ms CPU, "
          f"p90 {sorted(samples)[int(len(samples) * 0.9)] * 1000:.2f} ms over {len(samples)} "
          f"calls (target <= 5 ms)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
