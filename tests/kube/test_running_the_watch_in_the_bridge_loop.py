"""The pod watch (embedded kopf) runs in the bridge's own event loop.

What must hold for that: callbacks run on the caller's loop and thread; stopping the watch
stops kopf's tasks and nothing else of the loop (``kopf.operator()`` would cancel every task
created after it started); the kube client keeps working next to it; and the
process' SIGINT/SIGTERM still reach the application after kopf installed handlers of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

import pytest

from k8sbridge import app
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kube import operator as kube_operator

PODS = "/api/v1/namespaces/default/pods"


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]},
    }


def _kopf_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks()
        if "/kopf/" in getattr(t.get_coro(), "cr_code", None).co_filename  # type: ignore[union-attr]
    ]


async def test_callbacks_run_on_the_callers_loop_and_stopping_spares_the_other_tasks(
    kube: kube_client.KubeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="k8sbridge.kube.operator")
    loop = asyncio.get_running_loop()
    calls: list[tuple[str | None, str, int, asyncio.AbstractEventLoop]] = []
    seen = asyncio.Event()

    def on_pod(etype: str | None, raw: dict[str, Any]) -> None:
        calls.append((etype, raw["metadata"]["name"], threading.get_ident(),
                      asyncio.get_running_loop()))
        if raw["metadata"]["name"] == "after":
            seen.set()

    stop, ready = asyncio.Event(), asyncio.Event()
    watch = asyncio.create_task(
        kube_operator.run(connection=kube.connection(), on_pod=on_pod, stop=stop, ready=ready)
    )
    bystander_stop = asyncio.Event()
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        app.restore_signal_handlers()  # kopf took SIGINT/SIGTERM of this (main) thread
        assert _kopf_tasks(), "kopf's tasks run in this loop"
        # a task of another component, created after the watch started
        bystander = asyncio.create_task(bystander_stop.wait())
        # the kube client works next to the watch, from the same loop
        await kube.create(PODS, _pod("after"))
        async with asyncio.timeout(30):
            await seen.wait()
        assert (await kube.get_pod("default", "after"))["metadata"]["name"] == "after"
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await watch
    assert "after" in {name for _, name, _, _ in calls}
    assert {ident for _, _, ident, _ in calls} == {threading.get_ident()}
    assert all(cb_loop is loop for _, _, _, cb_loop in calls)
    assert not bystander.done(), "stopping the watch must not cancel other components' tasks"
    assert _kopf_tasks() == [], "every kopf task ends with the watch"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    bystander_stop.set()
    await bystander


async def test_signals_reach_the_application_once_the_watch_has_started(
    kube: kube_client.KubeClient,
) -> None:
    loop = asyncio.get_running_loop()
    app_stop = asyncio.Event()
    stop, ready = asyncio.Event(), asyncio.Event()
    app.install_signal_handlers(app_stop)
    try:
        watch = asyncio.create_task(
            kube_operator.run(connection=kube.connection(), stop=stop, ready=ready)
        )
        async with asyncio.timeout(30):
            await ready.wait()
        app.restore_signal_handlers()
        signal.raise_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await app_stop.wait()
        await asyncio.sleep(0.2)
        assert not watch.done(), "the signal is the application's to act on, not kopf's"
        stop.set()
        async with asyncio.timeout(30):
            await watch
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def test_without_the_restore_kopf_takes_sigterm_and_the_watch_reports_it_stopped(
    kube: kube_client.KubeClient,
) -> None:
    """Why ``app`` restores the handlers: left to kopf, SIGTERM would stop only the watch (an
    error here), never the application."""
    loop = asyncio.get_running_loop()
    app_stop = asyncio.Event()
    stop, ready = asyncio.Event(), asyncio.Event()
    app.install_signal_handlers(app_stop)
    try:
        watch = asyncio.create_task(
            kube_operator.run(connection=kube.connection(), stop=stop, ready=ready)
        )
        async with asyncio.timeout(30):
            await ready.wait()
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(kube_errors.TransportError, match="the watch stopped"):
            async with asyncio.timeout(30):
                await watch
        assert not app_stop.is_set()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
