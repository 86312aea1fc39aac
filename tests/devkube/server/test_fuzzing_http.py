"""Malformed requests over real HTTP never get a 5xx: each gets a 4xx Status body as kube-apiserver
answers (400 for bodies and parameters that do not decode, 413 above 3 MiB, 415 for media types it
does not read), and devkube keeps serving afterwards."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"


def _nested(depth: int, *, opener: str, closer: str, leaf: str = "1") -> bytes:
    return (opener * depth + leaf + closer * depth).encode()


_DEEP = [
    _nested(5000, opener="[", closer="]"),
    _nested(100_000, opener="[", closer="]"),
    _nested(3000, opener='{"a":', closer="}"),
    _nested(800, opener='{"a":', closer="}"),
    b'{"metadata":{"name":"deep"},"spec":' + _nested(900, opener='{"a":', closer="}") + b"}",
    b'{"metadata":{"name":"deep","labels":' + _nested(400, opener="[", closer="]") + b"}}",
    ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 1200)) + "  " * 1200 + "c\n").encode(),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    b"a: &a [1,2]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    b"h: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
]
_ODD_DOCUMENTS = [
    b"NaN", b"[Infinity]", b'{"metadata":{"name":"n"},"spec":{"replicas":1e400}}',
    b'{"metadata":{"name":"big"},"spec":{"replicas":' + b"9" * 400 + b"}}",
    b'{"metadata":{"name":"t"},"data":{"when":2001-12-14}}',
    b"metadata:\n  name: when\ndata:\n  d: 2001-12-14\n  1: one\n  ? [a, b]\n  : c\n",
    b"metadata: {name: bin}\ndata: {b: !!binary aGk=}\n", b"!!set {a, b}\n", b"--- 1\n--- 2\n",
    b"\xff\xfe\x00{", b"\x00" * 10, b'{"a":"\\ud800"}', b"{}", b"[]", b"null", b'"x"', b"",
    b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"other"},'
    b'"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":{"a":1}}}}]}}',
]
_bodies = st.one_of(
    st.sampled_from(_DEEP + _ODD_DOCUMENTS),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                           st.text(max_size=8)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
)
_content_types = st.sampled_from([
    "application/json", "application/yaml", "text/plain", "", "application/octet-stream",
    "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf", "application/cbor", "application/json; charset=utf-16",
    "garbage///", "application/json; x", "*/*",
])
_segments = st.one_of(
    st.sampled_from(["default", "pods", "x", "", "..", ".", "%00", "%2F", "status", "log",
                     "scale", "binding", "eviction", "exec", "namespaces", "v1", "a" * 300]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)
_prefixes = st.sampled_from([
    ["api", "v1", "namespaces", "default", "pods"], ["api", "v1", "pods"], ["api", "v1"],
    ["apis", "apps", "v1", "namespaces", "default", "deployments"], ["apis", "apps", "v1"],
    ["apis"], ["api"], ["api", "v1", "nodes"], ["api", "v1", "namespaces"],
    ["apis", "coordination.k8s.io", "v1", "namespaces", "default", "leases"],
    ["openapi", "v3"], ["openapi"], [],
])
_query_values = st.one_of(
    st.sampled_from(["x", "-1", "abc", "", "1e9", "9" * 30, "true", "false", "0", "=", "!!",
                     "in (", "a=b", "a in (b", "All", "Strict", "NotOlderThan", "Exact",
                     "Foreground", "1", "-9223372036854775809", "0x10", "eyJ2Ijoi"]),
    st.text(max_size=10),
)
_queries = st.dictionaries(st.sampled_from([
    "watch", "resourceVersion", "resourceVersionMatch", "limit", "continue", "labelSelector",
    "fieldSelector", "timeoutSeconds", "fieldValidation", "dryRun", "gracePeriodSeconds",
    "propagationPolicy", "sendInitialEvents", "allowWatchBookmarks", "includeObject",
    "container", "tailLines", "force", "fieldManager", "pretty",
]), _query_values, max_size=4)


async def _send(api: Api, method: str, path: str, query: dict[str, str], body: bytes,
                content_type: str) -> tuple[int, bytes]:
    headers = {**api.headers}
    if content_type:
        headers["Content-Type"] = content_type
    url = api.devkube.url + path
    data: Any = (io.BytesIO(body) if len(body) > 65536 else body) or None
    async with api.session.request(
        method, url, params=query, data=data, headers=headers, ssl=api.ssl,
        skip_auto_headers=() if content_type else ("Content-Type",),
    ) as resp:
        try:
            data = await asyncio.wait_for(resp.read(), timeout=2)
        except TimeoutError:  # a watch that is streaming: its status is the answer
            data = b""
        return resp.status, data


def _assert_kube_answer(status: int, data: bytes, what: str) -> None:
    assert status < 500, f"{status} for {what}: {data[:300]!r}"
    if status >= 400 and data:
        doc = json.loads(data)
        assert doc["kind"] == "Status" and doc["status"] == "Failure", what
        assert doc["code"] == status, what
        assert "Traceback" not in doc["message"], what


async def _still_serving(api: Api) -> None:
    status, _ = await api.request("GET", "/readyz")
    assert status == 200
    name = "alive"
    await api.request("DELETE", f"{PODS}/{name}", params={"gracePeriodSeconds": "0"})
    status, created = await api.request("POST", PODS, body=pod(name))
    assert status == 201, created


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["POST", "PUT", "PATCH", "POST"]), body=_bodies,
       content_type=_content_types,
       path=st.sampled_from([PODS, f"{PODS}/alive", f"{PODS}/alive/status",
                             "/apis/apps/v1/namespaces/default/deployments",
                             "/api/v1/namespaces", "/api/v1/namespaces/default/configmaps",
                             f"{PODS}/alive/binding", f"{PODS}/alive/eviction",
                             "/apis/authentication.k8s.io/v1/tokenreviews"]))
async def test_garbage_bodies_get_4xx_status_answers(
        api: Api, method: str, body: bytes, content_type: str, path: str) -> None:
    await api.request("POST", PODS, body=pod("alive"))
    status, data = await _send(api, method, path, {}, body, content_type)
    _assert_kube_answer(status, data, f"{method} {path} {content_type} {body[:80]!r}")
    await _still_serving(api)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "GET", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"]),
       prefix=_prefixes, tail=st.lists(_segments, max_size=3), query=_queries)
async def test_odd_paths_and_query_parameters_get_4xx_status_answers(
        api: Api, method: str, prefix: list[str], tail: list[str], query: dict[str, str]) -> None:
    path = "/" + "/".join(prefix + tail)
    body = json.dumps(pod("q")).encode() if method in ("POST", "PUT") else b""
    status, data = await _send(api, method, path, query, body, "application/json")
    if path in ("/healthz", "/livez", "/readyz"):
        return
    _assert_kube_answer(status, data, f"{method} {path} {query}")
    status, _ = await api.request("GET", "/readyz")
    assert status == 200


async def test_bodies_above_3_mib_are_413_and_the_server_goes_on(api: Api) -> None:
    big = b'{"metadata":{"name":"big"},"data":{"a":"' + b"x" * (3 * 1024 * 1024) + b'"}}'
    status, data = await _send(api, "POST", "/api/v1/namespaces/default/configmaps", {}, big,
                               "application/json")
    assert status == 413
    assert json.loads(data)["reason"] == "RequestEntityTooLarge"
    # chunked, with no length announced: refused as it streams in
    async def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 65536

    async with api.session.post(
        api.devkube.url + "/api/v1/namespaces/default/configmaps", data=chunks(),
        headers={**api.headers, "Content-Type": "application/json"}, ssl=api.ssl,
    ) as resp:
        assert resp.status == 413
    await _still_serving(api)


async def test_deeply_nested_bodies_are_bad_requests(api: Api) -> None:
    for body in _DEEP[:6]:
        status, data = await _send(api, "POST", PODS, {}, body, "application/json")
        assert status == 400, data[:300]
        doc = json.loads(data)
        assert doc["reason"] == "BadRequest"
        assert "depth" in doc["message"]
    for body in _DEEP[6:8]:  # YAML nested by indentation and by flow brackets
        status, data = await _send(api, "POST", PODS, {}, body, "application/yaml")
        assert status == 400, data[:300]
        assert "depth" in json.loads(data)["message"]
    # a "billion laughs" document is refused quickly, not after expanding millions of values
    start = time.monotonic()
    status, data = await _send(api, "POST", PODS, {}, _DEEP[-1], "application/yaml")
    assert status == 400, data[:300]
    assert "expands to more than" in json.loads(data)["message"]
    assert time.monotonic() - start < 1.0
    await _still_serving(api)


async def test_parameters_that_do_not_parse_are_bad_requests(api: Api) -> None:
    for query in ({"watch": "x"}, {"limit": "abc"}, {"resourceVersion": "-1", "watch": "1"},
                  {"resourceVersion": "abc"}, {"timeoutSeconds": "soon", "watch": "true"}):
        status, data = await _send(api, "GET", PODS, query, b"", "")
        assert status == 400, (query, data[:300])
        assert json.loads(data)["reason"] == "BadRequest", query


async def test_unknown_media_types_are_415(api: Api) -> None:
    for content_type in ("text/plain", "application/octet-stream", "application/xml"):
        status, data = await _send(api, "POST", PODS, {}, json.dumps(pod("m")).encode(),
                                   content_type)
        assert status == 415, (content_type, data[:200])
        assert json.loads(data)["reason"] == "UnsupportedMediaType"
    # no Content-Type at all is read as JSON, as kube-apiserver does
    status, data = await _send(api, "POST", PODS, {}, json.dumps(pod("m")).encode(), "")
    assert status == 201, data[:200]


async def test_a_client_can_still_connect_after_a_reset_mid_body(api: Api) -> None:
    host, port = api.devkube.url.split("//")[1].split(":")
    for _ in range(3):
        if api.devkube.url.startswith("https"):
            reader, writer = await asyncio.open_connection(host, int(port), ssl=api.ssl)
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                     "Content-Type: application/json\r\n\r\n{\"a\":".encode())
        await writer.drain()
        writer.close()
    timeout = aiohttp.ClientTimeout(total=10)
    async with api.session.get(api.devkube.url + "/readyz", ssl=api.ssl,
                               timeout=timeout) as resp:
        assert resp.status == 200
