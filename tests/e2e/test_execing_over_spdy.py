"""The kubelet API's exec over SPDY/3.1, spoken to it directly as kube-apiserver >= 1.30 does
after translating kubectl's WebSocket (client-go's SPDY executor: ``v4.channel.k8s.io``, one
stream per channel): the exit code in the error stream's Status, stdin and its end, a
terminal's resize, and bad frames that end the connection without leaving the session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from k8sbridge.kubelet import api_spdy
from tests.e2e.conftest import Target, eventually
from tests.e2e.spdy_client import Client

pytestmark = pytest.mark.e2e

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: spdy-shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "echo started; exec sleep 100000"]
"""


class Kubelet:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token

    async def exec(self, command: list[str], *, stdin: bool = False, tty: bool = False,
                   protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io",
                                                 "v3.channel.k8s.io", "v2.channel.k8s.io",
                                                 "channel.k8s.io"),
                   ) -> tuple[int, str, Client | None]:
        query = [("command", c) for c in command] + [("output", "1")]
        query += [("input", "1")] if stdin else []
        query += [("tty", "1")] if tty else [("error", "1")]
        path = f"/exec/default/spdy-shell/main?{urlencode(query)}"
        return await Client.upgrade(self.host, self.port, path, token=self.token,
                                    protocols=protocols)


@pytest.fixture(scope="module")
def kubelet(target: Target) -> Kubelet:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=POD, text=True, check=True, capture_output=True, timeout=60)
    target.kubectl("wait", "--for=condition=Ready", "pod/spdy-shell", "--timeout=60s",
                   timeout=90)
    node = target.kubectl_json("get", "node", target.kubectl_json(
        "get", "pod", "spdy-shell")["spec"]["nodeName"])
    address = next(a["address"] for a in node["status"]["addresses"]
                   if a["type"] == "InternalIP")
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    token = yaml.safe_load(Path(target.kubeconfig).read_text())["users"][0]["user"]["token"]
    return Kubelet(address, int(port), token)


async def _streams(client: Client, *kinds: str) -> None:
    for kind in kinds:
        await client.open(kind)
    await client.until(lambda: client.replied >= set(kinds))


