"""The ServiceAccounts controller and the root-CA publisher of kube-controller-manager.

Why: every pod's admitted ``kube-api-access`` volume reads the ``default`` ServiceAccount's
token and the ``kube-root-ca.crt`` ConfigMap of its namespace, so both must exist in every
active namespace and come back when deleted. Like ``pkg/controller/serviceaccount`` and
``pkg/controller/certificates/rootcacertpublisher``, both are keyed by namespace: a new or
updated active namespace, a deleted ``default`` ServiceAccount or a deleted or changed
``kube-root-ca.crt`` queue the namespace, whose sync creates what is missing (and rewrites the
ConfigMap's ``ca.crt`` and description when they differ). A namespace that is gone or being
terminated is left alone.
"""

from __future__ import annotations

import asyncio

from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject
from k8sbridge.devkube.controllers.workqueue import WorkQueue

DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def _name(obj: RawObject) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _namespace_of(obj: RawObject) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _active(namespace: RawObject | None) -> bool:
    return namespace is not None and (namespace.get("status") or {}).get("phase") == "Active"


def _terminating(e: errors.ControllerError) -> bool:
    """The create failed because the namespace is gone or being terminated: nothing to do."""
    return isinstance(e, errors.NotFound) or "being terminated" in str(e)


class ServiceAccountsController:
    """Keeps a ``default`` ServiceAccount in every active namespace."""

    def __init__(self, *, client: api.ApiClient, namespaces: Informer,
                 service_accounts: Informer) -> None:
        self.client = client
        self.namespaces = namespaces
        self.service_accounts = service_accounts
        self.queue = WorkQueue(name="serviceaccount")
        namespaces.add_handler(self._on_namespace)
        service_accounts.add_handler(self._on_service_account)

    def _on_namespace(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None and (old is None or _active(new)):
            self.queue.add(ObjectKey(_name(new)))

    def _on_service_account(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is None and old is not None and _name(old) == DEFAULT_SERVICE_ACCOUNT:
            self.queue.add(ObjectKey(_namespace_of(old)))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.namespaces, self.service_accounts])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        namespace = str(key)
        if not _active(self.namespaces.get(key)):
            return None
        if self.service_accounts.get(
                ObjectKey(f"{namespace}/{DEFAULT_SERVICE_ACCOUNT}")) is not None:
            return None
        try:
            created = await self.client.create(api.SERVICEACCOUNTS, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}, namespace=namespace)
        except errors.AlreadyExists:
            return None
        except errors.ControllerError as e:
            if _terminating(e):
                return None
            raise
        self.service_accounts.upsert(created)
        return None


class RootCAPublisher:
    """Keeps ``kube-root-ca.crt`` (key ``ca.crt``: ``root_ca``) in every active namespace."""

    def __init__(self, *, client: api.ApiClient, namespaces: Informer, config_maps: Informer,
                 root_ca: str) -> None:
        self.client = client
        self.namespaces = namespaces
        self.config_maps = config_maps
        self.root_ca = root_ca
        self.queue = WorkQueue(name="root-ca-cert-publisher")
        namespaces.add_handler(self._on_namespace)
        config_maps.add_handler(self._on_config_map)

    def _on_namespace(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None and (old is None or _active(new)):
            self.queue.add(ObjectKey(_name(new)))

    def _on_config_map(self, old: RawObject | None, new: RawObject | None) -> None:
        if old is not None and _name(old) == ROOT_CA_CONFIG_MAP:  # updated or deleted
            self.queue.add(ObjectKey(_namespace_of(old)))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.namespaces, self.config_maps])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        namespace = str(key)
        if self.namespaces.get(key) is None:
            return None
        data = {"ca.crt": self.root_ca}
        current = self.config_maps.get(ObjectKey(f"{namespace}/{ROOT_CA_CONFIG_MAP}"))
        if current is None:
            try:
                created = await self.client.create(api.CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP,
                                 "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data}, namespace=namespace)
            except errors.ControllerError as e:
                if _terminating(e):
                    return None
                raise
            self.config_maps.upsert(created)
            return None

        def mutate(cm: RawObject) -> bool:
            annotations = (cm.get("metadata") or {}).get("annotations") or {}
            if cm.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
                return False
            cm["data"] = dict(data)
            cm.setdefault("metadata", {})["annotations"] = {
                **annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
            return True

        try:
            await base.update(client=self.client, resource=api.CONFIGMAPS,
                              informer=self.config_maps, current=current, mutate=mutate)
        except errors.NotFound:
            self.queue.add(key)  # deleted meanwhile: create it again
        return None
