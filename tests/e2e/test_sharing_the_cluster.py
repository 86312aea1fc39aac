"""k8sbridge and a Marathon-like framework (its own role) share the kernel: neither starves."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import EXAMPLES, Target
from tests.e2e.marathonlike import KeepN

pytestmark = pytest.mark.e2e


async def test_both_frameworks_reach_their_targets(target: Target) -> None:
    other = KeepN(master=target.master, n=6, auth=target.auth, ca_file=target.ca_file)
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(other.run(stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.to_thread(target.kubectl, "apply", "-f", str(EXAMPLES / "deployment.yaml"))
        await asyncio.to_thread(target.kubectl, "scale", "deployment/web", "--replicas=8")

        def web_running() -> int:
            pods = target.kubectl_json("get", "pods", "-l", "app=web")["items"]
            return sum(1 for p in pods if p["status"].get("phase") == "Running"
                       and not p["metadata"].get("deletionTimestamp"))

        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline:
            if len(other.running) >= 6 and await asyncio.to_thread(web_running) >= 8:
                break
            await asyncio.sleep(0.5)
        assert len(other.running) >= 6, f"marathon-like starved: {other.running}"
        assert await asyncio.to_thread(web_running) >= 8, "k8sbridge starved"
        frameworks = {fw["name"]: fw for fw in target.state()["frameworks"]}
        assert frameworks["marathon-like"]["roles"] == ["marathon"]
        assert frameworks["k8sbridge"]["roles"] == ["kubernetes"]
    finally:
        if other.framework.subscribed:
            await other.teardown()
        stop.set()
        await asyncio.wait_for(runner, 30)
        await asyncio.to_thread(
            target.kubectl, "delete", "-f", str(EXAMPLES / "deployment.yaml"), "--wait=true",
            timeout=90,
        )
