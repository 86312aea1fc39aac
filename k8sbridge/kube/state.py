"""The bridge's durable state in the Kubernetes API: the Mesos framework id and the bridge's
generation in a ConfigMap.

Why in Kubernetes: the bridge may run as a Deployment with no volume; the only store it always
has is the API server. Losing the framework id would register a *new* framework and orphan every
running task, so the id is saved on every SUBSCRIBED and read back on start.

The generation counts the bridge's starts: ``bump_generation`` increments it with optimistic
concurrency (a PUT carrying the resourceVersion it read; a conflict reads again), and the app
awaits it before the offer loop exists, so it is durable before any ACCEPT. It is part of every
task id (``lifecycle.taskids``): two runs never launch under the same id, even when two
bridges start at once.

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

__all__ = [
    "FRAMEWORK_ID_KEY",
    "GENERATION_KEY",
    "ConfigMapFrameworkIdStore",
    "GenerationError",
    "bump_generation",
]

log = logging.getLogger(__name__)

FRAMEWORK_ID_KEY = "frameworkId"
GENERATION_KEY = "generation"

BUMP_ATTEMPTS = 20  # conflicts in a row before giving up (another writer keeps winning)


class GenerationError(errors.KubeError):
    """The stored generation cannot be read as a number: refuse to guess one (a guess could
    reuse the task ids of an earlier run)."""


async def bump_generation(*, kube: kube_client.KubeClient, namespace: str, name: str) -> int:
    """Increment the generation stored in ConfigMap ``namespace/name`` (created with 1 when
    missing) and return the new value, once it is stored. Transport errors propagate (the
    caller retries); a concurrent writer makes this read and try again."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
    for _ in range(BUMP_ATTEMPTS):
        try:
            cm = await kube.get_config_map(namespace, name)
        except errors.NotFound:
            body = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": {GENERATION_KEY: "1"},
            }
            try:
                try:
                    await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", body)
                except errors.NotFound:  # the namespace itself is missing
                    await kube.ensure_namespace(namespace)
                    await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", body)
            except errors.Conflict:
                continue  # created meanwhile by someone else: read it
            return 1
        data = dict(cm.get("data") or {})
        raw = str(data.get(GENERATION_KEY) or "0")
        if not raw.isdigit():
            raise GenerationError(
                f"ConfigMap {namespace}/{name} holds a {GENERATION_KEY} that is not a "
                f"number: {raw!r}"
            )
        new = int(raw) + 1
        data[GENERATION_KEY] = str(new)
        try:
            await kube.replace(path, {**cm, "data": data})  # carries its resourceVersion
        except errors.Conflict:
            continue
        log.info("bridge generation %d saved in %s/%s", new, namespace, name)
        return new
    raise errors.Conflict(f"could not increment the generation in {namespace}/{name}: "
                          f"{BUMP_ATTEMPTS} conflicts in a row", status=409)


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
