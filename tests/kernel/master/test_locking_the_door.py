"""Mesos' HTTP authentication on the embedded master, over real HTTP.

A probe found the kernel's APIs open to anyone on the host: an anonymous operator TEARDOWN
killed every pod. With Mesos' flags on, each realm asks for HTTP Basic as libprocess' basic
authenticator does (401, ``WWW-Authenticate: Basic realm="..."``, no body), and a framework
cannot claim another principal than the one it authenticated as.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.master.authn import AuthConfigError, basic_principal
from k8sbridge.kernel.master.errors import MasterError
from k8sbridge.kernel.master.master import Master
from tests.conftest import free_port
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config

SECRET = "kitesurf-7f3a"
CREDS = {"bridge": SECRET, "ops": "ops-secret", "mallory": "mallory-secret"}


def write_credentials(path: Path, creds: dict[str, str], *, mode: int = 0o600) -> Path:
    path.write_text(json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in creds.items()]}))
    path.chmod(mode)
    return path


def locked_config(tmp_path: Path, **extra: object) -> Any:
    return master_config(
        credentials=str(write_credentials(tmp_path / "credentials.json", CREDS)),
        authenticate_http_frameworks=True, http_framework_authenticators="basic",
        authenticate_http_readonly=True, authenticate_http_readwrite=True, **extra)


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    async with main.running_kernel(master=locked_config(tmp_path),
                                   agents=[agent_config(tmp_path)]) as k:
        yield k


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, str], str]:
    async with session.get(url, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def _operator(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with session.post(f"{url}/api/v1", data=json.dumps(body),
                            headers={**wire.JSON, **(headers or {})}) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_each_realm_asks_for_basic_credentials(locked: main.Kernel,
                                                     session: aiohttp.ClientSession) -> None:
    url = locked.master_url
    for path in ("/state", "/master/state", "/frameworks", "/slaves", "/tasks", "/roles",
                 "/state-summary", "/metrics/snapshot"):
        status, headers, body = await _get(session, url + path)
        assert (status, body) == (401, ""), path
        assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-readonly"', path
    status, headers, _ = await _get(session, url + "/state", basic("ops", "wrong"))
    assert status == 401
    status, _, body = await _get(session, url + "/state", basic("ops", "ops-secret"))
    assert status == 200 and json.loads(body)["version"]
    # /health is not authenticated in Mesos; nor is /version.
    assert (await _get(session, url + "/health"))[0] == 200
    assert (await _get(session, url + "/version"))[0] == 200
    status, headers, body = await _operator(session, url, {"type": "GET_STATE"})
    assert (status, body) == (401, "")
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-readwrite"'
    status, _, body = await _operator(session, url, {"type": "GET_FLAGS"}, basic("ops",
                                                                                 "ops-secret"))
    assert status == 200
    flags = {f["name"]: f["value"] for f in json.loads(body)["get_flags"]["flags"]}
    assert flags["authenticate_http_readwrite"] == "true"
    assert flags["authenticate_http_frameworks"] == "true"
    assert SECRET not in body  # the path of the credentials, never their content


async def test_malformed_authorization_headers_are_refused(
        locked: main.Kernel, session: aiohttp.ClientSession) -> None:
    good = base64.b64encode(b"ops:ops-secret").decode()
    for header in ("Bearer " + good, "basic " + good, "Basic  " + good, "Basic !!!notb64",
                   "Basic " + base64.b64encode(b"ops").decode(),
                   "Basic " + base64.b64encode(b"ops:ops-secret:x").decode(),
                   "Basic " + base64.b64encode(b"nobody:ops-secret").decode(), "Basic", ""):
        status, _, _ = await _get(session, locked.master_url + "/state",
                                  {"Authorization": header})
        assert status == 401, header


def test_basic_principal_follows_libprocess() -> None:
    creds = {"a": "s", "b": ""}
    token = base64.b64encode(b"a:s").decode()
    assert basic_principal(f"Basic {token}", creds) == "a"
    assert basic_principal("Basic " + base64.b64encode(b"b:").decode(), creds) == "b"
    assert basic_principal(None, creds) is None
    assert basic_principal(f"Basic {token} extra", creds) is None
    # A secret containing ':' can never authenticate (libprocess splits on every ':').
    assert basic_principal("Basic " + base64.b64encode(b"c:x:y").decode(),
                           {"c": "x:y"}) is None


async def test_scheduler_api_needs_the_frameworks_principal(
        locked: main.Kernel, session: aiohttp.ClientSession) -> None:
    url = locked.master_url
    sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": wire.framework_info()}}
    for headers in ({}, basic("bridge", "not-the-secret")):
        async with session.post(f"{url}/api/v1/scheduler", data=json.dumps(sub),
                                headers={**wire.JSON, **headers}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="mesos-master-scheduler"'
    claimed = {"type": "SUBSCRIBE", "subscribe": {
        "framework_info": wire.framework_info(principal="ops")}}
    async with session.post(f"{url}/api/v1/scheduler", data=json.dumps(claimed),
                            headers={**wire.JSON, **basic("bridge", SECRET)}) as resp:
        assert resp.status == 400
        assert await resp.text() == (
            "Failed to validate scheduler::Call: Authenticated principal 'bridge' does not "
            "match principal 'ops' set in `FrameworkInfo`")
    async with aiohttp.ClientSession(headers=basic("bridge", SECRET)) as bridge:
        st = wire.Stream(bridge, url)
        await st.subscribe()  # no principal in FrameworkInfo: the authenticated one is set
        status, _, body = await _operator(session, url, {"type": "GET_FRAMEWORKS"},
                                          basic("ops", "ops-secret"))
        frameworks = json.loads(body)["get_frameworks"]["frameworks"]
        assert [f["framework_info"]["principal"] for f in frameworks] == ["bridge"]
        # Another principal cannot act for the framework, even with its stream id.
        code, text = await st.call({"type": "REVIVE"}, headers=basic("ops", "ops-secret"))
        assert (code, text) == (400, "Authenticated principal 'ops' does not match principal "
                                     "'bridge' set in `FrameworkInfo`")
        code, _ = await st.call({"type": "REVIVE"})
        assert code == 202
        await st.close()


async def test_anonymous_teardown_is_refused(locked: main.Kernel,
                                             session: aiohttp.ClientSession) -> None:
    url = locked.master_url
    async with aiohttp.ClientSession(headers=basic("bridge", SECRET)) as bridge:
        st = wire.Stream(bridge, url)
        await st.subscribe()
        teardown = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": st.framework_id}}}
        status, headers, body = await _operator(session, url, teardown)
        assert (status, body) == (401, "")
        assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-readwrite"'
        status, _, _ = await _operator(session, url, teardown, basic("ops", "wrong"))
        assert status == 401
        code, _ = await st.call({"type": "REVIVE"})  # still subscribed
        assert code == 202
        # No --acls: an authenticated operator may tear it down (Mesos: no authorizer).
        status, _, _ = await _operator(session, url, teardown, basic("ops", "ops-secret"))
        assert status == 200
        status, _, body = await _operator(session, url, {"type": "GET_FRAMEWORKS"},
                                          basic("ops", "ops-secret"))
        assert "frameworks" not in json.loads(body)["get_frameworks"]
        await st.close()


def test_credentials_files_are_read_as_mesos_reads_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loose = write_credentials(tmp_path / "loose.json", {"bridge": SECRET}, mode=0o644)
    with caplog.at_level(logging.WARNING):
        Master(config=master_config(credentials=f"file://{loose}",
                                    authenticate_http_readwrite=True))
    assert "are too open; it is recommended that your credentials file is NOT accessible " \
           "by others" in caplog.text
    assert SECRET not in caplog.text
    caplog.clear()
    private = write_credentials(tmp_path / "private.json", {"bridge": SECRET})
    with caplog.at_level(logging.WARNING):
        Master(config=master_config(credentials=str(private), authenticate_http_readwrite=True))
    assert "too open" not in caplog.text
    bad = tmp_path / "bad.json"
    bad.write_text('{"credentials": [{"principal": "bridge", "secret": "' + SECRET + '"')
    bad.chmod(0o600)
    with pytest.raises(AuthConfigError, match=r"^Invalid json format: .*\(see --credentials") \
            as raised:
        Master(config=master_config(credentials=str(bad)))
    assert SECRET not in str(raised.value)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(MasterError, match="must contain at least one credential"):
        Master(config=master_config(credentials=str(empty)))
    with pytest.raises(MasterError, match="Failed to read credentials file"):
        Master(config=master_config(credentials=str(tmp_path / "absent.json")))
    nameless = tmp_path / "nameless.json"
    nameless.write_text('{"credentials": [{"secret": "x"}]}')
    with pytest.raises(MasterError, match=r"Missing required fields: credentials\[0\]"):
        Master(config=master_config(credentials=str(nameless)))


def test_flags_mesos_refuses_to_start_with(tmp_path: Path) -> None:
    creds = str(write_credentials(tmp_path / "c.json", {"bridge": SECRET}))
    with pytest.raises(MasterError, match="No credentials provided for the default 'basic' "
                                          "HTTP authenticator for realm "
                                          "'mesos-master-readwrite'"):
        Master(config=master_config(authenticate_http_readwrite=True))
    with pytest.raises(MasterError, match="Missing `--http_framework_authenticators` flag"):
        Master(config=master_config(authenticate_http_frameworks=True, credentials=creds))
    with pytest.raises(MasterError, match="HTTP authenticator 'jwt' not found"):
        Master(config=master_config(authenticate_http_frameworks=True, credentials=creds,
                                    http_framework_authenticators="jwt"))
    with pytest.raises(MasterError, match="Failed to start master with authentication"):
        Master(config=master_config(authenticate_frameworks=True))
    assert os.stat(creds).st_mode & 0o777 == 0o600


async def test_the_kernel_command_takes_mesos_flags(tmp_path: Path) -> None:
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "kernel", "master", "--port", str(free_port()),
        "--authenticate_http_readwrite", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(refused.communicate(), timeout=60)
    assert refused.returncode == 1
    assert "No credentials provided for the default 'basic' HTTP authenticator for realm " \
           "'mesos-master-readwrite'" in err.decode()
    creds = write_credentials(tmp_path / "credentials.json", {"bridge": SECRET})
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel", "master",
        "--port", str(port), "--authenticate_http_frameworks=true",
        "--http_framework_authenticators=basic", "--authenticate_http_readonly",
        "--authenticate_http_readwrite", f"--credentials=file://{creds}",
        "--acls", json.dumps({"run_tasks": [{"principals": {"type": "ANY"},
                                             "users": {"values": ["nobody"]}}]}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert line.startswith(f"master: http://127.0.0.1:{port}".encode()), line
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            status, headers, _ = await _get(session, url + "/state")
            assert status == 401
            status, _, body = await _operator(session, url, {"type": "GET_FLAGS"},
                                              basic("bridge", SECRET))
            assert status == 200
            flags = {f["name"]: f["value"] for f in json.loads(body)["get_flags"]["flags"]}
            assert flags["authenticate_http_frameworks"] == "true"
            assert flags["authenticate_http_readonly"] == "true"
            assert flags["http_framework_authenticators"] == "basic"
            assert "nobody" in flags["acls"]
    finally:
        proc.send_signal(2)
        await asyncio.wait_for(proc.wait(), timeout=30)
