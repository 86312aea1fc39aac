"""A misbehaving agent on the link can neither crash the master nor corrupt its books."""

from __future__ import annotations

import asyncio

import aiohttp

from k8sbridge.kernel import link, main
from tests.kernel.master import wire


async def test_garbage_from_an_agent(kernel: main.Kernel,
                                     session: aiohttp.ClientSession) -> None:
    async with session.get(f"{kernel.master_url}/kernel/link") as resp:
        address = (await resp.json())["address"]
    # Messages before registering are ignored; a REGISTER without hostname is refused.
    stream = await link.connect(address)
    for message in ({"type": "STATUS_UPDATE", "status": {"task_id": 5}}, {"type": "PONG"},
                    {"type": "WHATEVER"}, {"type": "REGISTER", "agent_info": "nope"}):
        await stream.send(message)
    ended = asyncio.ensure_future(stream.wait_gone())
    await asyncio.wait_for(ended, timeout=5)  # the master closed the refused link
    # A registered agent sending nonsense stays registered and harmless.
    stream = await link.connect(address)
    await stream.send({"type": "REGISTER", "version": "1.12.0", "agent_info": {
        "hostname": "rogue.local", "port": 1,
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]},
        "tasks": "not a list", "executors": [None, 3], "frameworks": [{"id": 7}]})
    reply = await asyncio.wait_for(stream.__aiter__().__anext__(), timeout=5)
    assert reply["type"] == "REGISTERED"
    for message in (
        {"type": "STATUS_UPDATE", "framework_id": {"value": "nobody"},
         "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}},
        {"type": "STATUS_UPDATE", "framework_id": None, "status": None},
        {"type": "STATUS_UPDATE", "status": {"task_id": {"value": "t"}, "state": "NOPE"}},
        {"type": "EXECUTOR_EXITED", "framework_id": 1, "executor_id": [], "status": "x"},
    ):
        await stream.send(message)
    await asyncio.sleep(0.3)
    agents = await wire.operator(session, kernel.master_url, {"type": "GET_AGENTS"})
    hosts = sorted(a["agent_info"]["hostname"] for a in agents["get_agents"]["agents"])
    assert hosts == ["127.0.0.1", "rogue.local"]
    await stream.close()
    for _ in range(50):
        rogue = [a for a in kernel.master.agents.values() if a.hostname == "rogue.local"]
        if rogue and not rogue[0].connected:
            break
        await asyncio.sleep(0.1)
    assert rogue and not rogue[0].connected
    health = await wire.operator(session, kernel.master_url, {"type": "GET_HEALTH"})
    assert health["get_health"]["healthy"] is True
