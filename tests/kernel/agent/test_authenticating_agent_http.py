"""The agent API's HTTP authentication, as Mesos' agent has it: ``authenticate_http_readonly``
and ``authenticate_http_readwrite`` (off by default) with ``http_credentials`` in Mesos'
credentials format; HTTP Basic checked as libprocess' basic authenticator does, a 401 with
``WWW-Authenticate: Basic realm="mesos-agent-readonly"`` / ``"mesos-agent-readwrite"``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from k8sbridge.kernel.agent import httpauth
from k8sbridge.kernel.agent.errors import AgentError
from tests.kernel.agent import fakemaster as fm

_HEALTH = json.dumps({"type": "GET_HEALTH"})
_JSON = {"Content-Type": "application/json"}


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(json.dumps({"credentials": [{"principal": "ops", "secret": "s3cret"},
                                                {"principal": "other", "secret": "x"}]}))
    path.chmod(0o600)
    return path


async def _status(session: aiohttp.ClientSession, method: str, url: str,
                  headers: dict[str, str] | None = None, data: str | None = None
                  ) -> tuple[int, str | None, bytes]:
    async with session.request(method, url, headers=headers, data=data) as response:
        return (response.status, response.headers.get("WWW-Authenticate"),
                await response.read())


async def test_both_realms_turned_on(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path / "work", authenticate_http_readonly=True,
                                authenticate_http_readwrite=True,
                                http_credentials=_credentials(tmp_path)) as run:
        base = f"http://{run.agent.http_address}"
        readonly = 'Basic realm="mesos-agent-readonly"'
        readwrite = 'Basic realm="mesos-agent-readwrite"'
        async with aiohttp.ClientSession() as s:
            for path in ("/state", "/flags", "/containers", "/monitor/statistics",
                         "/files/browse?path=/", "/slave(1)/state"):
                assert await _status(s, "GET", base + path) == (401, readonly, b""), path
            api = base + "/api/v1"
            assert await _status(s, "POST", api, _JSON, _HEALTH) == (401, readwrite, b"")
            wrong = [_basic("ops", "nope"), _basic("nobody", "s3cret"), _basic("ops", ""),
                     {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic !!!"},
                     {"Authorization": "basic " + _basic("ops", "s3cret")["Authorization"][6:]},
                     _basic("ops", "s3cret:extra")]
            for headers in wrong:
                assert (await _status(s, "GET", base + "/state", headers))[0] == 401, headers
                assert (await _status(s, "POST", api, {**_JSON, **headers}, _HEALTH))[0] == 401
            good = _basic("ops", "s3cret")
            status, _, body = await _status(s, "GET", base + "/state", good)
            assert status == 200 and json.loads(body)["id"] == run.agent.agent_id
            status, _, body = await _status(s, "POST", api, {**_JSON, **good}, _HEALTH)
            assert status == 200 and json.loads(body)["get_health"]["healthy"] is True
            status, _, body = await _status(s, "GET", base + "/flags", _basic("other", "x"))
            flags = json.loads(body)["flags"]
            assert flags["authenticate_http_readonly"] == "true"
            assert flags["http_credentials"] == str(tmp_path / "credentials")
            for path in ("/health", "/version"):  # never authenticated in Mesos
                assert (await _status(s, "GET", base + path))[0] == 200, path


async def test_each_realm_on_its_own_and_off_by_default(tmp_path: Path) -> None:
    credentials = _credentials(tmp_path)
    async with fm.running_agent(tmp_path / "rw", authenticate_http_readwrite=True,
                                http_credentials=credentials) as run:
        base = f"http://{run.agent.http_address}"
        async with aiohttp.ClientSession() as s:
            assert (await _status(s, "GET", base + "/state"))[0] == 200
            assert (await _status(s, "POST", base + "/api/v1", _JSON, _HEALTH))[0] == 401
    async with fm.running_agent(tmp_path / "off", http_credentials=credentials) as run:
        base = f"http://{run.agent.http_address}"
        async with aiohttp.ClientSession() as s:
            assert (await _status(s, "GET", base + "/state"))[0] == 200
            assert (await _status(s, "POST", base + "/api/v1", _JSON, _HEALTH))[0] == 200


async def test_unusable_credentials_stop_the_agent(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="No credentials provided for the default 'basic'"):
        async with fm.running_agent(tmp_path / "a", authenticate_http_readonly=True):
            pass
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"credentials": [{"secret": "x"}]}))
    with pytest.raises(AgentError, match=r"Missing required fields: credentials\[0\]\.principal"):
        async with fm.running_agent(tmp_path / "b", authenticate_http_readwrite=True,
                                    http_credentials=bad):
            pass
    assert httpauth.realm_of("/files/read") == httpauth.READONLY_REALM
    assert httpauth.realm_of("/api/v1") == httpauth.READWRITE_REALM
    assert httpauth.realm_of("/health") is None


def test_credentials_are_read_as_mesos_reads_them(tmp_path: Path) -> None:
    """The master's reader (Mesos has one ``credentials::read``): JSON only, errors name the
    agent's flag, and the secret never appears in them."""
    path = tmp_path / "credentials"
    path.write_text("ops s3cret\n")  # the pre-JSON text form: Mesos refuses it
    with pytest.raises(AgentError) as refused:
        httpauth.install(web.Application(), readonly=True, readwrite=False,
                         credentials_path=path)
    assert "Invalid json format" in str(refused.value)
    assert "--http_credentials" in str(refused.value)
    assert "s3cret" not in str(refused.value)
