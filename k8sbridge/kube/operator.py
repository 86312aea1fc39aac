"""Watching Kubernetes objects with an embedded kopf operator that only feeds our queues.

Why kopf, and why only ``@kopf.on.event``: kopf gives us a robust list+watch loop (relist on
410, bookmarks, reconnects, back-off) without us writing one. Its change handlers, however, write
progress annotations and finalizers onto the objects; the bridge must not touch pods that way
(the kubelet is the sole writer of ``pod.status``, and annotations would make every pod look
changed). Event handlers are read-only: each one hands the raw object to a callback that puts a
key on one of the bridge's level-triggered queues and returns at once.

The operator runs in the bridge's event loop (measured against a thread of its own:
``bench/bench_kopf_embedding.py``, docs/benchmarks.md), with its own registry (no globals),
``standalone`` (no peering objects), clusterwide, with event posting disabled; ``ready`` is set
once kopf reports it is ready.

Why kopf keeps no diff base or progress here: kopf works out every event's "essence" (a deep
copy of the object, for change handlers) and clears its progress records (another deep copy)
whatever handlers are registered; with only event handlers nothing reads them. Those copies
were a tenth of the bridge's CPU in a 1,000-pod burst (py-spy, docs/benchmarks.md), so the
storages below keep nothing and copy nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import kopf

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors

__all__ = ["WatchCallback", "run"]

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # kopf's root tasks get this long to exit after the stop flag, then are cancelled

# (event type: "ADDED" | "MODIFIED" | "DELETED" | None for the initial listing, raw object)
WatchCallback = Callable[[str | None, dict[str, Any]], None]


def _build_registry(
    *,
    connection: kube_client.Connection,
    on_pod: WatchCallback | None,
    on_node: WatchCallback | None,
    on_service: WatchCallback | None = None,
    others: Mapping[tuple[str, str, str], WatchCallback] | None = None,
) -> Any:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> Any:
        return kopf.ConnectionInfo(
            server=connection.server,
            token=connection.token,
            scheme="Bearer" if connection.token else None,
            ca_path=connection.ca_file,
            certificate_path=connection.cert_file,
            private_key_path=connection.key_file,
            insecure=connection.insecure or None,
            username=connection.username,
            password=connection.password,
        )

    if on_pod is not None:
        pod_callback = on_pod

        # async handlers: kopf runs a sync handler in its thread pool, one thread hop per event
        # for a relay that only calls call_soon_threadsafe (measured: the pod watch was half
        # of the bridge's CPU in a 1,000-pod burst)
        @kopf.on.event("", "v1", "pods", registry=registry)
        async def _pod_event(event: Any, **_: Any) -> None:
            _deliver(pod_callback, event)

    if on_node is not None:
        node_callback = on_node

        @kopf.on.event("", "v1", "nodes", registry=registry)
        async def _node_event(event: Any, **_: Any) -> None:
            _deliver(node_callback, event)

    if on_service is not None:
        service_callback = on_service

        @kopf.on.event("", "v1", "services", registry=registry)
        async def _service_event(event: Any, **_: Any) -> None:
            _deliver(service_callback, event)

    for (group, version, plural), callback in (others or {}).items():
        _relay(registry, group=group, version=version, plural=plural, callback=callback)
    return registry


def _relay(registry: Any, *, group: str, version: str, plural: str,
           callback: WatchCallback) -> None:
    @kopf.on.event(group, version, plural, registry=registry)
    async def _event(event: Any, **_: Any) -> None:
        _deliver(callback, event)


def _deliver(callback: WatchCallback, event: Any) -> None:
    raw = event.get("object")
    if not isinstance(raw, dict):
        return
    etype = event.get("type")
    try:
        callback(etype, raw)
    except Exception:  # a bad callback must not kill the watch stream; it is a bug: log it
        log.exception("watch callback failed for %s", (raw.get("metadata") or {}).get("name"))


class _NoDiffBase(kopf.DiffBaseStorage):
    """No essence: only change handlers compare essences, and the bridge registers none."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return kopf.BodyEssence()

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


