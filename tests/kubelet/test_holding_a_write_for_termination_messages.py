"""The write that shows an ended container waits for its termination message, but only
``hold`` seconds: a message that comes later is taken when it comes (``read_all``)."""

from __future__ import annotations

import asyncio

from k8sbridge.kubelet import termination as kubelet_termination
from k8sbridge.lifecycle import intents
from k8sbridge.model import ids


def want(container: str) -> intents.ReadTerminationMessage:
    return intents.ReadTerminationMessage(
        container=container, task_id=ids.TaskId(f"u.0.0.{container}"), agent_id="a",
        executor_id="e", file=None, logs=True)


async def test_quick_messages_are_taken_before_the_write_goes() -> None:
    order: list[str] = []

    async def read(w: intents.ReadTerminationMessage) -> str:
        await asyncio.sleep(0.01)
        return f"message of {w.container}"

    await kubelet_termination.read_all(
        [want("a"), want("b")], read=read, hold=5.0,
        take=lambda w, m: order.append(m), release=lambda: order.append("write"))
    assert sorted(order[:2]) == ["message of a", "message of b"] and order[2] == "write"


async def test_a_slow_message_does_not_hold_the_write_past_the_hold() -> None:
    order: list[str] = []
    slow_done = asyncio.Event()

    async def read(w: intents.ReadTerminationMessage) -> str:
        if w.container == "slow":
            await slow_done.wait()
        return w.container

    task = asyncio.create_task(kubelet_termination.read_all(
        [want("quick"), want("slow")], read=read, hold=0.05,
        take=lambda w, m: order.append(m), release=lambda: order.append("write")))
    while "write" not in order:
        await asyncio.sleep(0.01)
    assert order == ["quick", "write"]
    slow_done.set()
    await task
    assert order == ["quick", "write", "slow"]


async def test_a_failed_read_is_logged_and_the_write_still_goes() -> None:
    order: list[str] = []

    async def read(w: intents.ReadTerminationMessage) -> str:
        raise RuntimeError("a bug")

    await kubelet_termination.read_all(
        [want("a")], read=read, hold=1.0, take=lambda w, m: order.append(m),
        release=lambda: order.append("write"))
    assert order == ["write"]
