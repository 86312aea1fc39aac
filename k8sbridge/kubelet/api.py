"""The kubelet HTTPS API (port 10250) that every virtual node points at: logs, pods, health.

Why one server for all nodes: each Node's ``status.addresses`` + ``daemonEndpoints`` name this
server, so ``kubectl logs`` → API server → here, whichever agent runs the pod. Logs are read
from the task's sandbox through the Mesos agent files API (``/files/read`` on the agent, virtual
path ``/frameworks/<fid>/executors/<eid>/runs/latest/tasks/<taskId>/stdout``), which works the
same against Apache Mesos agents.

``/containerLogs/{ns}/{pod}/{container}`` supports ``follow`` (polling the file until the task
ends and the client goes away), ``tailLines``, ``limitBytes``, ``previous`` (the prior attempt's
sandbox), ``timestamps`` (the time the bridge read each line: Mesos sandboxes keep no per-line
times) and ``sinceSeconds``. stdout is followed by stderr for finished output; when following,
both are streamed as they grow.

``sinceSeconds`` without per-line times: a file whose modification time (agent
``/files/browse``) is older than the window contributes nothing; otherwise the output starts at
the first line after the largest size the bridge itself observed for that file at or before
the window's start (every log request and every ``-f`` poll records (time, size) per file, a
bounded history, and with ``log_sample_seconds`` a sampler records every running container's
sizes periodically); with no such observation all of the file is sent (more, never less, than
a kubelet would). Lines that arrive while following are inside the window by construction.

Authentication is a kubelet's (``--anonymous-auth=false``, ``--client-ca-file``,
``--authentication-token-webhook``): TLS is mandatory (a generated self-signed certificate
unless one is configured); a client certificate verified against ``client_ca_file`` (as the API
server presents with ``--kubelet-client-certificate``) authenticates its CN; a bearer token is
checked with a ``TokenReview`` (``authentication.k8s.io/v1``) against the API server, the answer
cached (``cachetools.TTLCache``, keyed by the token's SHA-256, never by the token itself) for
``token_cache_ttl_seconds`` (rejections for ``token_cache_failure_ttl_seconds``); a request
with neither is served as ``system:anonymous`` only when ``anonymous`` is on, else 401. An
invalid token is 401 even with anonymous on, as in Kubernetes. Authenticated users are not
further authorized (no SubjectAccessReview: like ``--authorization-mode=AlwaysAllow``).
``/run`` answers 501 "not supported yet".

Where things are: ``api_base`` (state and seams), ``api_auth`` (authentication),
``api_logs`` (``/containerLogs``), ``api_stats`` (``/stats/summary``), ``api_exec``
(``/exec``, ``/attach``), ``api_portforward`` (``/portForward``); this module assembles
the server (routes, TLS, start/stop) and answers ``/healthz``, ``/pods``, ``/runningpods``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from k8sbridge.kubelet import api_auth, api_logs, api_portforward, api_stats
from k8sbridge.kubelet.api_auth import generate_self_signed
from k8sbridge.kubelet.api_base import TokenReviewer, UserInfo

__all__ = ["KubeletServer", "TokenReviewer", "UserInfo", "bind_hosts", "bind_sockets",
           "generate_self_signed"]

log = logging.getLogger(__name__)


def bind_hosts(setting: str) -> list[str]:
    """The addresses of setting ``kubelet.host`` (comma-separated; "": all interfaces)."""
    return [h.strip() for h in setting.split(",") if h.strip()] or ["0.0.0.0"]


def _bound(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"kubelet API: cannot listen on {host}:{port}: "
                               f"{e.strerror or e}") from None
    return sock


def _free_everywhere(host: str) -> int:
    """A port free on every address of ``host``'s family: the system's pick for the wildcard
    address (which conflicts with any address's use of a port). Not the pick for ``host``
    itself: Linux's bind(0) prefers a port some other address already uses."""
    family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        return int(probe.getsockname()[1])


def bind_sockets(hosts: list[str], port: int, *, attempts: int = 8) -> list[socket.socket]:
    """One bound socket per address of ``hosts``, all on one port: ``port``, or with 0 one
    free on every address (``_free_everywhere``). That port can be taken in the moment
    between the pick and the binds: then every socket is closed and another port tried, up to
    ``attempts`` times; a port the user chose that is taken is an error, as ever."""
    for attempt in range(attempts):
        chosen = port or _free_everywhere(hosts[0])
        sockets: list[socket.socket] = []
        try:
            for host in hosts:
                sockets.append(_bound(host, chosen))
        except OSError as e:
            for sock in sockets:
                sock.close()
            if port != 0 or e.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
            continue
        return sockets
    raise AssertionError("unreachable")


class KubeletServer(api_logs.LogRoutes, api_stats.StatsRoutes,
                    api_portforward.PortForwardRoutes, api_auth.Authenticating):
    """The server: routes from ``api_logs``, ``api_stats`` and ``api_auth``, TLS and lifecycle."""

    def attach(self, *, scheduler: Any, kube: TokenReviewer | None, nodes: Any,
               metrics: Any = None) -> None:
        self._locator = scheduler
        self._agents = nodes
        self._reviewer = kube
        self._metrics = metrics  # k8sbridge.metrics.BridgeMetrics: served as /metrics

    def _ssl_context(self) -> ssl.SSLContext:
        cert, key = self._settings.cert_file, self._settings.key_file
        if cert is None or key is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="k8sbridge-kubelet-")
            hosts = sorted({self._settings.advertise_address or "127.0.0.1", "127.0.0.1",
                            "localhost", *bind_hosts(self._settings.host)} - {"0.0.0.0", "::"})
            cert, key = generate_self_signed(Path(self._tmp.name), hosts=hosts)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        if self._settings.client_ca_file is not None:
            # Optional at the TLS level: bearer-token clients present no certificate; one that
            # is presented must verify, else the handshake fails.
            ctx.load_verify_locations(str(self._settings.client_ca_file))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def start(self) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._prometheus)
        app.router.add_get("/pods", self._pods)
        app.router.add_get("/runningpods/", self._running)
        app.router.add_get("/runningpods", self._running)
        app.router.add_get("/stats/summary", self._stats)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        for method in ("GET", "POST"):
            for tail in ("{container}", "{uid}/{container}"):
                app.router.add_route(method, "/exec/{namespace}/{pod}/" + tail, self._exec)
                app.router.add_route(method, "/attach/{namespace}/{pod}/" + tail, self._attach)
            for tail in ("", "/{uid}"):
                app.router.add_route(method, "/portForward/{namespace}/{pod}" + tail,
                                     self._port_forward)
        app.router.add_route("*", "/run/{tail:.*}", self._unsupported)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        hosts = bind_hosts(self._settings.host)
        context = self._ssl_context()
        sockets = bind_sockets(hosts, self._settings.port)
        self.port = int(sockets[0].getsockname()[1])
        for sock in sockets:
            await web.SockSite(self._runner, sock, ssl_context=context).start()
        host = ",".join(hosts)
        log.info("kubelet API listening on https://%s:%d (client CA: %s, token review: %s, "
                 "anonymous: %s)", host, self.port, self._settings.client_ca_file or "none",
                 "on" if self._settings.token_review else "off",
                 "on" if self._settings.anonymous else "off")
        if self._settings.client_ca_file is None and not self._settings.anonymous:
            log.warning("kubelet API: no kubelet.client_ca_file, so the API server's kubelet "
                        "client certificate cannot be verified and `kubectl logs` gets 401; "
                        "set it to the CA that signed --kubelet-client-certificate")
        if self._settings.log_sample_seconds > 0:
            self._sampler = asyncio.create_task(self._sample_sizes(), name="kubelet-log-sizes")
        return self.port

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()


    # -- routes ----------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _prometheus(self, request: web.Request) -> web.Response:
        """The bridge's metrics in Prometheus' text format (as a kubelet's /metrics)."""
        if self._metrics is None:
            raise web.HTTPNotFound(text="no metrics: the bridge is not attached yet")
        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response

    async def _pods(self, request: web.Request) -> web.Response:
        items = self._locator.known_pods() if self._locator else []
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": items})

    async def _running(self, request: web.Request) -> web.Response:
        items = self._locator.running_pods() if self._locator else []
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": items})


    async def _unsupported(self, request: web.Request) -> web.Response:
        what = request.path.split("/")[1]
        return web.Response(
            status=501,
            text=f"{what} is not supported by k8sbridge (use /exec)\n",
        )


    # -- sinceSeconds ----------------------------------------------------------------------


