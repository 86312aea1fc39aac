"""``/portForward``: each forwarded connection is a nested container session in the pod (on
its Mesos agent) running a relay to ``localhost:PORT`` -- nested containers share the pod's
network namespace, so this reaches what the pod listens on, against Apache Mesos as against
the embedded agent.

The relay is what the container's view has: ``python3`` (a few lines given with ``-c``, which
half-closes the connection when the client's side ends), else ``nc`` (busybox's applet too);
a container with neither gets an error naming both.

Why the kubelet's WebSocket port-forward protocol (``v4.channel.k8s.io``, ``port=`` in the
query): it is what an API server proxies for WebSocket clients (the official Python client's
``portforward``). Each port has two channels, data (2i) and error (2i+1); the first message on
each carries the port as two little-endian bytes; the connection's bytes follow on the data
channel, and a failure (nothing listens on the port) is text on the error channel. kubectl
port-forward speaks SPDY/3.1 (``portforward.k8s.io``): ``api_portforward_spdy`` serves it on
an upgraded connection (what kube-apiserver opens to a kubelet) or tunnelled in a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_exec, api_portforward_spdy, api_spdy_upgrade
from k8sbridge.mesos import sessions

__all__ = ["PORT_FORWARD_PROTOCOLS", "PortForwardRoutes", "relay_command"]

log = logging.getLogger(__name__)

PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")

_PY_RELAY = """
import os, socket, sys, threading
port = int(sys.argv[1])
try:
    s = socket.create_connection(("127.0.0.1", port))
except OSError as e:
    sys.stderr.write("dial tcp 127.0.0.1:%d: connect: %s" % (port, e.strerror or e))
    sys.exit(1)
def up():
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        s.sendall(d)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
out = sys.stdout.buffer
while True:
    d = s.recv(65536)
    if not d:
        break
    out.write(d)
    out.flush()
"""

_SCRIPT = """
for py in python3 python; do
  if command -v "$py" >/dev/null 2>&1; then exec "$py" -c "$1" "$2"; fi