class _NoProgress(kopf.ProgressStorage):
    """No progress records: event handlers are not retried and have no progress to keep."""

    def fetch(self, *, key: Any, body: Any) -> Any:
        return None

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        return None

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        return None

    def touch(self, *, body: Any, patch: Any, value: Any) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return essence


def _settings() -> Any:
    settings = kopf.OperatorSettings()
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.persistence.progress_storage = _NoProgress()
    settings.posting.enabled = False  # no kopf events on our pods
    settings.watching.inactivity_timeout = 70.0
    settings.watching.reconnect_backoff = 0.5
    settings.networking.error_backoffs = [0.5, 1, 2, 5]
    settings.scanning.disabled = True  # no CRD/namespace scanning: we are clusterwide on v1
    # kopf arms a SIGKILL of the thread (the bridge's main thread) when cancelled without its
    # stop flag; the bridge bounds its components' shutdown itself.
    settings.process.ultimate_exiting_timeout = None
    return settings


async def run(
    *,
    connection: kube_client.Connection,
    on_pod: WatchCallback | None = None,
    on_node: WatchCallback | None = None,
    on_service: WatchCallback | None = None,
    others: Mapping[tuple[str, str, str], WatchCallback] | None = None,
    stop: asyncio.Event,
    ready: asyncio.Event,
) -> None:
    """Watch pods (and optionally nodes, services, and ``others``: (group, version, plural) ->
    callback) until ``stop`` is set, in the caller's event loop.

    Callbacks run in this loop (inside kopf's per-object workers), so they keep the
    single-owner rule without a thread hop. kopf's root tasks are spawned and stopped here rather
    than through ``kopf.operator()``: on exit that also cancels every task of the loop created
    after it started, which in the bridge are the other components' tasks. kopf's root tasks
    stop their own watchers and workers when cancelled. kopf also replaces the SIGINT/SIGTERM
    handlers of the main thread; ``app`` puts its own back once this is ready.
    """
    # kopf logs every handled event at INFO; ours are read-only relays: keep that quiet unless
    # the operator of the bridge configured kopf's loggers explicitly.
    objects_log = logging.getLogger("kopf.objects")
    if objects_log.level == logging.NOTSET:
        objects_log.setLevel(logging.WARNING)
    registry = _build_registry(connection=connection, on_pod=on_pod, on_node=on_node,
                               on_service=on_service, others=others)
    kopf_stop = asyncio.Event()
    kopf_ready = asyncio.Event()
    tasks = await kopf.spawn_tasks(
        registry=registry,
        settings=_settings(),
        standalone=True,
        clusterwide=True,
        stop_flag=kopf_stop,
        ready_flag=kopf_ready,
    )
    stopping = asyncio.ensure_future(stop.wait())
    ready_waiter = asyncio.ensure_future(kopf_ready.wait())
    try:
        pending: set[asyncio.Future[Any]] = {stopping, ready_waiter, *tasks}
        while not stop.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if ready_waiter in done:
                ready.set()
            ended = [t for t in tasks if t in done]
            if ended and not stop.is_set():
                failure = next((t.exception() for t in ended if not t.cancelled()
                                and t.exception() is not None), None)
                raise kube_errors.TransportError(
                    f"the watch stopped: kopf's {ended[0].get_name()!r} ended"
                    + (f" ({failure!r})" if failure else "")
                ) from failure
    finally:
        stopping.cancel()
        ready_waiter.cancel()
        await _stop_root_tasks(tasks, flag=kopf_stop)


async def _stop_root_tasks(tasks: Collection[asyncio.Task[Any]], *, flag: asyncio.Event) -> None:
    """Stop kopf as ``kopf.run_tasks`` does, minus its sweep of the loop's other tasks: raise
    the stop flag (its checker task exits), cancel the remaining root tasks, wait for them."""
    flag.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE,
                                    return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("kopf task %s ended with %r while stopping", task.get_name(),
                        task.exception())
    if late:
        log.error("kopf tasks did not stop within %gs of being cancelled: %s", STOP_GRACE,
                  ", ".join(sorted(t.get_name() for t in late)))
