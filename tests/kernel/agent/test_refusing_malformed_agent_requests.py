"""Malformed requests to the agent's HTTP API get Mesos' 4xx answer with a message, never a 5xx
or an unhandled exception, and the agent keeps serving: named cases from the audit that found
500s (deep nesting, a ``type`` that is an object or empty, huge numbers, garbage bytes, wrong
content types) and a bounded fuzz over real HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from k8sbridge.kernel.agent.calls import KNOWN_TYPES
from tests.kernel.agent import fakemaster as fm

_SERVED = {"GET_HEALTH", "GET_VERSION", "GET_STATE", "GET_CONTAINERS", "GET_FRAMEWORKS",
           "GET_EXECUTORS", "GET_TASKS", "GET_FLAGS", "GET_AGENT", "LIST_FILES", "READ_FILE"}


async def _post(session: aiohttp.ClientSession, base: str, body: bytes,
                content_type: str | None = "application/json") -> tuple[int, str]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    skip = () if content_type is not None else ("Content-Type",)
    async with session.post(f"{base}/api/v1", data=body, headers=headers,
                            skip_auto_headers=skip) as r:
        return r.status, await r.text()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as r:
        return r.status, await r.text()


def _ok_status(status: int, body: bytes) -> bool:
    """A 2xx/4xx, or 501 only for a call type Mesos knows and this agent does not serve."""
    if status < 500:
        return True
    if status != 501:
        return False
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError, RecursionError):
        return False
    return kind in KNOWN_TYPES and kind not in _SERVED


async def test_the_audited_malformed_calls_get_400_with_a_message(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run, aiohttp.ClientSession() as s:
        base = f"http://{run.agent.http_address}"
        deep = b"[" * 5000 + b"]" * 5000
        cases: list[tuple[bytes, str]] = [
            (deep, "Failed to parse body into JSON"),
            (b'{"type": ' + b"{" * 250 + b"}" * 250 + b"}", "Failed to parse body into JSON"),
            (b'{"type": {"a": 1}}', "Not expecting a JSON object for field 'type'"),
            (b'{"type": ""}', "Expecting 'type' to be present"),
            (b'{"type": "NO_SUCH_CALL"}', "Expecting 'type' to be present"),
            (b"\xff\xfe\x00garbage", "Failed to parse body into JSON"),
            (b"[1, 2]", "expecting a JSON object"),
            (b'{"type": "READ_FILE", "read_file": {"path": "/x", "offset": 1e60}}',
             "'read_file.offset' is not an unsigned 64-bit integer"),
            (b'{"type": "READ_FILE", "read_file": {"path": "/x", "offset": 9223372036854775808,'
             b' "length": -1}}', "'read_file.length' is not an unsigned 64-bit integer"),
            (b'{"type": "READ_FILE", "read_file": {"path": {"v": 1}, "offset": 0}}',
             "Not expecting a JSON object for field 'path'"),
            (b'{"type": "READ_FILE", "read_file": []}',
             "Not expecting a JSON array for field 'read_file'"),
            (b'{"type": "LIST_FILES", "list_files": {}}', "Expecting 'list_files.path'"),
            (b'{"type": "GET_CONTAINERS", "get_containers": {"show_nested": "yes"}}',
             "Not expecting a JSON string for field 'show_nested'"),
        ]
        for body, words in cases:
            status, text = await _post(s, base, body)
            assert (status, words in text) == (400, True), (body[:80], status, text)
        assert (await _post(s, base, b'{"type": "UNKNOWN"}'))[0] == 501
        assert (await _post(s, base, b'{"type": "GET_HEALTH"}', None))[0] == 400
        assert (await _post(s, base, b'{"type": "GET_HEALTH"}', "text/plain"))[0] == 415
        status, text = await _get(s, f"{base}/files/read?path=/a%00b&offset=0")
        assert status in (400, 404), text
        status, text = await _get(s, f"{base}/files/read?path=/x&offset={10**60}")
        assert status == 400 and "Failed to parse offset" in text
        assert (await _post(s, base, b'{"type": "GET_HEALTH"}'))[0] == 200


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)
_types = st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=12) | _json


@st.composite
def _call(draw: st.DrawFn) -> bytes:
    kind = draw(_types)
    call: dict[str, Any] = {"type": kind}
    if isinstance(kind, str) and draw(st.booleans()):
        sub = draw(st.dictionaries(
            st.sampled_from(["path", "offset", "length", "show_nested", "show_standalone"]),
            _json, max_size=3) | _json)
        call[kind.lower()] = sub
    return json.dumps(call).encode()


_bodies = _call() | st.binary(max_size=64) | _json.map(lambda v: json.dumps(v).encode())
_content_types = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                  "application/x-protobuf", "text/plain", "", "*/*"])
_queries = st.dictionaries(st.sampled_from(["path", "offset", "length", "jsonp"]),
                           st.text(max_size=30) | st.integers().map(str), max_size=3)


async def test_fuzzed_requests_never_get_a_server_error(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run, aiohttp.ClientSession() as s:
        base = f"http://{run.agent.http_address}"
        await run.master.send(fm.run_task(fm.command_task("t", "echo hi")))
        await run.master.wait_state("t", "TASK_FINISHED")
        seen: list[tuple[int, bytes | str]] = []

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=_bodies, content_type=_content_types)
        def post(body: bytes, content_type: str) -> None:
            status, _ = run_sync(_post(s, base, body, content_type or None))
            seen.append((status, body))
            assert status < 500 or _ok_status(status, body), (status, body[:200])

        @settings(max_examples=100, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(endpoint=st.sampled_from(["/files/read", "/files/browse", "/files/download",
                                         "/state", "/containers", "/flags", "/version"]),
               query=_queries)
        def get(endpoint: str, query: dict[str, str]) -> None:
            status, _ = run_sync(_get(s, str(URL(base + endpoint).with_query(query))))
            seen.append((status, endpoint))
            assert status < 500, (endpoint, query, status)

        loop = asyncio.get_running_loop()

        def run_sync(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            await loop.run_in_executor(pool, post)
            await loop.run_in_executor(pool, get)
        assert len(seen) >= 200
        # It still serves, and serves correctly.
        status, text = await _post(s, base, b'{"type": "GET_TASKS"}')
        assert status == 200 and '"t"' in text
