"""The bridge's durable state in the Kubernetes API: the Mesos framework id in a ConfigMap.

Why in Kubernetes: the bridge may run as a Deployment with no volume; the only store it always
has is the API server. Losing the framework id would register a *new* framework and orphan every
running task, so the id is saved on every SUBSCRIBED and read back on start.

The Mesos driver's store protocol is synchronous (``load()`` / ``save(id)``), so the id is read
before the driver starts and each ``save`` schedules a write that is retried until it lands;
``flush()`` waits for it (the app awaits it on shutdown).
"""

from __future__ import annotations

import asyncio
import logging

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors
from k8sbridge.model import ids

__all__ = ["ConfigMapFrameworkIdStore", "FRAMEWORK_ID_KEY"]

log = logging.getLogger(__name__)

FRAMEWORK_ID_KEY = "frameworkId"


class ConfigMapFrameworkIdStore:
    def __init__(
        self,
        *,
        kube: kube_client.KubeClient,
        namespace: str,
        name: str,
        initial: ids.FrameworkId | None = None,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._current = initial
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, *, kube: kube_client.KubeClient, namespace: str, name: str
    ) -> ConfigMapFrameworkIdStore:
        """Read the stored id (None when the ConfigMap or the key does not exist yet)."""
        try:
            cm = await kube.get_config_map(namespace, name)
        except errors.NotFound:
            return cls(kube=kube, namespace=namespace, name=name)
        value = (cm.get("data") or {}).get(FRAMEWORK_ID_KEY)
        return cls(
            kube=kube,
            namespace=namespace,
            name=name,
            initial=ids.FrameworkId(value) if value else None,
        )

    def load(self) -> ids.FrameworkId | None:
        return self._current

    def save(self, framework_id: ids.FrameworkId) -> None:
        if framework_id == self._current and not self._writes:
            return
        self._current = framework_id
        task = asyncio.get_running_loop().create_task(self._write(framework_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, framework_id: ids.FrameworkId) -> None:
        delay = 0.2
        for _ in range(20):
            try:
                await self._kube.upsert_config_map(
                    namespace=self._namespace,
                    name=self._name,
                    data={FRAMEWORK_ID_KEY: framework_id},
                )
                log.info("framework id %s saved in %s/%s", framework_id, self._namespace,
                         self._name)
                return
            except errors.KubeError as e:
                log.warning("saving the framework id failed (retrying): %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.error("could not save the framework id %s", framework_id)

    async def flush(self) -> None:
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