done
if command -v nc >/dev/null 2>&1; then exec nc 127.0.0.1 "$2"; fi
if command -v busybox >/dev/null 2>&1; then exec busybox nc 127.0.0.1 "$2"; fi
echo "no relay in the container: it has neither python3 nor nc" >&2
exit 127
"""


def relay_command(port: int) -> list[str]:
    """The argv of the relay session for ``port``."""
    return ["/bin/sh", "-c", _SCRIPT, "relay", _PY_RELAY, str(port)]


def parse_ports(values: list[str]) -> list[int]:
    ports = []
    for raw in values:
        for part in raw.split(","):
            try:
                port = int(part)
            except ValueError as e:
                raise ValueError(f"unable to parse {part!r} as a port") from e
            if not 0 < port < 65536:
                raise ValueError(f"port {port} must be between 1 and 65535")
            ports.append(port)
    if not ports:
        raise ValueError("at least one port must be given with 'port='")
    return ports


class PortForwardRoutes(api_exec.ExecRoutes):
    """``/portForward/{namespace}/{pod}`` over WebSocket."""

    def _pod_container(self, ns: str, name: str) -> str | None:
        locator = self._locator
        if locator is None:
            return None
        for pod in locator.known_pods():
            meta = pod.get("metadata") or {}
            if meta.get("namespace", "default") != ns or meta.get("name") != name:
                continue
            for c in (pod.get("spec") or {}).get("containers") or []:
                found = locator.locate(namespace=ns, name=name,
                                             container=str(c.get("name")), previous=False)
                if found is not None and not found[3]:
                    return str(c.get("name"))
        return None

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in
                   request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if api_portforward_spdy.SPDY_TUNNEL in offered or api_spdy_upgrade.is_spdy_upgrade(
                request):
            return await self._spdy_port_forward(request)
        try:
            ports = parse_ports(request.query.getall("port", []))
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="Upgrade request required: this kubelet "
                                "serves port-forward over WebSocket only (not SPDY)\n")
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        container = self._pod_container(ns, pod)
        if container is None:
            return web.Response(status=404, text=f'pod "{pod}" has no running container\n')
        address, target = await self._where(ns, pod, container)
        ws = web.WebSocketResponse(protocols=PORT_FORWARD_PROTOCOLS,
                                   max_msg_size=api_exec.MAX_MESSAGE)
        await ws.prepare(request)
        relays = [_Relay(ws=ws, index=i, port=p, pod=pod) for i, p in enumerate(ports)]
        for relay in relays:
            await relay.announce()
        starts = await asyncio.gather(*(r.start(self._reader, address, target)
                                        for r in relays), return_exceptions=True)
        pumps = [asyncio.create_task(r.pump()) for r, s in zip(relays, starts, strict=True)
                 if s is True]
        try:
            async for message in ws:
                if message.type != WSMsgType.BINARY or not message.data:
                    continue
                data: bytes = message.data
                channel = data[0]
                if channel % 2 == 0 and channel // 2 < len(relays):
                    await relays[channel // 2].send(data[1:])
        finally:
            for relay in relays:
                await relay.close()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        return ws


    async def _spdy_port_forward(self, request: web.Request) -> web.StreamResponse:
        """SPDY streams on an upgraded connection or in a WebSocket (``api_portforward_spdy``)."""
        plain = api_spdy_upgrade.is_spdy_upgrade(request)
        protocol = api_portforward_spdy.PORT_FORWARD_SPDY
        if plain:
            negotiated = api_spdy_upgrade.negotiate(request, (protocol,))
            if isinstance(negotiated, web.Response):
                return negotiated
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        container = self._pod_container(ns, pod)
        if container is None:
            return web.Response(status=404, text=f'pod "{pod}" has no running container\n')
        address, target = await self._where(ns, pod, container)
        if plain:
            upgraded = await api_spdy_upgrade.Upgraded.accept(request, protocol)
            try:
                await api_portforward_spdy.serve_tunnel(
                    (upgraded.read, upgraded.write), reader=self._reader, address=address,
                    target=target, pod=pod, relay_command=relay_command)
            finally:
                upgraded.close()
            return upgraded.response
        ws = web.WebSocketResponse(protocols=(api_portforward_spdy.SPDY_TUNNEL,),
                                   max_msg_size=api_exec.MAX_MESSAGE)
        await ws.prepare(request)
        await api_portforward_spdy.serve_tunnel(
            api_portforward_spdy.websocket_transport(ws), reader=self._reader,
            address=address, target=target, pod=pod, relay_command=relay_command)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await ws.close()
        return ws


class _Relay:
    """One forwarded port of a connection: its channels and its session."""

    def __init__(self, *, ws: web.WebSocketResponse, index: int, port: int, pod: str) -> None:
        self.ws = ws
        self.data_channel = 2 * index
        self.error_channel = 2 * index + 1
        self.port = port
        self.pod = pod
        self.session: sessions.Session | None = None

    async def announce(self) -> None:
        prefix = self.port.to_bytes(2, "little")
        for channel in (self.data_channel, self.error_channel):
            await self.ws.send_bytes(bytes((channel,)) + prefix)

    async def error(self, text: str) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.send_bytes(bytes((self.error_channel,)) + text.encode())

    async def start(self, reader: Any, address: str, target: dict[str, Any]) -> bool:
        try:
            self.session = await sessions.launch(reader, address, parent=target,
                                                 command=relay_command(self.port))
        except mesos_agents.AgentsError as e:
            await self.error(f"error forwarding port {self.port} to pod {self.pod}: {e}")
            return False
        return True

    async def send(self, data: bytes) -> None:
        if self.session is not None:
            await self.session.send(data)

    async def pump(self) -> None:
        """The pod's side to the client; a relay that fails says why on the error channel;
        the end of the pod's side ends the client's connection."""
        assert self.session is not None
        errors = b""
        try:
            async for kind, data in self.session.output():
                if kind == "STDERR":
                    errors += data[:4096]
                    continue
                await self.ws.send_bytes(bytes((self.data_channel,)) + data)
            code = sessions.decode_status(await self.session.wait())
        except (mesos_agents.AgentsError, ConnectionResetError, RuntimeError) as e:
            log.info("port-forward %s:%d ended: %s", self.pod, self.port, e)
            code = -1
        if code != 0 or errors:
            await self.error(f"error forwarding port {self.port} to pod {self.pod}: failed "
                             f"to connect to localhost:{self.port} inside the pod: "
                             f"{errors.decode(errors='replace').strip()}")
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.close()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