def test_exit_code_and_output(kubelet: Kubelet) -> None:
    async def run() -> Client:
        status, head, client = await kubelet.exec(
            ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert status == 101 and client is not None, head
        assert "X-Stream-Protocol-Version: v4.channel.k8s.io" in head
        await _streams(client, "error", "stdout", "stderr")
        await client.until_closed()
        return client

    client = asyncio.run(run())
    assert client.data["stdout"] == b"out\n" and client.data["stderr"] == b"err\n"
    status = client.status()
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert {"stdout", "stderr", "error"} <= client.ended and client.goaway


def test_stdin_and_its_end(kubelet: Kubelet) -> None:
    payload = b"".join(b"line %d\n" % i for i in range(3000))

    async def run() -> Client:
        _, head, client = await kubelet.exec(["cat"], stdin=True)
        assert client is not None, head
        await _streams(client, "error", "stdin", "stdout", "stderr")
        for at in range(0, len(payload), 10_000):
            await client.send("stdin", payload[at:at + 10_000])
        await client.send("stdin", b"", fin=True)
        await client.until_closed()
        return client

    client = asyncio.run(run())
    assert client.data["stdout"] == payload
    assert client.status() == {"metadata": {}, "status": "Success"}


def test_a_terminal_and_its_resize(kubelet: Kubelet) -> None:
    async def run() -> Client:
        _, head, client = await kubelet.exec(["sh", "-c", "sleep 1; tty; stty size"],
                                             tty=True)
        assert client is not None, head
        await _streams(client, "error", "stdout", "resize")
        # two sizes in one frame, the second split across two frames: the last one counts
        await client.send("resize", b'{"Width":80,"Height":24}\n{"Width":1')
        await client.send("resize", b'00,"Height":30}\n')
        await client.until_closed()
        return client

    client = asyncio.run(run())
    assert b"/dev/pts/" in client.data["stdout"] and b"30 100" in client.data["stdout"]
    assert client.status()["status"] == "Success"


def test_refusals_before_the_upgrade(kubelet: Kubelet) -> None:
    async def run() -> tuple[tuple[int, str], tuple[int, str]]:
        none = await kubelet.exec(["true"], protocols=("v9.channel.k8s.io",))
        missing = await Client.upgrade(kubelet.host, kubelet.port,
                                       "/exec/default/no-such-pod/main?command=true&output=1",
                                       token=kubelet.token)
        return none[:2], missing[:2]

    (status, head), (missing, text) = asyncio.run(run())
    assert status == 403 and "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" in head
    assert missing == 404 and "no-such-pod" in text


def _sleepers(marker: bytes) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/cmdline").read_bytes() == b"sleep\x00" + marker + b"\x00":
                    out.append(int(name))
            except OSError:
                continue
    return out


@pytest.mark.parametrize("bad", [
    b"\x80\x02\x00\x01\x00\x00\x00\x04garbage!",  # a control frame of SPDY/2
    struct.pack("!II", 3, 5 * 1024 * 1024),  # a DATA frame over the limit (no body needed)
])
def test_a_bad_frame_closes_the_connection_and_the_session(kubelet: Kubelet,
                                                            bad: bytes) -> None:
    marker = str(900 + len(bad)).encode()

    async def run() -> Client:
        _, head, client = await kubelet.exec(["sleep", marker.decode()], stdin=True)
        assert client is not None, head
        await _streams(client, "error", "stdin", "stdout", "stderr")
        eventually(lambda: _sleepers(marker), timeout=30, what="the session's process")
        await client.raw(bad)
        await client.until_closed()
        return client

    client = asyncio.run(run())
    assert client.closed and client.goaway
    eventually(lambda: not _sleepers(marker), timeout=30, what="the session to be destroyed")
    assert api_spdy.MAX_DATA < 5 * 1024 * 1024


def test_port_forward_on_a_plain_spdy_upgrade(kubelet: Kubelet) -> None:
    """What kube-apiserver opens to a kubelet when tunnelling kubectl's port-forward: the
    streams of a forwarded connection (error, data), here to a port nobody listens on, then
    garbage, which ends the connection."""
    async def run() -> tuple[int, Client]:
        status, head, client = await Client.upgrade(
            kubelet.host, kubelet.port, "/portForward/default/spdy-shell", token=kubelet.token,
            protocols=("portforward.k8s.io",))
        assert client is not None, head
        for kind in ("error", "data"):
            stream, client.next_id = client.next_id, client.next_id + 2
            client.ids[kind] = stream
            await client.raw(client.frames_out.syn_stream(
                stream, {"streamType": kind, "port": "9", "requestID": "0"}))
        await client.until(lambda: "error" in client.ended)
        await client.raw(b"\x80\x02garbage!")
        await client.until_closed()
        return status, client

    status, client = asyncio.run(run())
    assert status == 101 and client.replied >= {"error", "data"}
    assert b"error forwarding port 9 to pod spdy-shell" in client.data["error"]
    assert client.goaway and client.closed


def test_attach_over_spdy(kubelet: Kubelet) -> None:
    """Attach's streams over SPDY as for exec (output follows from the attach on, as a
    kubelet's); stdin of a container without a terminal is refused before the upgrade (Mesos
    keeps a task's stdin only on its terminal), with the reason in the answer."""
    async def run() -> Client:
        status, head, refused = await Client.upgrade(
            kubelet.host, kubelet.port, "/attach/default/spdy-shell/main?input=1&output=1",
            token=kubelet.token)
        assert status == 400 and refused is None, head
        assert "use kubectl exec" in head
        status, head, client = await Client.upgrade(
            kubelet.host, kubelet.port, "/attach/default/spdy-shell/main?output=1&error=1",
            token=kubelet.token)
        assert status == 101 and client is not None, head
        await _streams(client, "error", "stdout")  # both accepted; output follows from now
        assert not client.ended and not client.goaway
        client.writer.close()
        with contextlib.suppress(ConnectionError):
            await client.writer.wait_closed()
        return client

    client = asyncio.run(run())
    assert client.replied >= {"error", "stdout"}
