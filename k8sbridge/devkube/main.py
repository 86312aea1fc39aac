"""Starting devkube: store (+ optional SQLite), HTTPS or loopback HTTP, kubeconfig, controllers.

Why: tests, the bridge's integration suite and ``k8sbridge devkube`` all start the control plane
the same way, through ``running(config)`` (an async context manager yielding where and how to
connect) or ``run(config=..., stop=..., ready=...)`` (the component shape used by app.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from k8sbridge.devkube import (
    admission,
    apiendpoints,
    apiservices,
    certs,
    discovery,
    httpio,
    idle,
    netns,
    persistence,
    rbacpolicy,
    registry,
    sakeys,
    server,
    services,
    store,
)

log = logging.getLogger(__name__)

CONTROLLERS_MODULE = "k8sbridge.devkube.controllers.manager"
CONTROLLERS_READY_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class DevkubeConfig:
    host: str = "127.0.0.1"
    port: int = 6443  # 0 = a free port
    data_dir: Path | None = None
    kubeconfig: Path | None = None
    insecure_http: bool = False
    node_grace_seconds: float = 50.0
    controllers: bool = True
    history_size: int = 10_000  # watch history kept for resuming; older RVs get 410
    history_bytes: int = store.HISTORY_BYTES  # ... and its bound in (estimated) bytes
    bookmark_interval: float = server.BOOKMARK_INTERVAL
    header_timeout: float = idle.HEADER_TIMEOUT  # a new connection's wait for its first request
    idle_timeout: float = idle.IDLE_TIMEOUT  # a keep-alive connection's wait for its next one
    body_timeout: float = httpio.REQUEST_TIMEOUT  # reading one request body
    # kube-apiserver's --disable-admission-plugins (only "ServiceAccount" is known)
    disable_admission_plugins: frozenset[str] = frozenset()
    # --advertise-address: what the ``kubernetes`` Service's endpoints name (None: the bind
    # address, or the default route's address for a wildcard bind)
    advertise_address: str | None = None
    # also listen on advertise_address:port inside the network namespace at this path
    listen_netns: Path | None = None
    service_cluster_ip_range: str = services.DEFAULT_SERVICE_CIDR
    service_node_port_range: str = services.DEFAULT_NODE_PORT_RANGE


@dataclasses.dataclass(frozen=True, slots=True)
class Devkube:
    url: str
    token: str | None
    ca_file: Path | None
    kubeconfig: Path
    controllers_socket: Path | None = None  # the controllers' private Unix socket, if running


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def write_kubeconfig(*, path: Path, url: str, token: str | None, ca_file: Path | None) -> None:
    cluster: dict[str, Any] = {"server": url}
    if ca_file is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_file.read_bytes()).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "devkube", "cluster": cluster}],
        "users": [{"name": "devkube", "user": user}],
        "contexts": [{"name": "devkube", "context": {"cluster": "devkube", "user": "devkube",
                                                      "namespace": "default"}}],
        "current-context": "devkube", "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


@contextlib.asynccontextmanager
async def running(config: DevkubeConfig) -> AsyncIterator[Devkube]:
    """Serve devkube until the block exits; yields how to connect to it."""
    with contextlib.ExitStack() as cleanup:
        if config.data_dir is not None:
            state_dir = config.data_dir
            persistence.private_dir(state_dir)
        else:
            state_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="devkube-")))
        database: persistence.Database | None = None
        durability: persistence.GroupCommit | None = None
        if config.data_dir is not None:
            database = persistence.Database(path=state_dir / "devkube.db")
            durability = persistence.GroupCommit(database=database)
            cleanup.callback(durability.close)
        st = store.Store(history_size=config.history_size, history_bytes=config.history_bytes,
                         persist=durability.stage if durability is not None else None)
        if database is not None:
            rv, objects = database.load()
            st.load(rv=rv, objects=objects)
        unknown = config.disable_admission_plugins - {admission.PLUGIN}
        if unknown:
            raise ValueError(f"unknown admission plugins: {', '.join(sorted(unknown))}")
        ranges = services.Ranges(
            cidr=services.parse_cidr(config.service_cluster_ip_range),
            node_ports=services.parse_port_range(config.service_node_port_range))
        reg = registry.Registry(store=st, service_account_admission=(
            admission.PLUGIN not in config.disable_admission_plugins), service_ranges=ranges)
        reg.bootstrap()
        rbacpolicy.reconcile(reg)  # the default ClusterRoles and bindings (RBAC's post-start hook)
        apiservices.bootstrap(reg, extra=discovery.unstored_group_versions())
        signing_key = sakeys.ensure(state_dir / "pki")  # --service-account-signing-key-file

        sock = _bind(config.host, config.port)
        cleanup.callback(sock.close)
        port = sock.getsockname()[1]
        advertise = config.advertise_address or apiendpoints.default_advertise_address(
            config.host)
        sockets = [sock]
        if config.listen_netns is not None:
            inner = netns.listen_in(config.listen_netns, host=advertise, port=port, bind=_bind)
            cleanup.callback(inner.close)
            sockets.append(inner)
        apiendpoints.reconcile(reg, ip=advertise, port=port)
        url_host = _url_host(config.host)
        ssl_context: ssl.SSLContext | None = None
        token: str | None = None
        ca_file: Path | None = None
        root_ca = ""  # what pods find in kube-root-ca.crt: the CA this server's clients trust
        kubelet_client: tuple[str, str] | None = None
        if config.insecure_http:
            url = f"http://{url_host}:{port}"
        else:
            creds = certs.ensure(directory=state_dir / "pki",
                                 hosts=[config.host, advertise, ranges.first_ip])
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(creds.cert_file, creds.key_file)
            token, ca_file = creds.token, creds.ca_file
            root_ca = ca_file.read_text()
            kubelet_client = (str(creds.kubelet_client_cert), str(creds.kubelet_client_key))
            url = f"https://{url_host}:{port}"
        kubeconfig = config.kubeconfig or state_dir / "kubeconfig"
        write_kubeconfig(path=kubeconfig, url=url, token=token, ca_file=ca_file)

        stop = asyncio.Event()
        api = server.ApiServer(reg=reg, token=token, server_address=f"{url_host}:{port}",
                               stop=stop, bookmark_interval=config.bookmark_interval,
                               kubelet_client_cert=kubelet_client, durability=durability,
                               signing_key=signing_key, server_url=url)
        app = api.app()
        app[httpio.BODY_TIMEOUT] = config.body_timeout
        watchdog = idle.Watchdog(header_timeout=config.header_timeout,
                                 idle_timeout=config.idle_timeout)
        app.middlewares.append(watchdog.middleware)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                               keepalive_timeout=config.idle_timeout)
        await runner.setup()
        assert runner.server is not None
        sweeper = asyncio.create_task(watchdog.run(server=runner.server, stop=stop),
                                      name="devkube-idle-connections")
        sites: list[web.BaseSite] = []
        for each_sock in sockets:
            site = web.SockSite(runner, each_sock, ssl_context=ssl_context)
            await site.start()
            sites.append(site)
        reconciler = asyncio.create_task(_reconcile_endpoints(reg, ip=advertise, port=port),
                                         name="devkube-endpoint-reconciler")
        log.info("devkube serving %s (kubeconfig %s)", url, kubeconfig)
        controllers: asyncio.Task[None] | None = None
        controllers_stop = asyncio.Event()
        unix_socket: Path | None = None
        try:
            if config.controllers:
                # The controllers reach this server through a private Unix socket (plain HTTP,
                # same token): TLS and loopback TCP on both ends of every request cost more
                # CPU than anything the controllers do with it.
                socket_dir = Path(cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="devkube-")))  # mode 0700
                unix_socket = socket_dir / "api.sock"
                local = web.UnixSite(runner, str(unix_socket))
                await local.start()
                sites.append(local)
                controllers = await _start_controllers(
                    url="http://localhost", unix_socket=unix_socket, token=token,
                    node_grace_seconds=config.node_grace_seconds, root_ca=root_ca,
                    stop=controllers_stop,
                )
            yield Devkube(url=url, token=token, ca_file=ca_file, kubeconfig=kubeconfig,
                          controllers_socket=unix_socket)
        finally:
            reconciler.cancel()
            controllers_stop.set()
            if controllers is not None:
                try:
                    async with asyncio.timeout(10):
                        await controllers
                except (TimeoutError, asyncio.CancelledError):
                    log.warning("devkube controllers did not stop in time")
                except Exception:
                    log.exception("devkube controllers failed")
            stop.set()
            for each in sites:
                await each.stop()  # no new connections
            await asyncio.sleep(0.05)  # let open watches write their end
            http = runner.server
            if http is not None:
                # Idle keep-alive and half-closed TLS connections would otherwise linger until
                # their peers go away; a stopping server drops them.
                for conn in list(http.connections):
                    if conn.transport is not None:
                        conn.transport.abort()
            await runner.cleanup()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler


async def _reconcile_endpoints(reg: registry.Registry, *, ip: str, port: int) -> None:
    """Put the ``kubernetes`` Service's endpoints back if someone changed them."""
    while True:
        await asyncio.sleep(apiendpoints.RECONCILE_INTERVAL)
        try:
            apiendpoints.reconcile(reg, ip=ip, port=port)
        except Exception:  # the server keeps serving; the next round tries again
            log.exception("reconciling the kubernetes Service's endpoints failed")


