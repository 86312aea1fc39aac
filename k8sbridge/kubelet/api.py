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
further authorized (no SubjectAccessReview: like ``--authorization-mode=AlwaysAllow``). Exec,
attach and port-forward answer 501 "not supported yet".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hashlib
import logging
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import cachetools
from aiohttp import web

from k8sbridge import settings as bridge_settings
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kubelet import agents as mesos_agents

__all__ = ["KubeletServer", "TokenReviewer", "UserInfo", "generate_self_signed"]

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_LOG_BYTES = 16 * 1024 * 1024  # never read more than this for one non-follow request
FOLLOW_POLL = 0.2
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
TOKEN_CACHE_SIZE = 4096
SIZE_HISTORY = 64  # (time, size) observations kept per log file for sinceSeconds
SIZE_FILES = 4096  # log files with a size history (least recently touched dropped first)
_MIN_RATE_WINDOW = 0.5  # seconds between the two cpu samples of a usageNanoCores figure
ANONYMOUS = "system:anonymous"


@dataclasses.dataclass(frozen=True, slots=True)
class UserInfo:
    """Who a request authenticated as, and how (``x509``, ``token`` or ``anonymous``)."""

    username: str
    groups: tuple[str, ...]
    method: str


USER = web.RequestKey("user", UserInfo)  # the authenticated user of a request


class TokenReviewer(Protocol):
    """What the token check needs from the Kubernetes client (``KubeClient`` has it)."""

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


