"""Protobuf bodies of the other workload kinds (StatefulSet, ReplicationController) decode to
the JSON client-go would have sent, pointer zeros kept (``replicas: 0``, ``partition: 0``)."""

from __future__ import annotations

from k8sbridge.devkube import protobuf

from .test_decoding_protobuf import _field


def _envelope(api_version: bytes, kind: bytes, body: bytes) -> bytes:
    return protobuf.MAGIC + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, body)


def test_a_statefulset_decodes_with_its_pointer_zeros() -> None:
    rolling = _field(1, b"RollingUpdate") + _field(2, _field(1, 0))
    spec = (_field(1, 0) + _field(5, b"web") + _field(6, b"Parallel") + _field(7, rolling)
            + _field(11, _field(1, 0)))
    body = _field(1, _field(1, b"web")) + _field(2, spec)
    assert protobuf.decode(_envelope(b"apps/v1", b"StatefulSet", body)) == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "serviceName": "web", "podManagementPolicy": "Parallel",
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"partition": 0}},
                 "ordinals": {"start": 0}},
    }


def test_a_replication_controller_decodes_its_equality_selector() -> None:
    selector = _field(2, _field(1, b"app") + _field(2, b"legacy"))
    body = _field(1, _field(1, b"legacy")) + _field(2, _field(1, 3) + selector)
    assert protobuf.decode(_envelope(b"v1", b"ReplicationController", body)) == {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
        "spec": {"replicas": 3, "selector": {"app": "legacy"}},
    }