async def _start_controllers(
    *, url: str, unix_socket: Path, token: str | None, node_grace_seconds: float,
    root_ca: str, stop: asyncio.Event,
) -> asyncio.Task[None] | None:
    if importlib.util.find_spec(CONTROLLERS_MODULE) is None:
        log.warning("devkube controllers are not available (%s missing)", CONTROLLERS_MODULE)
        return None
    manager = importlib.import_module(CONTROLLERS_MODULE)
    ready = asyncio.Event()
    task: asyncio.Task[None] = asyncio.create_task(manager.run(
        url=url, token=token, ca_file=None, unix_socket=unix_socket,
        node_grace_seconds=node_grace_seconds, root_ca=root_ca, stop=stop, ready=ready,
    ), name="devkube-controllers")
    ready_wait = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({task, ready_wait}, timeout=CONTROLLERS_READY_TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    ready_wait.cancel()
    if task in done:
        task.result()  # raises if it failed
        return None
    if not done:
        log.warning("devkube controllers not ready after %.0f s", CONTROLLERS_READY_TIMEOUT)
    task.add_done_callback(_report_controllers_exit)
    return task


def _report_controllers_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("devkube controllers stopped with an error (the API server keeps serving)",
                  exc_info=error)


async def run(*, config: DevkubeConfig, stop: asyncio.Event, ready: asyncio.Event) -> None:
    async with running(config):
        ready.set()
        await stop.wait()
