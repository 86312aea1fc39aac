"""The composition root: builds every component from ``BridgeSettings`` and runs them together.

Why one place: components only receive what they need (a client, a sink, a directory), so
this file is the only one that knows how the bridge is wired — and, for ``k8sbridge run``
without external targets, the only product module that knows the stand-ins (embedded kernel
and devkube) exist. Components run as one ``asyncio.TaskGroup``: when one fails, the others
are stopped and the error surfaces. Signals are handled only here (``install_signal_handlers``).

The embedded default comes in two forms: ``embedded.running_processes`` (what ``k8sbridge run``
runs: kernel, devkube and the bridge as three child processes, so each has an interpreter and a
core of its own, as in production) and ``running_embedded`` here (all three in this process:
integration tests reach into the running bridge through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import signal
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from k8sbridge import aio, embedded
from k8sbridge import metrics as bridge_metrics
from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kube import operator as kube_operator
from k8sbridge.kube import state as kube_state
from k8sbridge.kube import warm as kube_warm
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api as kubelet_api
from k8sbridge.kubelet import nodes as kubelet_nodes
from k8sbridge.kubelet import pods as kubelet_pods
from k8sbridge.kubelet import termination as kubelet_termination
from k8sbridge.lifecycle import store as lifecycle_store
from k8sbridge.mesos import client as mesos_client
from k8sbridge.mesos import framework as mesos_framework
from k8sbridge.mesos import transport as mesos_transport
from k8sbridge.mesos import types as mesos_types
from k8sbridge.scheduler import loop as scheduler_loop

__all__ = [
    "Bridge",
    "EmbeddedTargets",
    "install_signal_handlers",
    "restore_signal_handlers",
    "read_secret",
    "run_bridge",
    "running_bridge",
    "running_embedded",
    "with_kubelet_address",
]


log = logging.getLogger(__name__)

# the master's GET_TASKS, as the scheduler loop reconciles with it
ListTasks = Callable[[], Awaitable[list[dict[str, Any]]]]

# (gen0, gen1, gen2): a young collection per 50,000 allocations (devkube's), a full one per
# 20 x 20 of those
GC_THRESHOLDS = (50_000, 20, 20)
START_TIMEOUT = 60.0
STOP_GRACE = 10.0  # a component gets this long to stop before it is cancelled


# What SIGINT/SIGTERM set, per loop. Signals are process-wide state: the watch (kopf, in this
# loop) installs its own handlers when it starts, and ``running_bridge`` puts these back.
_signal_targets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
    weakref.WeakKeyDictionary()
)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (the bridge puts this back after kopf took the signals)."""
    loop = asyncio.get_running_loop()
    _signal_targets[loop] = stop
    for sig in _SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def restore_signal_handlers() -> None:
    """Undo kopf's SIGINT/SIGTERM handlers (it installs them when it runs in the main thread):
    back to ``install_signal_handlers``' event when it was called, else to Python's defaults."""
    loop = asyncio.get_running_loop()
    target = _signal_targets.get(loop)
    if target is not None:
        install_signal_handlers(target)
        return
    for sig in _SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


@dataclasses.dataclass(slots=True)
class Bridge:
    """Handles to the running bridge's parts (tests and ``k8sbridge run`` read them)."""

    settings: bridge_settings.BridgeSettings
    kube: kube_client.KubeClient
    framework: mesos_framework.Framework
    scheduler: scheduler_loop.Scheduler
    nodes: kubelet_nodes.NodeController
    writer: kubelet_pods.PodStatusWriter
    kubelet_port: int
    kubelet_api: kubelet_api.KubeletServer | None = None


def _route_to(server: str) -> str:
    """The local address this host uses to reach ``server`` (what the API server can dial
    back); no packet is sent (a UDP socket's connect only picks the route)."""
    import socket
    import urllib.parse

    parsed = urllib.parse.urlsplit(server)
    host = parsed.hostname or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, parsed.port or 443, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except OSError as e:
        log.warning("cannot find the route to %s (%s); advertising 127.0.0.1", server, e)
        return "127.0.0.1"


