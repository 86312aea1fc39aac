"""Kubernetes protobuf request bodies decode to the JSON the same client would have sent."""

from __future__ import annotations

import pytest

from k8sbridge.devkube import protobuf
from tests.devkube.server.conftest import Api


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _configmap(name: str) -> bytes:
    meta = _field(1, name.encode()) + _field(11, _field(1, b"app") + _field(2, b"web"))
    creation = _field(8, b"")  # zero metav1.Time -> dropped
    body = _field(1, meta + creation) + _field(2, _field(1, b"k") + _field(2, b"v"))
    type_meta = _field(1, b"v1") + _field(2, b"ConfigMap")
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, body)


def test_decode_a_configmap() -> None:
    assert protobuf.decode(_configmap("cm")) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"app": "web"}}, "data": {"k": "v"},
    }


def test_zero_values_follow_go_pointers() -> None:
    spec = _field(1, 0) + _field(5, 0)  # replicas (*int32) = 0, minReadySeconds (int32) = 0
    assert protobuf.decode_message("apps.v1.DeploymentSpec", spec) == {"replicas": 0}
    intstr = _field(1, 1) + _field(3, b"25%")
    assert protobuf.decode_message("apps.v1.RollingUpdateDeployment", _field(2, intstr)) == {
        "maxSurge": "25%"}


def test_malformed_bodies() -> None:
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b"not k8s")
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(protobuf.MAGIC + b"\x0a\xff")  # truncated
    unknown = protobuf.MAGIC + _field(1, _field(1, b"v1") + _field(2, b"Widget"))
    with pytest.raises(protobuf.ProtobufError, match="Widget"):
        protobuf.decode(unknown)
    with pytest.raises(protobuf.ProtobufError, match="unknown field"):
        protobuf.decode_message("core.v1.ConfigMap", _field(99, b"x"))


async def test_server_accepts_protobuf_and_rejects_garbage(api: Api) -> None:
    cms = "/api/v1/namespaces/default/configmaps"
    status, created = await api.request("POST", cms, body=_configmap("pb"),
                                        content_type=protobuf.CONTENT_TYPE)
    assert status == 201 and created["data"] == {"k": "v"}
    status, body = await api.request("POST", cms, body=protobuf.MAGIC + b"\x0a\xff",
                                     content_type=protobuf.CONTENT_TYPE)
    assert status == 400 and "protobuf" in body["message"]


def _envelope(api_version: bytes, kind: bytes, body: bytes) -> bytes:
    return protobuf.MAGIC + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, body)


def test_inline_members_and_renamed_fields_decode_as_json() -> None:
    """An embedded struct (Volume's VolumeSource, Probe's ProbeHandler) is inline in JSON, and
    BoundObjectReference's proto field ``uID`` is JSON's ``uid``."""
    volume = _field(1, b"cache") + _field(2, _field(2, b""))  # volumeSource.emptyDir = {}
    exec_handler = _field(1, _field(1, b"true"))  # handler.exec.command = ["true"]
    container = (_field(1, b"app") + _field(2, b"busybox")
                 + _field(10, _field(1, exec_handler) + _field(4, 5)))  # livenessProbe
    pod = _field(2, _field(1, volume) + _field(2, container))
    assert protobuf.decode(_envelope(b"v1", b"Pod", pod)) == {
        "apiVersion": "v1", "kind": "Pod",
        "spec": {"volumes": [{"name": "cache", "emptyDir": {}}],
                 "containers": [{"name": "app", "image": "busybox", "livenessProbe": {
                     "exec": {"command": ["true"]}, "periodSeconds": 5}}]},
    }
    ref = _field(1, b"Pod") + _field(2, b"v1") + _field(3, b"web") + _field(4, b"u-1")
    request = _field(2, _field(1, b"vault") + _field(3, ref) + _field(4, 1200))
    assert protobuf.decode(_envelope(b"authentication.k8s.io/v1", b"TokenRequest", request)) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["vault"], "expirationSeconds": 1200, "boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}},
    }
