"""A replica of the bridge: standby until it holds the leader Lease, then the bridge; fenced
when the Lease is lost.

Why here, beside ``app``: running 2+ replicas is a question of *when* the composition root's
bridge runs in this process, not of how it is wired. The election (``leader``) decides who
leads; this module runs ``app.running_bridge`` only while this replica leads, stops it before
anyone else may lead (fencing: the leader's components are cancelled when the Lease was not
renewed within the renew deadline, and the process exits if they are not down within the
margin left before the lease expires), and releases the Lease after a graceful stop so that a
standby takes over at its next retry instead of after the lease duration.

Only the leader subscribes to Mesos (with the framework id stored in the state ConfigMap, so
the master fails the framework over to it and keeps its tasks), places, launches and writes pod
and node status. After takeover it reconciles with the master before it launches anything, as
after any restart (``scheduler.loop_reconcile``).

A standby is warm: from the start it runs the bridge's Kubernetes watch (``kube.warm``: Pods,
Nodes, Services, read-only) and keeps its caches filled, so takeover is the Lease, the Mesos
SUBSCRIBE and the reconciliation, not a cold start of the watch and the pod list. Its
``/metrics`` show the caches (``k8sbridge_watch_cached_objects``, ``k8sbridge_watch_synced``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from k8sbridge import app
from k8sbridge import metrics as bridge_metrics
from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import warm as kube_warm
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api as kubelet_api
from k8sbridge.leader import elector as leader_elector
from k8sbridge.leader import lease as leader_lease
from k8sbridge.mesos import client as mesos_client
from k8sbridge.mesos import transport as mesos_transport
from k8sbridge.scheduler import loop_pods

__all__ = ["FENCED_EXIT", "ElectionError", "LeadershipLost", "replica_identity", "run_replica"]

log = logging.getLogger(__name__)

ElectionError = leader_elector.ElectionError  # the Lease is another framework's (run_cli: 2)

FENCE_MARGIN = 1.0  # seconds the fenced leader keeps free before a standby may take over
FENCED_EXIT = 70  # exit status of a leader that could not stop in time (os._exit)


class LeadershipLost(RuntimeError):
    """This replica led and lost the Lease: it stopped acting (fenced) and must not go on."""


def replica_identity(setting: str) -> str:
    """The Lease's holderIdentity: the setting, else client-go's HOSTNAME_UUID (unique per
    process, so a restarted replica never mistakes the Lease of its previous life for its
    own)."""
    return setting or f"{socket.gethostname()}_{uuid.uuid4()}"


async def run_replica(
    settings: bridge_settings.BridgeSettings,
    *,
    stop: asyncio.Event,
    on_leading: Callable[[app.Bridge], Awaitable[None]] | None = None,
) -> None:
    """One replica: a standby until it holds the leader Lease, then the bridge (Mesos
    subscription with the stored framework id, placement, launches, pod and node status)
    until ``stop`` (stop acting, then release the Lease) or until the Lease is lost (fencing:
    stop acting within the margin the lease leaves, else exit the process; raises
    ``LeadershipLost``). Returns when the bridge ended by itself (the framework finished).

    A standby is warm: its process, credentials and kubelet API are up (the kubelet API answers
    503 to logs/exec until this replica leads: it does not know where pods run), it watches
    the Lease, and its watch of Pods, Nodes and Services keeps their caches filled
    (``kube.warm``); on takeover the bridge takes that watch over, subscribes to Mesos and
    reconciles, after the old leader stopped acting."""
    config = settings.leader
    kube = kube_client.KubeClient.from_kubeconfig(
        path=settings.kube.kubeconfig, context=settings.kube.context, connections=4,
        timeout=config.renew_deadline_seconds,
    )
    elector = leader_elector.LeaderElector(
        lock=leader_lease.LeaseLock(kube=kube, namespace=settings.kube.namespace,
                                    name=config.lease_name),
        identity=replica_identity(config.identity),
        framework=settings.mesos.framework_name,
        timing=leader_elector.ElectionTiming(
            lease_seconds=config.lease_duration_seconds,
            renew_deadline=config.renew_deadline_seconds,
            retry_period=config.retry_period_seconds,
        ),
    )
    settings = app.with_kubelet_address(settings, kube)
    transport = mesos_transport.Transport(config=mesos_client.ClientConfig(
        masters=settings.mesos.masters, principal=settings.mesos.principal,
        secret=app.read_secret(settings.mesos.secret_file),
        ca_file=str(settings.mesos.ca_file) if settings.mesos.ca_file else None,
    ))
    reader = mesos_agents.MesosReader(transport=transport)
    server = kubelet_api.KubeletServer(settings=settings.kubelet, reader=reader)
    warm = kube_warm.WarmWatch(connection=kube.connection(), list_pods=kube.list_pods,
                               keep_pod=loop_pods.compact_pod)
    warm_stop = asyncio.Event()
    watching = asyncio.create_task(_keep_warm(warm, stop=warm_stop), name="warm-watch")
    try:
        port = await server.start()
        standby_metrics = bridge_metrics.BridgeMetrics(leading=False)
        standby_metrics.watch_cache(counts=warm.counts, synced=lambda: warm.synced)
        server.attach(scheduler=None, kube=kube, nodes=None, metrics=standby_metrics)
        settings = dataclasses.replace(
            settings, kubelet=dataclasses.replace(settings.kubelet, port=port))
        log.info("standby %s: waiting for the leader Lease %s/%s", elector.identity,
                 settings.kube.namespace, config.lease_name)
        if not await elector.acquire(stop):
            return
        counts = warm.counts()
        log.info("%s leads: starting the bridge (watch cache %s: %d pods, %d nodes, "
                 "%d services)", elector.identity, "filled" if warm.synced else "not filled yet",
                 counts["pods"], counts["nodes"], counts["services"])
        await _lead(settings, elector=elector, stop=stop, server=server, on_leading=on_leading,
                    warm=None if watching.done() else warm)
    finally:
        warm_stop.set()
        with contextlib.suppress(Exception):
            await watching
        with contextlib.suppress(Exception):
            await server.stop()
        await reader.close()
        await kube.close()


async def _keep_warm(warm: kube_warm.WarmWatch, *, stop: asyncio.Event) -> None:
    """Run the standby's watch until ``stop``; a watch that fails leaves the bridge to start
    its own on takeover (a cold start, not no start)."""
    ready = asyncio.Event()

    async def restore_signals() -> None:
        await ready.wait()
        app.restore_signal_handlers()  # the watch runs kopf in this loop; kopf took the signals

    restoring = asyncio.create_task(restore_signals())
    try:
        await warm.run(stop=stop, ready=ready)
    except Exception:
        log.exception("the standby's watch failed: the bridge starts its own when it leads")
    finally:
        restoring.cancel()


async def _lead(
    settings: bridge_settings.BridgeSettings,
    *,
    elector: leader_elector.LeaderElector,
    stop: asyncio.Event,
    server: kubelet_api.KubeletServer,
    on_leading: Callable[[app.Bridge], Awaitable[None]] | None,
    warm: kube_warm.WarmWatch | None = None,
) -> None:
    config = settings.leader
    fence_grace = max(0.5, config.lease_duration_seconds - config.renew_deadline_seconds
                      - FENCE_MARGIN)
    bridge_stop = asyncio.Event()

    async def act() -> None:
        async with app.running_bridge(settings, kubelet_server=server, warm=warm) as bridge:
            if on_leading is not None:
                await on_leading(bridge)
            waiters = [asyncio.ensure_future(bridge_stop.wait()),
                       asyncio.ensure_future(bridge.framework.finished.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    holder = asyncio.create_task(elector.hold(), name="leader-lease")
    acting = asyncio.create_task(act(), name="leader")
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({holder, acting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not holder.done():
            bridge_stop.set()  # asked to stop, or the bridge ended: stop acting, still leading
            await asyncio.wait({holder, acting}, return_when=asyncio.FIRST_COMPLETED)
        if holder.done() and not acting.done():
            await _fence(acting, grace=fence_grace)
            raise LeadershipLost(f"{elector.identity} lost the leader Lease and stopped acting")
        acting.result()  # what made the bridge fail, if it did
    finally:
        holder.cancel()
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        if acting.done() and config.release_on_stop:
            await elector.release()


async def _fence(acting: asyncio.Task[None], *, grace: float) -> None:
    """Stop acting now: cancel the bridge; if it is not down within ``grace`` (a write stuck
    on a partitioned API server), end the process: after the grace a standby may lead."""
    log.error("fencing: stopping the bridge (%.1fs before a standby may take over)", grace)
    acting.cancel()
    done, _ = await asyncio.wait({acting}, timeout=grace)
    if not done:
        log.critical("fencing: the bridge did not stop within %.1fs: exiting now", grace)
        logging.shutdown()
        os._exit(FENCED_EXIT)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        acting.result()