async def _master_version(reader: mesos_agents.MesosReader) -> str:
    """The leading master's version (operator API GET_VERSION), as the scheduler reads it."""
    return (await reader.get_version()).version


def read_secret(path: Path | None) -> str | None:
    if path is None:
        return None
    return path.read_text(encoding="utf-8").strip()


@contextlib.asynccontextmanager
async def running_bridge(
    settings: bridge_settings.BridgeSettings,
    *,
    on_ready: Callable[[Bridge], Awaitable[None]] | None = None,
    _wrap_list_tasks: Callable[[ListTasks], ListTasks] | None = None,  # tests inject faults
    kubelet_server: kubelet_api.KubeletServer | None = None,
    warm: kube_warm.WarmWatch | None = None,
) -> AsyncIterator[Bridge]:
    """Run the bridge until the block exits; yields once nodes, watch and framework are up.
    ``kubelet_server``: a kubelet API already listening (a replica's, started while it was a
    standby); it is attached to this bridge and left running when the block exits. ``warm``:
    the watch a standby kept (``kube.warm``): the bridge takes its events and caches instead
    of starting a watch of its own, and leaves it running when the block exits.

    While it runs the cyclic garbage collector runs rarely (``GC_THRESHOLDS``; the previous
    thresholds are put back when the block exits): the bridge keeps a decoded pod per pod and
    every watch event, call and answer is a fresh acyclic JSON tree, so the default collections
    (one per 700 allocations, re-traversing what survived) freed next to nothing and were 14 %
    of the bridge's CPU in a 1,000-pod burst (gc.callbacks, docs/bench/bridge.md)."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        async with _running_bridge(
                settings, on_ready=on_ready, _wrap_list_tasks=_wrap_list_tasks,
                kubelet_server=kubelet_server, warm=warm) as bridge:
            yield bridge
    finally:
        gc.set_threshold(*before)


@contextlib.asynccontextmanager
async def _running_bridge(
    settings: bridge_settings.BridgeSettings,
    *,
    on_ready: Callable[[Bridge], Awaitable[None]] | None,
    _wrap_list_tasks: Callable[[ListTasks], ListTasks] | None,
    kubelet_server: kubelet_api.KubeletServer | None,
    warm: kube_warm.WarmWatch | None,
) -> AsyncIterator[Bridge]:
    metrics = bridge_metrics.BridgeMetrics()
    kube = kube_client.KubeClient.from_kubeconfig(
        path=settings.kube.kubeconfig,
        context=settings.kube.context,
        connections=settings.kube.client_threads,
        observer=metrics.observe_kube_request,
    )
    client_config = mesos_client.ClientConfig(
        masters=settings.mesos.masters,
        principal=settings.mesos.principal,
        secret=read_secret(settings.mesos.secret_file),
        ca_file=str(settings.mesos.ca_file) if settings.mesos.ca_file else None,
    )
    # One transport for the scheduler and operator APIs: one leader, one set of credentials.
    transport = mesos_transport.Transport(config=client_config)
    reader = mesos_agents.MesosReader(transport=transport)
    stop = asyncio.Event()
    settings = with_kubelet_address(settings, kube)
    bind = kubelet_api.bind_hosts(settings.kubelet.host)
    if not {"0.0.0.0", "::", settings.kubelet.advertise_address} & set(bind):
        log.warning("the kubelet API binds %s but is advertised as %s: the API server may "
                    "not reach it (kubectl logs fails)", ",".join(bind),
                    settings.kubelet.advertise_address)
    try:
        if kubelet_server is not None:
            api_server, port = kubelet_server, kubelet_server.port
        else:
            api_server = kubelet_api.KubeletServer(settings=settings.kubelet, reader=reader)
            port = await api_server.start()
        if port != settings.kubelet.port:
            settings = dataclasses.replace(
                settings, kubelet=dataclasses.replace(settings.kubelet, port=port)
            )
        store = await _open_store(kube, settings)
        # before the offer loop exists, so before any ACCEPT (``lifecycle.taskids``)
        generation = await _bump_generation(kube, settings)
        nodes = kubelet_nodes.NodeController(kube=kube, reader=reader, settings=settings)
        scheduler_box: list[scheduler_loop.Scheduler] = []
        # one record per pod, in one store the writer and the loop share (both run on this
        # event loop: no locks); the writer executes the lifecycle's intents, relaunches and
        # kills go to the loop
        lives = lifecycle_store.PodStore()
        writer = kubelet_pods.PodStatusWriter(
            kube=kube,
            lives=lives,
            read_message=kubelet_termination.TerminationReader(
                reader=reader, agents=nodes,
                framework_id=lambda: scheduler_box[0].framework_id if scheduler_box else None,
            ).read,
            relaunch=lambda uid, delay, containers: scheduler_box[0].request_relaunch(
                uid, delay, containers=containers
            ),
            kill=lambda uid, task_id: scheduler_box[0].request_kill(uid, task_id),
        )

        writer.on_status_written = metrics.on_status_written

        async def handler(event: Any) -> None:
            metrics.on_mesos_event(event)
            await scheduler_box[0].on_mesos_event(event)

        framework = mesos_framework.Framework(
            settings=mesos_framework.FrameworkSettings(
                framework_info=mesos_types.FrameworkInfo(
                    name=settings.mesos.framework_name,
                    user=settings.mesos.user,
                    roles=settings.mesos.roles,
                    failover_timeout=settings.mesos.failover_timeout_seconds,
                    checkpoint=True,
                    principal=settings.mesos.principal,
                ),
                client=client_config,
                backoff_initial=settings.mesos.resubscribe_backoff_seconds,
                backoff_max=settings.mesos.resubscribe_backoff_max_seconds,
                probe_seconds=settings.mesos.master_probe_seconds,
                auto_acknowledge=False,  # the status writer acknowledges after writing
            ),
            handler=handler,
            id_store=store,
            transport=transport,
        )
        scheduler = scheduler_loop.Scheduler(
            settings=settings,
            kube=kube,
            driver=bridge_metrics.CountingDriver(framework, metrics),
            sink=writer,
            agents=nodes,
            list_tasks=(
                reader.get_tasks if _wrap_list_tasks is None
                else _wrap_list_tasks(reader.get_tasks)
            ),
            generation=generation,
            read_master_version=functools.partial(_master_version, reader),
            list_executors=reader.get_executors,
            lives=lives,
            list_pods=None if warm is None else warm.pods,
        )
        scheduler_box.append(scheduler)
        scheduler.on_pass = metrics.on_pass
        metrics.watch(client=framework.metrics, held_offers=lambda: scheduler.held_offers,
                      reconciled=lambda: scheduler.reconciled)
        if warm is not None:
            metrics.watch_cache(counts=warm.counts, synced=lambda: warm.synced)
        api_server.attach(scheduler=scheduler, kube=kube, nodes=nodes, metrics=metrics)
        bridge = Bridge(
            settings=settings, kube=kube, framework=framework, scheduler=scheduler,
            nodes=nodes, writer=writer, kubelet_port=port, kubelet_api=api_server,
        )
        up = asyncio.Event()

        async def supervise() -> None:
            # The TaskGroup lives in its own task: the caller may enter and leave this
            # context from different tasks (test fixtures do).
            async with asyncio.TaskGroup() as group:
                runner = _Runner(group=group, stop=stop)
                await runner.start("writer", writer.run)
                await runner.start("nodes", nodes.run)
                if warm is None:
                    await runner.start(
                        "watch",
                        lambda *, stop, ready: kube_operator.run(
                            connection=kube.connection(), on_pod=scheduler.on_pod_event,
                            on_node=scheduler.on_node_event,
                            on_service=scheduler.on_service_event, stop=stop, ready=ready,
                        ),
                    )
                else:
                    await runner.start("watch", functools.partial(_attached, warm, scheduler))
                restore_signal_handlers()  # the watch runs kopf in this loop; kopf took the signals
                await runner.start("scheduler", scheduler.run)
                await runner.start("framework", framework.run)
                up.set()
                await stop.wait()

        supervisor = asyncio.create_task(supervise(), name="bridge")
        waiter = asyncio.ensure_future(up.wait())
        try:
            await asyncio.wait({supervisor, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not up.is_set():
            supervisor.result()  # raises what made the start fail
            raise RuntimeError("the bridge stopped while starting")
        log.info("bridge ready: framework %s, kubelet API on port %d",
                 framework.framework_id, port)
        if on_ready is not None:
            await on_ready(bridge)
        try:
            yield bridge
        finally:
            stop.set()
            await supervisor
        await store.flush()
    finally:
        stop.set()
        if kubelet_server is None:
            with contextlib.suppress(Exception):
                await api_server.stop()
        else:
            kubelet_server.attach(scheduler=None, kube=None, nodes=None,
                                  metrics=bridge_metrics.BridgeMetrics(leading=False))
        await reader.close()
        await kube.close()


async def _attached(warm: kube_warm.WarmWatch, scheduler: scheduler_loop.Scheduler, *,
                    stop: asyncio.Event, ready: asyncio.Event) -> None:
    """The warm watch's events go to ``scheduler`` until ``stop``; a watch that ends before
    fails the bridge, as its own watch's end would."""
    warm.attach(kube_warm.Consumer(on_pod=scheduler.on_pod_event,
                                   on_node=scheduler.on_node_event,
                                   on_service=scheduler.on_service_event))
    ready.set()
    waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(warm.ended.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            raise kube_errors.TransportError("the watch stopped (the one kept since standby)")
    finally:
        for waiter in waiters:
            waiter.cancel()
        warm.detach()


class _Runner:
    """Starts components in a TaskGroup, waits for each to be ready, bounds their shutdown."""

    def __init__(self, *, group: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        self._group = group
        self._stop = stop

    async def start(self, name: str, run: Callable[..., Coroutine[Any, Any, None]]) -> None:
        ready = asyncio.Event()
        task = self._group.create_task(self._bounded(name, run, ready), name=name)
        await aio.wait_ready(ready, task, what=name, timeout=START_TIMEOUT)

    async def _bounded(
        self, name: str, run: Callable[..., Coroutine[Any, Any, None]], ready: asyncio.Event
    ) -> None:
        """Run one component; once ``stop`` is set it gets STOP_GRACE seconds, then cancel."""
        inner = asyncio.create_task(run(stop=self._stop, ready=ready), name=f"{name}-run")
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({inner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not inner.done():
                await asyncio.wait({inner}, timeout=STOP_GRACE)
            if not inner.done():
                log.warning("%s did not stop within %gs; cancelling it", name, STOP_GRACE)
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await inner
                return
            inner.result()
        finally:
            stopper.cancel()
            if not inner.done():
                inner.cancel()


async def _open_store(
    kube: kube_client.KubeClient, settings: bridge_settings.BridgeSettings
) -> kube_state.ConfigMapFrameworkIdStore:
    delay = 0.2
    for attempt in range(30):
        try:
            return await kube_state.ConfigMapFrameworkIdStore.open(
                kube=kube, namespace=settings.kube.namespace, name=settings.kube.state_configmap
            )
        except Exception as e:  # the API server may still be starting
            if attempt == 29:
                raise
            log.warning("reading the framework id failed (retrying): %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


async def _bump_generation(
    kube: kube_client.KubeClient, settings: bridge_settings.BridgeSettings
) -> int:
    delay = 0.2
    for attempt in range(30):
        try:
            return await kube_state.bump_generation(
                kube=kube, namespace=settings.kube.namespace, name=settings.kube.state_configmap
            )
        except kube_state.GenerationError:
            raise  # a value nobody can read: a person must look (never guess a generation)
        except Exception as e:  # the API server may still be starting
            if attempt == 29:
                raise
            log.warning("storing the bridge generation failed (retrying): %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def with_kubelet_address(
    settings: bridge_settings.BridgeSettings, kube: kube_client.KubeClient
) -> bridge_settings.BridgeSettings:
    if settings.kubelet.advertise_address:
        return settings
    address = _route_to(kube.connection().server)
    log.info("kubelet API advertised as %s (the local address routing to the API server)",
             address)
    return dataclasses.replace(
        settings, kubelet=dataclasses.replace(settings.kubelet, advertise_address=address))


async def run_bridge(
    *, settings: bridge_settings.BridgeSettings, stop: asyncio.Event, ready: asyncio.Event
) -> None:
    async with running_bridge(settings):
        ready.set()
        await stop.wait()


# --------------------------------------------------------------------------------------------
# The embedded default: kernel + devkube + bridge in one process


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddedTargets:
    kernel_url: str
    kubeconfig: Path
    api_url: str
    bridge: Bridge
    api_token: str | None = None  # devkube's bearer token (the kubeconfig's user)
    api_ca_file: Path | None = None  # devkube's CA (also the kubelet API's client CA)


@contextlib.asynccontextmanager
async def running_embedded(
    settings: bridge_settings.BridgeSettings,
    *,
    agents: Sequence[Any] | None = None,
    pod_network: str = "",
    _wrap_list_tasks: Callable[[ListTasks], ListTasks] | None = None,  # tests inject faults
) -> AsyncIterator[EmbeddedTargets]:
    """Kernel (with agents) + devkube + the bridge, all in this process (for tests; the
    command runs ``embedded.running_processes``). Its data dir layout differs: DIR/kernel is the
    master's work dir and DIR/agent-N the agents'. No cluster network is made: pods keep the
    agents' network, unless ``pod_network`` names one for the bridge to ask for."""
    from k8sbridge.devkube import main as devkube_main
    from k8sbridge.kernel import main as kernel_main
    from k8sbridge.kernel.master import config as master_config

    emb = settings.embedded
    data_dir = emb.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = data_dir / "kubeconfig"
    agent_configs = (
        list(agents)
        if agents is not None
        else embedded.embedded_agent_configs(
            data_dir=data_dir, count=emb.agents, resources=emb.agent_resources,
            image_dir=embedded.image_dir_of(settings))
    )
    master = master_config.MasterConfig(port=emb.kernel_port, work_dir=data_dir / "kernel")
    async with kernel_main.running_kernel(master=master, agents=agent_configs) as kernel:
        dk_config = devkube_main.DevkubeConfig(
            port=emb.api_port, data_dir=data_dir / "devkube", kubeconfig=kubeconfig
        )
        async with devkube_main.running(dk_config) as dk:
            bridge_cfg = embedded.bridge_settings_for(
                settings, kernel_url=kernel.master_url, kubeconfig=dk.kubeconfig,
                client_ca_file=dk.ca_file,
                agent_hosts=[str(getattr(c, "host", "") or "127.0.0.1") for c in agent_configs],
                pod_network=pod_network,
            )
            async with running_bridge(bridge_cfg, _wrap_list_tasks=_wrap_list_tasks) as bridge:
                yield EmbeddedTargets(
                    kernel_url=kernel.master_url,
                    kubeconfig=dk.kubeconfig,
                    api_url=dk.url,
                    bridge=bridge,
                    api_token=dk.token,
                    api_ca_file=dk.ca_file,
                )
