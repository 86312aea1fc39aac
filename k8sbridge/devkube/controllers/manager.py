"""Runs devkube's controllers against an API server, like kube-controller-manager.

The API server hooks ``run`` into ``devkube.main``; the controllers only talk to it over HTTP
(any conformant server would do). One shared informer per resource feeds every controller;
each controller is one task draining its own keyed queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Protocol

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.clusterroleaggregation import (
    CLUSTERROLES,
    ClusterRoleAggregationController,
)
from k8sbridge.devkube.controllers.cronjob import CronJobController
from k8sbridge.devkube.controllers.daemonset import DaemonSetController
from k8sbridge.devkube.controllers.deployment import DeploymentController
from k8sbridge.devkube.controllers.disruption import PODDISRUPTIONBUDGETS, DisruptionController
from k8sbridge.devkube.controllers.endpoints import EndpointsController
from k8sbridge.devkube.controllers.endpointslice import EndpointSliceController
from k8sbridge.devkube.controllers.endpointslicemirroring import (
    EndpointSliceMirroringController,
)
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.gc import GarbageCollector
from k8sbridge.devkube.controllers.hpa import HPAS, HorizontalController
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.job import JobController
from k8sbridge.devkube.controllers.nodelifecycle import LEASE_NAMESPACE, NodeLifecycleController
from k8sbridge.devkube.controllers.podgc import PodGarbageCollector
from k8sbridge.devkube.controllers.replicaset import ReplicaSetController
from k8sbridge.devkube.controllers.serviceaccounts import RootCAPublisher, ServiceAccountsController
from k8sbridge.devkube.controllers.statefulset import StatefulSetController
from k8sbridge.devkube.controllers.ttlafterfinished import TTLAfterFinishedController
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

DEFAULT_NODE_GRACE_SECONDS = 50.0
HPA_SYNC_SECONDS = 15.0  # --horizontal-pod-autoscaler-sync-period


async def run(
        *,
        url: str,
        token: str | None,
        ca_file: Path | None,
        node_grace_seconds: float = DEFAULT_NODE_GRACE_SECONDS,
        unix_socket: Path | None = None,
        root_ca: str | None = None,
        hpa_sync_seconds: float = HPA_SYNC_SECONDS,
        stop: asyncio.Event,
        ready: asyncio.Event,
) -> None:
    """Run all controllers until ``stop`` is set; ``ready`` once every cache has synced.

    ``unix_socket``: reach the server through this socket (plain HTTP, still with the token)
    instead of ``url``'s host; devkube serves one for its own controllers, which spares both
    ends TLS and TCP on every request.

    ``root_ca``: what ``kube-root-ca.crt`` holds in every namespace (``--root-ca-file``);
    None: the CA of ``ca_file`` (kube-controller-manager's kubeconfig CA), else empty.

    If the server is unreachable the informers keep retrying with back-off (``ready`` then
    stays unset); ``stop`` always ends the run promptly.
    """
    if node_grace_seconds <= 0:
        raise ValueError(f"node_grace_seconds must be positive, not {node_grace_seconds}")
    if root_ca is None:
        root_ca = ca_file.read_text() if ca_file is not None else ""
    async with api.ApiClient(url=url, token=token, ca_file=ca_file,
                             unix_socket=unix_socket) as client:
        pods = Informer(client=client, resource=api.PODS)
        replicasets = Informer(client=client, resource=api.REPLICASETS)
        deployments = Informer(client=client, resource=api.DEPLOYMENTS)
        jobs = Informer(client=client, resource=api.JOBS)
        cronjobs = Informer(client=client, resource=api.CRONJOBS)
        nodes = Informer(client=client, resource=api.NODES)
        statefulsets = Informer(client=client, resource=api.STATEFULSETS)
        revisions = Informer(client=client, resource=api.CONTROLLERREVISIONS)
        daemonsets = Informer(client=client, resource=api.DAEMONSETS)
        replication = Informer(client=client, resource=api.REPLICATIONCONTROLLERS)
        leases = Informer(client=client, resource=api.LEASES, namespace=LEASE_NAMESPACE)
        namespaces = Informer(client=client, resource=api.NAMESPACES)
        service_accounts = Informer(client=client, resource=api.SERVICEACCOUNTS)
        config_maps = Informer(client=client, resource=api.CONFIGMAPS)
        services = Informer(client=client, resource=api.SERVICES)
        endpoints = Informer(client=client, resource=api.ENDPOINTS)
        slices = Informer(client=client, resource=api.ENDPOINTSLICES)
        cluster_roles = Informer(client=client, resource=CLUSTERROLES)
        pdbs = Informer(client=client, resource=PODDISRUPTIONBUDGETS)
        hpas = Informer(client=client, resource=HPAS)
        # watched only so that their ownerReferences are honoured by the garbage collector
        extra = [Informer(client=client, resource=api.SECRETS)]
        informers = [pods, replicasets, deployments, jobs, cronjobs, nodes, leases, namespaces,
                     service_accounts, config_maps, services, endpoints, slices, cluster_roles,
                     statefulsets, revisions, daemonsets, replication, pdbs, hpas,
                     *extra]
        recorder = EventRecorder(client=client, component="devkube-controller-manager")
        controllers: list[_Controller] = [
            ReplicaSetController(client=client, pods=pods, replicasets=replicasets,
                                 recorder=recorder),
            ReplicaSetController(client=client, pods=pods, replicasets=replication,
                                 recorder=recorder, resource=api.REPLICATIONCONTROLLERS),
            DeploymentController(client=client, deployments=deployments,
                                 replicasets=replicasets, pods=pods, recorder=recorder),
            JobController(client=client, pods=pods, jobs=jobs, recorder=recorder),
            CronJobController(client=client, jobs=jobs, cronjobs=cronjobs, recorder=recorder),
            TTLAfterFinishedController(client=client, jobs=jobs),
            StatefulSetController(client=client, pods=pods, statefulsets=statefulsets,
                                  revisions=revisions, recorder=recorder),
            DaemonSetController(client=client, pods=pods, nodes=nodes, daemonsets=daemonsets,
                                revisions=revisions, recorder=recorder),
            NodeLifecycleController(client=client, nodes=nodes, leases=leases, pods=pods,
                                    grace_seconds=node_grace_seconds, recorder=recorder),
            GarbageCollector(client=client, informers=informers),
            PodGarbageCollector(client=client, pods=pods, nodes=nodes),
            ServiceAccountsController(client=client, namespaces=namespaces,
                                      service_accounts=service_accounts),
            RootCAPublisher(client=client, namespaces=namespaces, config_maps=config_maps,
                            root_ca=root_ca),
            EndpointSliceController(client=client, services=services, pods=pods, slices=slices,
                                    nodes=nodes),
            EndpointsController(client=client, services=services, pods=pods,
                                endpoints=endpoints),
            EndpointSliceMirroringController(client=client, services=services,
                                             endpoints=endpoints, slices=slices),
            ClusterRoleAggregationController(client=client, cluster_roles=cluster_roles),
            DisruptionController(client=client, pdbs=pdbs, pods=pods, replicasets=replicasets,
                                 deployments=deployments, statefulsets=statefulsets,
                                 replication=replication),
            HorizontalController(client=client, hpas=hpas, recorder=recorder,
                                 period=hpa_sync_seconds),
        ]
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(inf.run(stop=stop), name=f"informer-{inf.resource.plural}")
            for inf in informers]
        tasks += [asyncio.create_task(c.run(stop=stop), name=f"controller-{c.queue.name}")
                  for c in controllers]
        tasks.append(asyncio.create_task(recorder.run(stop=stop), name="event-recorder"))
        stopper: asyncio.Task[None] = asyncio.create_task(_wait(stop))
        synced: asyncio.Task[None] = asyncio.create_task(_all_synced(informers))
        try:
            done, _ = await asyncio.wait({stopper, synced, *tasks},
                                         return_when=asyncio.FIRST_COMPLETED)
            if synced in done:
                log.info("devkube controllers running against %s%s", url,
                         f" (via {unix_socket})" if unix_socket is not None else "")
                ready.set()
                done, _ = await asyncio.wait({stopper, *tasks},
                                             return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task is not synced:
                    failure = task.exception()
                    if failure is not None:
                        raise failure
        finally:
            for task in [*tasks, stopper, synced]:
                task.cancel()
            for task in [*tasks, stopper, synced]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Controller(Protocol):
    queue: WorkQueue

    async def run(self, *, stop: asyncio.Event) -> None: ...


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


async def _all_synced(informers: list[Informer]) -> None:
    for inf in informers:
        await inf.synced.wait()