class PodLocator(Protocol):
    """Finds where a container of a pod runs (the scheduler loop implements it)."""

    def locate(
        self, *, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[str, str, str, bool] | None:
        """(agent id, executor id, task id, task finished) or None."""
        ...

    def known_pods(self) -> list[dict[str, Any]]: ...

    def running_pods(self) -> list[dict[str, Any]]: ...

    @property
    def framework_id(self) -> str | None: ...


class AgentLookup(Protocol):
    @property
    def agents(self) -> Mapping[Any, mesos_agents.AgentInfo]: ...


def generate_self_signed(directory: Path, *, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for ``hosts`` (IPs or names); returns (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sbridge-kubelet")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "kubelet.crt"
    key_path = directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class KubeletServer:
    def __init__(
        self, *, settings: bridge_settings.KubeletSettings, reader: mesos_agents.MesosReader
    ) -> None:
        self._settings = settings
        self._reader = reader
        self._locator: PodLocator | None = None
        self._agents: AgentLookup | None = None
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._reviewer: TokenReviewer | None = None
        self._tokens_ok: cachetools.TTLCache[str, UserInfo] = cachetools.TTLCache(
            maxsize=TOKEN_CACHE_SIZE, ttl=max(settings.token_cache_ttl_seconds, 1e-6))
        self._tokens_bad: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=TOKEN_CACHE_SIZE, ttl=max(settings.token_cache_failure_ttl_seconds, 1e-6))
        self._sizes: collections.OrderedDict[tuple[str, str], list[tuple[float, int]]] = (
            collections.OrderedDict())
        self.token_reviews = 0  # TokenReviews sent (observable by tests)
        self._sampler: asyncio.Task[None] | None = None
        # /stats/summary: the last (timestamp, cpu seconds) per pod/container, for usageNanoCores
        self._cpu_prev: dict[str, tuple[float, float]] = {}
        self.port = 0

    def attach(self, *, scheduler: Any, kube: TokenReviewer | None, nodes: Any) -> None:
        self._locator = scheduler
        self._agents = nodes
        self._reviewer = kube

    def _ssl_context(self) -> ssl.SSLContext:
        cert, key = self._settings.cert_file, self._settings.key_file
        if cert is None or key is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="k8sbridge-kubelet-")
            hosts = sorted(
                {self._settings.advertise_address or "127.0.0.1", "127.0.0.1", "localhost"}
            )
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
        app.router.add_get("/pods", self._pods)
        app.router.add_get("/runningpods/", self._running)
        app.router.add_get("/runningpods", self._running)
        app.router.add_get("/stats/summary", self._stats)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        for prefix in ("/exec", "/attach", "/portForward", "/run"):
            app.router.add_route("*", prefix + "/{tail:.*}", self._unsupported)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host = self._settings.host or "0.0.0.0"
        site = web.TCPSite(
            self._runner, host, self._settings.port, ssl_context=self._ssl_context(),
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._settings.port
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

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        user = await self.authenticate(request)
        if user is None:
            return web.Response(status=401, text="Unauthorized\n")
        request[USER] = user
        response: web.StreamResponse = await handler(request)
        return response

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The request's user, or None (401): certificate, then bearer token, then anonymous."""
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        if peer:  # only set when the certificate verified against client_ca_file
            return _user_from_cert(peer)
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                return None
            return await self._review(token)
        if self._settings.anonymous:
            return UserInfo(username=ANONYMOUS, groups=("system:unauthenticated",),
                            method="anonymous")
        return None

    async def _review(self, token: str) -> UserInfo | None:
        if not self._settings.token_review or self._reviewer is None:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens_ok.get(key)
        if cached is not None:
            return cached
        if key in self._tokens_bad:
            return None
        self.token_reviews += 1
        try:
            reply = await self._reviewer.create(TOKEN_REVIEW_PATH, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token},
            })
        except kube_errors.KubeError as e:  # not cached: the next request asks again
            log.warning("TokenReview failed, request refused: %s", e)
            return None
        status = reply.get("status") or {}
        user = status.get("user") or {}
        if status.get("authenticated") is not True or not user.get("username"):
            if self._settings.token_cache_failure_ttl_seconds > 0:
                self._tokens_bad[key] = True
            return None
        info = UserInfo(username=str(user["username"]),
                        groups=tuple(str(g) for g in user.get("groups") or ()),
                        method="token")
        if self._settings.token_cache_ttl_seconds > 0:
            self._tokens_ok[key] = info
        return info

    # -- routes ----------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _pods(self, request: web.Request) -> web.Response:
        items = self._locator.known_pods() if self._locator else []
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": items})

    async def _running(self, request: web.Request) -> web.Response:
        items = self._locator.running_pods() if self._locator else []
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": items})

    async def _stats(self, request: web.Request) -> web.Response:
        """stats/v1alpha1 Summary: each pod's and container's cpu and memory from its agent's
        v1 GET_CONTAINERS ResourceStatistics (pod = its executor containers, container = its
        task's nested container, or the executor when it runs that task alone). usageNanoCores
        comes from this and the previous sample of the same container."""
        pods = self._locator.running_pods() if self._locator else []
        agents = self._agents.agents if self._agents is not None else {}
        now = time.time()
        placed: list[tuple[dict[str, Any], list[tuple[str, str, str, str]]]] = []
        wanted: set[str] = set()
        for p in pods:
            meta = p.get("metadata") or {}
            where = []
            for c in (p.get("spec") or {}).get("containers") or []:
                name = str(c.get("name") or "")
                found = self._locator.locate(
                    namespace=str(meta.get("namespace") or "default"),
                    name=str(meta.get("name") or ""), container=name, previous=False,
                ) if self._locator else None
                if found is None or found[3]:
                    continue
                where.append((name, str(found[0]), found[1], found[2]))
                wanted.add(str(found[0]))
            placed.append((p, where))
        usage = await self._usage_on({a: agents[a].address for a in wanted if a in agents})
        seen: set[str] = set()
        out = []
        for p, where in placed:
            meta = p.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            start = (p.get("status") or {}).get("startTime") or _iso(now)
            executors = {(agent_id, eid) for _, agent_id, eid, _ in where}
            entry: dict[str, Any] = {
                "podRef": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": uid},
                "startTime": start,
                "containers": [],
            }
            for name, agent_id, eid, tid in where:
                st = usage.get((agent_id, "task", tid))
                if st is None and sum(1 for w in where if w[1:3] == (agent_id, eid)) == 1:
                    st = usage.get((agent_id, "executor", eid))
                container: dict[str, Any] = {"name": name, "startTime": start}
                if st is not None:
                    container.update(self._figures(f"{uid}/{name}", [st], seen=seen))
                entry["containers"].append(container)
            pod_stats = [s for k in executors if (s := usage.get((k[0], "executor", k[1])))]
            if pod_stats:
                entry.update(self._figures(f"{uid}/", pod_stats, seen=seen))
            out.append(entry)
        for key in list(self._cpu_prev):
            if key not in seen:
                del self._cpu_prev[key]
        return web.json_response(
            {"node": {"nodeName": "k8sbridge", "startTime": _iso(now)}, "pods": out}
        )

    async def _usage_on(self, addresses: Mapping[str, str]
                        ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """ResourceStatistics by (agent id, "executor", executor id) and (agent id, "task",
        task id), from GET_CONTAINERS and the agent's /state (which names each task's nested
        container in its statuses, as Mesos does)."""
        async def one(agent_id: str, address: str
                      ) -> dict[tuple[str, str, str], dict[str, Any]]:
            try:
                containers, state = await asyncio.gather(
                    self._reader.get_containers(address, show_nested=True),
                    self._reader.agent_state(address),
                )
            except mesos_agents.AgentsError as e:
                log.info("no statistics from %s: %s", address, e)
                return {}
            return _index_usage(agent_id, containers, state)

        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for part in await asyncio.gather(*(one(a, addr) for a, addr in addresses.items())):
            found.update(part)
        return found

    def _figures(self, key: str, samples: list[dict[str, Any]], *, seen: set[str]
                 ) -> dict[str, Any]:
        """``cpu`` and ``memory`` of the Summary API from summed samples."""
        out: dict[str, Any] = {}
        ts = max(float(s.get("timestamp") or time.time()) for s in samples)
        if all("cpus_user_time_secs" in s for s in samples):
            secs = sum(float(s.get("cpus_user_time_secs") or 0)
                       + float(s.get("cpus_system_time_secs") or 0) for s in samples)
            cpu: dict[str, Any] = {"time": _iso(ts), "usageCoreNanoSeconds": int(secs * 1e9)}
            seen.add(key)
            prev = self._cpu_prev.get(key)
            if prev is not None and ts > prev[0] and secs >= prev[1]:
                cpu["usageNanoCores"] = int((secs - prev[1]) / (ts - prev[0]) * 1e9)
            if prev is None or ts - prev[0] >= _MIN_RATE_WINDOW or secs < prev[1]:
                self._cpu_prev[key] = (ts, secs)
            out["cpu"] = cpu
        if any("mem_rss_bytes" in s or "mem_total_bytes" in s for s in samples):
            rss = sum(int(s.get("mem_rss_bytes") or 0) for s in samples)
            used = sum(int(s.get("mem_total_bytes") or s.get("mem_rss_bytes") or 0)
                       for s in samples)
            files = sum(int(s.get("mem_file_bytes") or 0) for s in samples)
            out["memory"] = {"time": _iso(ts), "usageBytes": used, "rssBytes": rss,
                             "workingSetBytes": max(rss, used - files)}
            limit = sum(int(s.get("mem_limit_bytes") or 0) for s in samples)
            if limit and all(s.get("mem_limit_bytes") for s in samples):
                out["memory"]["availableBytes"] = max(limit - out["memory"]["workingSetBytes"],
                                                      0)
        return out

    async def _unsupported(self, request: web.Request) -> web.Response:
        what = request.path.split("/")[1]
        return web.Response(
            status=501,
            text=f"{what} is not supported yet by k8sbridge (Mesos tasks have no attach API "
            "here)\n",
        )

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        if self._locator is None or self._agents is None:
            return web.Response(status=503, text="kubelet is starting\n")
        q = request.query
        try:
            follow = q.get("follow", "false").lower() in ("1", "true")
            previous = q.get("previous", "false").lower() in ("1", "true")
            timestamps = q.get("timestamps", "false").lower() in ("1", "true")
            tail = int(q["tailLines"]) if "tailLines" in q else None
            limit = int(q["limitBytes"]) if "limitBytes" in q else None
            if (tail is not None and tail < 0) or (limit is not None and limit <= 0):
                raise ValueError("negative")
        except ValueError:
            return web.Response(status=400, text="bad tailLines or limitBytes\n")
        try:
            cutoff = _since_cutoff(q, now=time.time())
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        ns = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=previous)
        if where is None:
            kind = "previous terminated container" if previous else "container"
            return web.Response(
                status=404,
                text=f'{kind} "{container}" in pod "{pod}" is not available\n',
            )
        agent_id, executor_id, task_id, finished = where
        agent = self._agents.agents.get(agent_id)
        fid = self._locator.framework_id
        if agent is None or not fid:
            return web.Response(status=503, text=f"agent {agent_id} is not reachable\n")
        base = f"/frameworks/{fid}/executors/{executor_id}/runs/latest/tasks/{task_id}"
        mtimes = await self._mtimes(agent.address, base) if cutoff is not None else {}
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        writer = _LogWriter(response=response, timestamps=timestamps, limit=limit)
        if not follow:
            data = b""
            for name in ("stdout", "stderr"):
                path = f"{base}/{name}"
                whole = await self._read_all(agent.address, path)
                data += whole[self._since_offset(agent.address, path, whole, cutoff,
                                                 mtimes.get(name)):]
                self._observe(agent.address, path, len(whole))
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            await writer.write(data)
            await _finish(response)
            return response
        offsets = {}
        for name in ("stdout", "stderr"):
            path = f"{base}/{name}"
            data = await self._read_all(agent.address, path)
            offsets[path] = len(data)
            start = self._since_offset(agent.address, path, data, cutoff, mtimes.get(name))
            self._observe(agent.address, path, len(data))
            data = data[start:]
            if name == "stdout" and tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            if name == "stdout" or tail is None:
                if not await writer.write(data):
                    return response
        idle_after_finish = 0
        while True:
            grew = False
            for path, offset in offsets.items():
                chunk = await self._read_from(agent.address, path, offset)
                if chunk:
                    grew = True
                    offsets[path] = offset + len(chunk)
                    self._observe(agent.address, path, offsets[path])
                    if not await writer.write(chunk):
                        return response
            if not grew:
                where = self._locator.locate(namespace=ns, name=pod, container=container,
                                             previous=previous)
                if where is None or where[3]:
                    idle_after_finish += 1
                    if idle_after_finish >= 3:
                        break
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(FOLLOW_POLL)
        await _finish(response)
        return response

    # -- sinceSeconds ----------------------------------------------------------------------

    def _observe(self, address: str, path: str, size: int) -> None:
        """Remember that ``path`` held ``size`` bytes now (bounded per file and in files)."""
        key = (address, path)
        history = self._sizes.get(key)
        if history is None:
            history = self._sizes[key] = []
            while len(self._sizes) > SIZE_FILES:
                self._sizes.popitem(last=False)
        else:
            self._sizes.move_to_end(key)
        if history and history[-1][1] == size:
            return  # unchanged: the earlier observation is the stronger fact
        history.append((time.time(), size))
        if len(history) > SIZE_HISTORY:
            del history[: len(history) - SIZE_HISTORY]

    def _since_offset(
        self, address: str, path: str, data: bytes, cutoff: float | None, mtime: float | None
    ) -> int:
        """Where the output written at or after ``cutoff`` begins in ``data`` (see module doc)."""
        if cutoff is None or not data:
            return 0
        if mtime is not None and mtime + 1 <= cutoff:  # mtime may be whole seconds
            return len(data)
        start = 0
        for seen, size in self._sizes.get((address, path), ()):
            if seen > cutoff:
                break
            start = size if size <= len(data) else 0  # a shorter file was rewritten
        if 0 < start < len(data) and data[start - 1 : start] != b"\n":
            newline = data.find(b"\n", start)
            start = len(data) if newline < 0 else newline + 1
        return min(start, len(data))

    async def _browse(self, address: str, base: str) -> list[dict[str, Any]]:
        """The agent's ``/files/browse`` of a task sandbox ([] when it cannot be read)."""
        try:
            return await self._reader.browse(address, path=base)
        except mesos_agents.AgentsError as e:
            log.info("cannot browse %s on %s: %s", base, address, e)
            return []

    async def _mtimes(self, address: str, base: str) -> dict[str, float]:
        """stdout/stderr modification times from the agent's ``/files/browse``."""
        out: dict[str, float] = {}
        for entry in await self._browse(address, base):
            if isinstance(entry.get("mtime"), int | float):
                out[str(entry.get("path", "")).rsplit("/", 1)[-1]] = float(entry["mtime"])
        return out

    async def _sample_sizes(self) -> None:
        """Every ``log_sample_seconds``: record the log sizes of every running container."""
        period = self._settings.log_sample_seconds
        while True:
            await asyncio.sleep(period)
            try:
                await self._sample_once()
            except Exception:  # one bad pass must not end sampling; the next one retries
                log.exception("sampling log sizes failed")

    async def _sample_once(self) -> None:
        locator, agents = self._locator, self._agents
        if locator is None or agents is None or not locator.framework_id:
            return
        fid = locator.framework_id
        for pod in locator.running_pods():
            meta = pod.get("metadata") or {}
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
            for container in (pod.get("spec") or {}).get("containers") or []:
                where = locator.locate(namespace=ns, name=name,
                                       container=str(container.get("name")), previous=False)
                if where is None or where[3]:
                    continue
                agent = agents.agents.get(where[0])
                if agent is None:
                    continue
                base = f"/frameworks/{fid}/executors/{where[1]}/runs/latest/tasks/{where[2]}"
                for entry in await self._browse(agent.address, base):
                    leaf = str(entry.get("path", "")).rsplit("/", 1)[-1]
                    if leaf in ("stdout", "stderr") and isinstance(entry.get("size"), int):
                        self._observe(agent.address, f"{base}/{leaf}", int(entry["size"]))

    async def _read_from(self, address: str, path: str, offset: int) -> bytes:
        out = b""
        while len(out) < MAX_LOG_BYTES:
            try:
                data, _ = await self._reader.read_file(
                    address, path=path, offset=offset + len(out), length=READ_CHUNK
                )
            except mesos_agents.FileNotFound:
                break
            except mesos_agents.AgentsError as e:
                log.info("reading %s from %s failed: %s", path, address, e)
                break
            if not data:
                break
            out += data.encode("utf-8", "surrogateescape")
        return out

    async def _read_all(self, address: str, path: str) -> bytes:
        return await self._read_from(address, path, 0)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index_usage(agent_id: str, containers: list[dict[str, Any]], state: dict[str, Any]
                 ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Key an agent's GET_CONTAINERS statistics by executor id (top-level containers) and by
    task id (nested containers, matched through the tasks' latest container_status)."""
    nested_of: dict[str, str] = {}
    for fw in state.get("frameworks") or []:
        for ex in (fw.get("executors") or []) if isinstance(fw, dict) else []:
            for task in (ex.get("tasks") or []) if isinstance(ex, dict) else []:
                for st in reversed(task.get("statuses") or []):
                    cid = ((st.get("container_status") or {}).get("container_id") or {})
                    if isinstance(cid, dict) and cid.get("parent") and cid.get("value"):
                        nested_of[str(cid["value"])] = str(task.get("id") or "")
                        break
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in containers:
        usage = c.get("resource_statistics")
        cid = c.get("container_id") or {}
        if not isinstance(usage, dict) or not isinstance(cid, dict):
            continue
        if cid.get("parent"):
            task_id = nested_of.get(str(cid.get("value") or ""))
            if task_id:
                out[(agent_id, "task", task_id)] = usage
        else:
            eid = str((c.get("executor_id") or {}).get("value") or "")
            if eid:
                out[(agent_id, "executor", eid)] = usage
    return out


def _since_cutoff(query: Mapping[str, str], *, now: float) -> float | None:
    """The epoch time ``sinceSeconds`` (or ``sinceTime``, RFC 3339) asks for, or None."""
    if "sinceSeconds" in query and "sinceTime" in query:
        raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
    if "sinceSeconds" in query:
        try:
            seconds = int(query["sinceSeconds"])
        except ValueError as e:
            raise ValueError(f"bad sinceSeconds {query['sinceSeconds']!r}") from e
        if seconds < 1:
            raise ValueError("sinceSeconds must be a positive integer")
        return now - seconds
    if "sinceTime" in query:
        raw = query["sinceTime"]
        try:
            when = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"bad sinceTime {raw!r} (RFC 3339 expected)") from e
        if when.tzinfo is None:
            raise ValueError(f"bad sinceTime {raw!r} (no time zone)")
        return when.timestamp()
    return None


def _user_from_cert(peer: Any) -> UserInfo:
    """A verified client certificate: the CN is the user, each O a group (as Kubernetes)."""
    username = ""
    groups: list[str] = []
    for rdn in peer.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                username = str(value)
            elif attr == "organizationName":
                groups.append(str(value))
    return UserInfo(username=username, groups=(*groups, "system:authenticated"), method="x509")


async def _finish(response: web.StreamResponse) -> None:
    """End a streamed reply; a client that already went away is normal for ``-f``."""
    try:
        await response.write_eof()
    except ConnectionResetError:
        log.debug("log client went away before the end of the stream")


class _LogWriter:
    """Writes log bytes with optional RFC 3339 timestamps and a byte limit."""

    def __init__(self, *, response: web.StreamResponse, timestamps: bool, limit: int | None):
        self._response = response
        self._timestamps = timestamps
        self._left = limit
        self._at_line_start = True

    async def write(self, data: bytes) -> bool:
        """False once the limit is reached or the client went away."""
        if not data:
            return True
        if self._timestamps:
            stamp = (
                datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
                + b" "
            )
            out = bytearray()
            for line in data.splitlines(keepends=True):
                if self._at_line_start:
                    out += stamp
                out += line
                self._at_line_start = line.endswith(b"\n")
            data = bytes(out)
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        try:
            await self._response.write(data)
        except (ConnectionResetError, RuntimeError):
            return False
        return self._left is None or self._left > 0
