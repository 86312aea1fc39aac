"""pods/log is proxied (streaming) over TLS to the node's kubelet endpoint; pods/exec is refused
clearly. The fake kubelet has a self-signed certificate that devkube does not verify, like a
kube-apiserver started without --kubelet-certificate-authority."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from k8sbridge.devkube import certs
from tests.conftest import free_port
from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def logs(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, "query": dict(request.query)})
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        await response.write(b"line 1\n")
        try:
            if request.query.get("follow") == "true":
                for i in range(2, 4):
                    await asyncio.sleep(0.3)
                    await response.write(f"line {i}\n".encode())
            await response.write_eof()
        except ConnectionResetError:
            seen.append({"hung_up": request.path})  # devkube closed: its reader went away
        return response

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{ctr}", logs)
    creds = certs.ensure(directory=tmp_path / "kubelet-pki", hosts=["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(creds.cert_file, creds.key_file)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def _node_and_pod(api: Api, port: int) -> None:
    status, _ = await api.request("POST", "/api/v1/nodes", body={
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
    assert status == 201
    await api.request("POST", PODS, body=pod("p"))
    await api.request("POST", f"{PODS}/p/binding", body={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}})


async def test_logs_are_streamed_from_the_kubelet(
    api: Api, kubelet: tuple[int, list[dict[str, Any]]]
) -> None:
    port, seen = kubelet
    await _node_and_pod(api, port)
    status, text = await api.request("GET", f"{PODS}/p/log", params={"tailLines": "10"})
    assert status == 200 and text == "line 1\n"
    assert seen[-1] == {"path": "/containerLogs/default/p/app", "query": {"tailLines": "10"}}
    # follow: the first line arrives before the kubelet finished writing
    async with api.session.get(f"{api.devkube.url}{PODS}/p/log", params={"follow": "true"},
                               headers=api.headers, ssl=api.ssl) as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        first = await asyncio.wait_for(resp.content.readline(), timeout=5)
        assert first == b"line 1\n"
        rest = await resp.content.read()
    assert rest == b"line 2\nline 3\n"


async def test_log_errors(api: Api, kubelet: tuple[int, list[dict[str, Any]]]) -> None:
    await api.request("POST", PODS, body=pod("unbound"))
    status, body = await api.request("GET", f"{PODS}/unbound/log")
    assert status == 400 and body["message"] == "pod unbound does not have a host assigned"
    await _node_and_pod(api, kubelet[0])
    status, body = await api.request("GET", f"{PODS}/p/log", params={"container": "nope"})
    assert status == 400 and body["message"] == "container nope is not valid for pod p"


async def test_unreachable_kubelet_is_an_error_not_a_crash(api: Api) -> None:
    await _node_and_pod(api, free_port())
    status, body = await api.request("GET", f"{PODS}/p/log")
    assert status == 500 and body["reason"] == "InternalError"


async def test_exec_without_an_upgrade_is_refused_clearly(api: Api) -> None:
    await api.request("POST", PODS, body=pod("e"))
    for sub in ("exec", "attach", "portforward"):
        for method in ("GET", "POST"):
            status, body = await api.request(method, f"{PODS}/e/{sub}",
                                             params={"command": "ls"})
            assert status == 400 and "needs an upgrade to WebSocket or SPDY/3.1" in body[
                "message"]


async def test_kubectl_logs_follow(
    api: Api, kubelet: tuple[int, list[dict[str, Any]]], tmp_path: Path
) -> None:
    await _node_and_pod(api, kubelet[0])
    env = {**os.environ, "KUBECONFIG": str(api.devkube.kubeconfig),
           "KUBECACHEDIR": str(tmp_path / "cache")}
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "logs", "-f", "p", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err
    assert out == b"line 1\nline 2\nline 3\n"
    assert kubelet[1][-1]["query"] == {"follow": "true"}


async def test_a_log_reader_hanging_up_is_not_an_error(
    api: Api, kubelet: tuple[int, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    await _node_and_pod(api, kubelet[0])
    async with api.session.get(f"{api.devkube.url}{PODS}/p/log", params={"follow": "true"},
                               headers=api.headers, ssl=api.ssl) as resp:
        assert await asyncio.wait_for(resp.content.readline(), timeout=5) == b"line 1\n"
        resp.close()  # hang up while the kubelet is still writing
    await asyncio.sleep(1.0)  # the kubelet writes lines 2 and 3 into the closed stream
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert {"hung_up": "/containerLogs/default/p/app"} in kubelet[1]  # hang-up passed upstream
    status, text = await api.request("GET", f"{PODS}/p/log")
    assert status == 200 and text == "line 1\n"
