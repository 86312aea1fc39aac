"""Reading requests and writing answers the way kube-apiserver does, for every handler of devkube.

Why: what a malformed request gets is decided here, once: a body above 3 MiB is a 413, a media
type the apiserver does not read is a 415, a body that does not decode (bad JSON or YAML, nesting
deeper than any object, aliases that expand without end, NaN, numbers beyond int64) and a query
parameter that does not parse are 400s, each as a Status body. Handlers get plain JSON trees and
typed parameters and never see bytes they would have to distrust.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from k8sbridge.devkube import errors, jsontree, protobuf, registry, watch

Obj = dict[str, Any]

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # the apiserver's request body limit
BOOKMARK_INTERVAL = 60.0
DEFAULT_WATCH_TIMEOUT = 1800.0
LARGE_BODY = 256 * 1024  # responses above this are written in slices of this size
WATCH_BATCH = 256  # lines per socket write while replaying initial events
REQUEST_TIMEOUT = 60.0  # kube-apiserver's --request-timeout: here, for reading a request body
BODY_TIMEOUT = web.AppKey("devkube.body_timeout", float)  # the app's own, if it sets one
PATCH_TYPES = frozenset({
    "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml",
})
BODY_TYPES = frozenset({"application/json", "application/yaml", protobuf.CONTENT_TYPE})
_MIN_INT64, _MAX_INT64 = -(1 << 63), (1 << 63) - 1
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True, slots=True)
class Context:
    """What the list, watch and log handlers need of the server."""

    reg: registry.Registry
    durable: Callable[[], Awaitable[bool]]  # wait for staged changes; False if they failed
    unavailable: Callable[[], errors.ApiError]  # the 503 to give when ``durable`` failed
    stop: asyncio.Event
    bookmark_interval: float
    kubelet_ssl: ssl.SSLContext


# --- answers -------------------------------------------------------------------------------

def json_response(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=watch.encode_json(body), status=status,
                        content_type="application/json")


def raw_json(data: bytes, *, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/json")


def error_response(e: errors.ApiError) -> web.Response:
    return web.Response(body=e.body(), status=e.code, content_type="application/json")


def with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    """Warning headers; a text with control characters (an unknown field named "\x1f") is
    dropped, as apimachinery's NewWarningHeader refuses it (it cannot go into a header)."""
    for text in warnings:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            continue
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


# --- query parameters ----------------------------------------------------------------------

def bool_param(query: Any, name: str) -> bool:
    """A boolean parameter as Go's strconv.ParseBool reads it; absent or empty is false."""
    value = query.get(name)
    if value in (None, ""):
        return False
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise errors.bad_request(f'{name}: strconv.ParseBool: parsing "{value}": invalid syntax')


def int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value, 10)
    except ValueError:
        number = None
    digits = value[1:] if value[:1] in "+-" else value
    if number is None or not (digits.isascii() and digits.isdigit()):
        raise errors.bad_request(f'{name}: strconv.ParseInt: parsing "{value}": invalid syntax')
    if not _MIN_INT64 <= number <= _MAX_INT64:
        raise errors.bad_request(
            f'{name}: strconv.ParseInt: parsing "{value}": value out of range')
    return number


def resource_version_param(query: Any) -> int | None:
    """``resourceVersion`` as an unsigned integer; "" and "0" (any version) are None."""
    value = query.get("resourceVersion", "")
    if value in ("", "0"):
        return None
    if not value.isdigit() or not value.isascii() or int(value) > _MAX_INT64:
        raise errors.bad_request(f'invalid resource version "{value}"')
    return int(value)


def encode_continue(*, rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"v": "devkube/v1", "rv": rv, "start": [namespace, name]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"]
        return str(start[0]), str(start[1])
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from e


# --- bodies --------------------------------------------------------------------------------

def _constant(text: str) -> Any:
    raise ValueError(f"invalid character '{text[0]}' looking for beginning of value")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    value = int(text)
    if not _MIN_INT64 <= value <= _MAX_INT64:
        raise ValueError(f"number {text[:40]} is out of the int64 range")
    return value


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: ``2001-12-14`` stays a string, as it does
    when kube-apiserver converts YAML to JSON."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def media_type(request: web.Request) -> str:
    """The request's media type; none at all is read as JSON, as kube-apiserver does."""
    if not request.headers.get("Content-Type", "").strip():
        return "application/json"
    return request.content_type


def decode(raw: bytes, content_type: str, *, what: str = "object") -> Any:
    """The JSON tree of a request body of ``content_type`` (already known to be accepted)."""
    if not raw:
        raise errors.bad_request("the request body is empty")
    if content_type == protobuf.CONTENT_TYPE:
        try:
            return jsontree.plain(protobuf.decode(raw))
        except protobuf.ProtobufError as e:
            raise errors.bad_request(f"error decoding protobuf body: {e}") from e
        except (jsontree.TreeError, RecursionError) as e:
            raise errors.bad_request(f"error decoding protobuf body: {e}") from e
    try:
        if "yaml" in content_type:
            # aliases may repeat a value, not multiply the document: a few values per byte
            # (plain YAML has fewer) bounds the work a small "billion laughs" body can cause
            budget = min(jsontree.MAX_NODES, 10_000 + 8 * len(raw))
            tree = yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader)
            return jsontree.plain(tree, max_nodes=budget)
        parsed = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
        # each level opens with a bracket: a body with few of them needs no walk
        if raw.count(b"{") + raw.count(b"[") > jsontree.MAX_DEPTH \
                and jsontree.depth_exceeds(parsed):
            raise jsontree.TreeError(f"exceeded max depth of {jsontree.MAX_DEPTH}")
        return parsed
    except RecursionError:
        raise errors.bad_request(
            f"error decoding {what} body: exceeded max depth of {jsontree.MAX_DEPTH}") from None
    except (ValueError, yaml.YAMLError) as e:  # TreeError and UnicodeDecodeError are ValueErrors
        raise errors.bad_request(f"error decoding {what} body: {e}") from e


async def _read(request: web.Request) -> bytes:
    """The whole body, within the body timeout (a client that stalls mid-body gets kube's 504
    Timeout instead of holding the connection and its handler forever); 413 above 3 MiB."""
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT, REQUEST_TIMEOUT)):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise errors.too_large(f"the request is too large: {e.text}") from None
    except TimeoutError:
        raise errors.ApiError(
            code=504, reason="Timeout",
            message="Timeout: request did not complete within the allotted timeout") from None


async def read_body(request: web.Request, *, patch: bool = False) -> Any:
    """Read and decode a request body: 413 above 3 MiB, 415 for a media type that is not read
    (a patch must use one of the patch types), 400 if it does not decode."""
    content_type = media_type(request)
    accepted = PATCH_TYPES if patch else BODY_TYPES
    if content_type not in accepted:
        raise errors.unsupported_media_type(content_type)
    raw = await _read(request)
    if len(raw) > MAX_REQUEST_BYTES:
        raise errors.too_large("the request body is too large")
    return decode(raw, content_type, what="patch" if patch else "object")


async def delete_options(request: web.Request) -> Obj:
    """DeleteOptions from the body (optional) and the query."""
    options: Obj = {}
    raw = await _read(request)
    if raw.strip():
        parsed = decode(raw, "application/json", what="DeleteOptions")
        if not isinstance(parsed, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        options.update(parsed)
    grace = int_param(request.query, "gracePeriodSeconds")
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if request.query.get("propagationPolicy"):
        options["propagationPolicy"] = request.query["propagationPolicy"]
    return options
