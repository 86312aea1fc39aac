"""Reading and writing the leader Lease (``coordination.k8s.io/v1``) through ``kube``.

Why a module of its own: the election's rules (``election``) see only ``LeaseRecord`` values;
this is the one place that knows the Lease's JSON and carries its ``resourceVersion`` from the
read to the write, so that a write based on a stale read fails with 409 Conflict (optimistic
concurrency, as client-go's ``resourcelock.LeaseLock``) instead of overwriting a new holder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors
from k8sbridge.leader import election

__all__ = ["FRAMEWORK_ANNOTATION", "LeaseLock", "ReadLease", "parse_record"]

# the holder's Mesos framework name (``election.LeaseRecord.framework``)
FRAMEWORK_ANNOTATION = "k8sbridge.io/framework-name"


@dataclasses.dataclass(frozen=True, slots=True)
class ReadLease:
    record: election.LeaseRecord | None  # None: no Lease
    resource_version: str | None
    raw: dict[str, Any] | None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_record(raw: dict[str, Any]) -> election.LeaseRecord:
    """The Lease's spec as a record; unreadable fields become None/0 (``election`` decides)."""
    spec = raw.get("spec") or {}
    if not isinstance(spec, dict):
        spec = {}
    duration = _int(spec.get("leaseDurationSeconds"))
    transitions = _int(spec.get("leaseTransitions"))
    holder = spec.get("holderIdentity")
    acquire, renew = spec.get("acquireTime"), spec.get("renewTime")
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    framework = annotations.get(FRAMEWORK_ANNOTATION) if isinstance(annotations, dict) else ""
    return election.LeaseRecord(
        holder=holder if isinstance(holder, str) else "",
        duration_seconds=duration if duration is not None and duration > 0 else None,
        acquire_time=acquire if isinstance(acquire, str) else None,
        renew_time=renew if isinstance(renew, str) else None,
        transitions=transitions if transitions is not None and transitions >= 0 else 0,
        framework=framework if isinstance(framework, str) else "",
    )


def _annotate(metadata: dict[str, Any], record: election.LeaseRecord) -> dict[str, Any]:
    if not record.framework:
        return metadata
    annotations = dict(metadata.get("annotations") or {})
    annotations[FRAMEWORK_ANNOTATION] = record.framework
    return {**metadata, "annotations": annotations}


def _spec(record: election.LeaseRecord) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": record.holder,
                            "leaseTransitions": record.transitions}
    if record.duration_seconds is not None:
        spec["leaseDurationSeconds"] = record.duration_seconds
    if record.acquire_time is not None:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time is not None:
        spec["renewTime"] = record.renew_time
    return spec


class LeaseLock:
    """One Lease ``namespace/name``; ``write`` raises ``errors.Conflict`` on a stale read."""

    def __init__(self, *, kube: kube_client.KubeClient, namespace: str, name: str) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name

    @property
    def path(self) -> str:
        return kube_client.lease_path(self.name, self.namespace)

    async def read(self) -> ReadLease:
        try:
            raw = await self._kube.request("GET", self.path, priority=kube_client.URGENT)
        except errors.NotFound:
            return ReadLease(record=None, resource_version=None, raw=None)
        version = (raw.get("metadata") or {}).get("resourceVersion")
        return ReadLease(record=parse_record(raw), resource_version=version, raw=raw)

    async def create(self, record: election.LeaseRecord) -> None:
        """Create the Lease holding ``record``; 409 (AlreadyExists) when another replica
        created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": _annotate({"name": self.name, "namespace": self.namespace}, record),
            "spec": _spec(record),
        }
        collection = self.path.rsplit("/", 1)[0]
        try:
            await self._kube.request("POST", collection, body=body, priority=kube_client.URGENT)
        except errors.NotFound:  # the namespace is missing
            await self._kube.ensure_namespace(self.namespace)
            await self._kube.request("POST", collection, body=body, priority=kube_client.URGENT)

    async def write(self, read: ReadLease, record: election.LeaseRecord) -> None:
        """Replace the spec of the Lease as read (its resourceVersion: 409 if it changed)."""
        assert read.raw is not None
        body = dict(read.raw)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = read.resource_version
        body["metadata"] = _annotate(metadata, record)
        body["spec"] = _spec(record)
        await self._kube.request("PUT", self.path, body=body, priority=kube_client.URGENT)
