"""A container's termination message reaches ``state.terminated.message`` as a kubelet puts it
there: from a terminationMessagePath under an emptyDir, or from the tail of its log with
FallbackToLogsOnError; a path the bridge cannot read refuses the pod with its reason (real
pods through real kubectl, the embedded kernel read through the agents' files API)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from k8sbridge import app
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import termination as kubelet_termination
from k8sbridge.lifecycle import intents, termination
from k8sbridge.model import ids
from tests.integration.conftest import eventually
from tests.integration.two_agents import bridge_tasks
from tests.mesos.faultproxy import Fault, FaultProxy


def _pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    container.setdefault("resources", {"requests": {"cpu": "50m", "memory": "32Mi"}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": [container], **spec}}


def _kubectl_pod(kubeconfig: Path, name: str) -> dict[str, Any]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "pod", name, "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True)
    pod: dict[str, Any] = json.loads(done.stdout)
    return pod


async def _terminated(targets: app.EmbeddedTargets, name: str) -> dict[str, Any]:
    """``state.terminated`` of the pod's container once it has a message, read by kubectl."""

    async def probe() -> dict[str, Any] | None:
        pod = await asyncio.to_thread(_kubectl_pod, targets.kubeconfig, name)
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        found = (statuses[0].get("state") or {}).get("terminated")
        return found if found and found.get("message") else None

    found: dict[str, Any] = await eventually(probe, timeout=60, what=f"{name}'s message")
    return found


async def test_a_message_written_under_an_emptydir_fills_the_terminated_state(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod("wrote", {
        "name": "main", "image": "busybox",
        "command": ["/bin/sh", "-c", "echo noise; printf 'disk full\\non /data' > /term/why; "
                                     "exit 3"],
        "terminationMessagePath": "/term/why",
        "volumeMounts": [{"name": "term", "mountPath": "/term"}],
    }, volumes=[{"name": "term", "emptyDir": {}}]))
    terminated = await _terminated(embedded, "wrote")
    assert terminated["message"] == "disk full\non /data"
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


async def test_fallback_to_logs_on_error_gives_the_tail_of_the_log(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    script = "for i in $(seq 1 100); do echo line $i; done; echo failing >&2; exit 2"
    await kube.create("/api/v1/namespaces/default/pods", _pod("logged", {
        "name": "main", "image": "busybox", "command": ["/bin/sh", "-c", script],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }))
    terminated = await _terminated(embedded, "logged")
    lines = [f"line {i}\n" for i in range(22, 101)] + ["failing\n"]
    assert terminated["message"] == "".join(lines)  # the last 80 lines (< 2048 bytes)
    assert terminated["exitCode"] == 2


@dataclasses.dataclass
class _Agents:
    agents: dict[Any, mesos_agents.AgentInfo]


async def test_a_slow_agent_costs_one_bounded_read_and_the_kubelets_error_text(
    embedded: app.EmbeddedTargets,
) -> None:
    """The reader against the real agent, then through a proxy that hangs every read."""
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod("slow", {
        "name": "main", "image": "busybox", "command": ["/bin/sh", "-c", "echo bye; exit 1"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }))
    assert (await _terminated(embedded, "slow"))["message"] == "bye\n"
    uid = (await kube.get_pod("default", "slow"))["metadata"]["uid"]
    task = next(t for t in await bridge_tasks(embedded.kernel_url)
                if str(t["id"]).startswith(uid))
    agent = embedded.bridge.nodes.agents[ids.AgentId(task["slave_id"])]
    want = intents.ReadTerminationMessage(
        container="main", task_id=ids.TaskId(task["id"]), agent_id=task["slave_id"],
        executor_id=task["executor_id"], file=None, logs=True)
    proxy = FaultProxy(upstream=f"http://{agent.address}")
    await proxy.start()
    reader = mesos_agents.MesosReader(masters=[embedded.kernel_url], timeout=5.0)
    try:
        slow = kubelet_termination.TerminationReader(
            reader=reader, agents=_Agents({task["slave_id"]: dataclasses.replace(
                agent, address=proxy.address)}),
            framework_id=lambda: str(task["framework_id"]), attempt_seconds=0.5,
            read_seconds=1.2)
        assert await slow.read(want) == "bye\n"  # through the proxy, nothing faulted
        proxy.inject("/files/read", Fault("hang", seconds=30, times=-1))
        started = time.monotonic()
        message = await slow.read(want)
        assert time.monotonic() - started < 10.0  # bounded (the proxy would hang 30 s)
        assert message.startswith("Error on reading termination message from logs: ")
    finally:
        await reader.close()
        await proxy.stop()


async def test_a_path_outside_any_emptydir_is_refused_with_its_reason(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod("unreadable", {
        "name": "main", "image": "busybox", "command": ["true"],
        "terminationMessagePath": "/var/run/why",
    }))

    async def refused() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "unreadable")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        waiting = (statuses[0].get("state") or {}).get("waiting") or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = await eventually(refused, what="the refusal")
    assert waiting["message"] == (
        f"spec.containers{{main}}.terminationMessagePath '/var/run/why' {termination.REFUSED}")
    uid = (await kube.get_pod("default", "unreadable"))["metadata"]["uid"]
    assert not [t for t in await bridge_tasks(embedded.kernel_url)
                if str(t["id"]).startswith(uid)]  # nothing was launched
