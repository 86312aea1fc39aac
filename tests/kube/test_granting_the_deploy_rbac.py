"""manifests/deploy/ grants the bridge every request it makes — checked by watching it work.

The bridge runs against the embedded kernel and devkube, but talks to devkube through a
recording HTTPS proxy. It then does what it does in production: registers its Node and Lease,
keeps its framework id, watches pods, binds and runs a pod that reads a ConfigMap and a Secret
(and, as every pod on Kubernetes, mounts its service-account token: a TokenRequest; the agent
isolates so the token's volume can be mounted), writes statuses and events, explains an
unschedulable pod, reviews a bearer token presented to its kubelet API, and deletes a pod
gracefully. devkube enforces RBAC, and the bridge runs with only the rights of the
ServiceAccount of ``manifests/deploy/rbac.yaml`` (applied to devkube, its token in the bridge's
kubeconfig): no request of the bridge may be refused (403). Every recorded request is also
turned into an RBAC attribute (verb, API group, resource, subresource, namespace) and must be
allowed by the ServiceAccount's rules as this test reads them — so a bridge change that needs a
new permission fails here until the manifest grants it. The manifests are also checked to parse and
to name the ServiceAccount, namespace and settings the bridge actually uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from k8sbridge import app, doctor
from k8sbridge import settings as bridge_settings
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.agent import config as agent_config
from k8sbridge.kernel.agent import filesystems
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import api as kubelet_api
from k8sbridge.leader import elector as leader_elector
from k8sbridge.leader import lease as leader_lease
from tests.integration.conftest import eventually, fast_settings

DEPLOY = Path(__file__).resolve().parents[2] / "manifests" / "deploy"
SA = ("k8sbridge", "k8sbridge")  # (namespace, name)

# Granted to every authenticated user by the default bindings (system:discovery,
# system:public-info-viewer): the non-resource URLs clients read.
DISCOVERY = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
# The built-in ClusterRole bound in rbac.yaml (its rules as Kubernetes bootstraps them).
BUILTIN_ROLES = {
    "system:auth-delegator": [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
         "verbs": ["create"]},
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Attributes:
    """What the RBAC authorizer sees for one request."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    path: str


def attributes(method: str, raw_path: str) -> Attributes | None:
    """RBAC attributes of a request, or None for a non-resource URL."""
    url = urllib.parse.urlsplit(raw_path)
    query = urllib.parse.parse_qs(url.query)
    parts = [p for p in url.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    watching = query.get("watch", ["false"])[0] in ("1", "true")
    verb = {
        "POST": "create", "PUT": "update", "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method, "watch" if watching else "get" if name else "list")
    return Attributes(verb, group, resource, subresource, namespace, url.path)


def _documents(name: str) -> list[dict[str, Any]]:
    with open(DEPLOY / name, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def granted_rules() -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) for every rule bound to the ServiceAccount."""
    docs = _documents("rbac.yaml")
    roles = {(d["kind"], (d["metadata"].get("namespace") or ""), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: list[tuple[str | None, dict[str, Any]]] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount"
                   and (s.get("namespace"), s.get("name")) == SA
                   for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        scope = (binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding"
                 else None)
        if ref["kind"] == "ClusterRole" and ref["name"] in BUILTIN_ROLES:
            rules = BUILTIN_ROLES[ref["name"]]
        else:
            ns = scope or "" if ref["kind"] == "Role" else ""
            rules = roles[(ref["kind"], ns, ref["name"])]["rules"]
        out.extend((scope, rule) for rule in rules)
    return out


def allowed(attrs: Attributes, rules: list[tuple[str | None, dict[str, Any]]]) -> bool:
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    for scope, rule in rules:
        if scope is not None and scope != attrs.namespace:
            continue
        if (attrs.group in rule.get("apiGroups", ()) or "*" in rule.get("apiGroups", ())) and (
            resource in rule.get("resources", ()) or "*" in rule.get("resources", ())
        ) and (attrs.verb in rule.get("verbs", ()) or "*" in rule.get("verbs", ())):
            return True
    return False


class RecordingProxy:
    """An HTTPS reverse proxy in front of devkube that records (method, path) and streams
    every answer back as it comes (watches included)."""

    def __init__(self, *, upstream: str, upstream_ca: Path | None, workdir: Path) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str, str]] = []  # (method, path, message) of each 403
        self._upstream_ssl = (ssl.create_default_context(cafile=str(upstream_ca))
                              if upstream_ca else False)
        self.cert, key = kubelet_api.generate_self_signed(workdir, hosts=["127.0.0.1"])
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(str(self.cert), str(key))
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        application = web.Application(client_max_size=64 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self._forward)
        # A watch whose client went away is cancelled (instead of waiting for devkube's next
        # bookmark), so stopping the proxy is quick.
        self._runner = web.AppRunner(application, handler_cancellation=True,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        self.requests.append((request.method, request.raw_path))
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        body = await request.read()
        async with self._http.request(
            request.method, self.upstream + request.raw_path, headers=headers, data=body,
            ssl=self._upstream_ssl, timeout=aiohttp.ClientTimeout(total=None),
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            })
            if upstream.status == 403:
                self.refused.append((request.method, request.raw_path,
                                     (await upstream.read()).decode(errors="replace")))
                response.headers.pop("Content-Encoding", None)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client or devkube went away mid-stream (a watch being stopped)
            return response


def _kubeconfig(path: Path, *, server: str, ca: Path, token: str | None) -> Path:
    user: dict[str, Any] = {"token": token} if token else {}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
        "clusters": [{"name": "proxy", "cluster": {"server": server,
                                                   "certificate-authority": str(ca)}}],
        "users": [{"name": "proxy", "user": user}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
    }))
    return path


@dataclasses.dataclass
class Recorded:
    proxy: RecordingProxy
    bridge: app.Bridge
    admin: Any  # a KubeClient straight to devkube (the test's own requests are not recorded)
    token: str | None


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[Recorded]:
    images = tmp_path / "images"
    images.mkdir()
    agent = agent_config.AgentConfig(
        master="127.0.0.1:0", work_dir=tmp_path / "agent", host="127.0.0.1",
        resources="cpus:4;mem:4096;disk:10240;ports:[31000-32000]", attributes="rack:r1",
        isolation=filesystems.FULL_ISOLATION, image_providers="docker",
        docker_registry=str(images),
    )
    master = master_config.MasterConfig(port=0, work_dir=tmp_path / "kernel")
    async with kernel_main.running_kernel(master=master, agents=[agent]) as kernel, \
            devkube_main.running(devkube_main.DevkubeConfig(
                port=0, data_dir=tmp_path / "dk", kubeconfig=tmp_path / "admin.kubeconfig",
            )) as dk:
        proxy = RecordingProxy(upstream=dk.url, upstream_ca=dk.ca_file, workdir=tmp_path)
        try:
            await proxy.start()
            admin = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
            try:
                # As `kubectl apply -f manifests/deploy/` does before the bridge starts
                # (kube-node-lease exists in every cluster, and in devkube): the namespace,
                # the ServiceAccount and its grants; the bridge runs with that account's token.
                await admin.ensure_namespace(SA[0])
                for doc in _documents("rbac.yaml"):
                    await admin.create(_collection(doc), doc)
                issued = await admin.create(
                    f"/api/v1/namespaces/{SA[0]}/serviceaccounts/{SA[1]}/token",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"expirationSeconds": 3600}})
                base = fast_settings(tmp_path / "run")
                settings = dataclasses.replace(
                    base,
                    mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
                    kube=dataclasses.replace(base.kube, kubeconfig=_kubeconfig(
                        tmp_path / "proxy.kubeconfig", server=proxy.url, ca=proxy.cert,
                        token=issued["status"]["token"])),
                    scheduler=dataclasses.replace(base.scheduler, image_mode="local",
                                                  image_dir=images,
                                                  scheduler_names=("k8sbridge",)),
                    kubelet=dataclasses.replace(base.kubelet, client_ca_file=dk.ca_file),
                )
                async with app.running_bridge(settings) as bridge:
                    yield Recorded(proxy=proxy, bridge=bridge, admin=admin, token=dk.token)
            finally:
                await admin.close()
        finally:
            await proxy.stop()


def _collection(doc: dict[str, Any]) -> str:
    """Where ``kubectl apply`` creates one of the manifests' objects."""
    group_version = doc["apiVersion"]
    base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    namespace = doc["metadata"].get("namespace")
    plural = doc["kind"].lower() + "s"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


def _pod(name: str, *, cpu: str = "100m", env: list[dict[str, Any]] | None = None,
         ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"},
        "spec": {"schedulerName": "k8sbridge", "terminationGracePeriodSeconds": 2,
                 "containers": [{"name": "c", "image": "busybox",
                                 "command": ["sleep", "600"], "env": env or [],
                                 "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}]},
    }


async def test_every_request_of_the_bridge_is_granted_by_the_deploy_rbac(
    recorded: Recorded,
) -> None:
    admin = recorded.admin
    await admin.ensure_namespace("apps")
    await admin.create("/api/v1/namespaces/apps/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"greeting": "hello"}})
    await admin.create("/api/v1/namespaces/apps/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
        "stringData": {"password": "s3cr3t"}})
    await admin.create("/api/v1/namespaces/apps/pods", _pod("reader", env=[
        {"name": "G", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
    ]))
    await admin.create("/api/v1/namespaces/apps/pods", _pod("huge", cpu="1000"))

    async def running() -> bool:
        pod = await admin.get_pod("apps", "reader")
        return (pod.get("status") or {}).get("phase") == "Running"

    async def explained() -> bool:
        pod = await admin.get_pod("apps", "huge")
        return any(c.get("reason") == "Unschedulable"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    await eventually(running, timeout=60, what="the pod reading a ConfigMap and a Secret")
    await eventually(explained, timeout=30, what="the unschedulable pod's explanation")

    # A bearer token presented to the kubelet API is reviewed with the API server.
    port = recorded.bridge.kubelet_port
    async with aiohttp.ClientSession() as http, http.get(
        f"https://127.0.0.1:{port}/pods", ssl=False,
        headers={"Authorization": f"Bearer {recorded.token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()

    # Graceful deletion: the bridge kills the task and makes the final DELETE.
    await admin.request("DELETE", "/api/v1/namespaces/apps/pods/reader")

    async def gone() -> bool:
        pods = (await admin.get("/api/v1/namespaces/apps/pods"))["items"]
        return all(p["metadata"]["name"] != "reader" for p in pods)

    await eventually(gone, timeout=30, what="the deleted pod to be gone")

    async def events_posted() -> bool:  # events are posted after the statuses
        return any(a is not None and (a.verb, a.resource) == ("create", "events")
                   for a in (attributes(m, p) for m, p in recorded.proxy.requests))

    await eventually(events_posted, timeout=30, what="the bridge's events")

    # A replica's leader election (settings.leader, on in bridge.yaml): acquire, renew, release.
    settings = recorded.bridge.settings
    kube = kube_client.KubeClient.from_kubeconfig(path=settings.kube.kubeconfig)
    try:
        elector = leader_elector.LeaderElector(
            lock=leader_lease.LeaseLock(kube=kube, namespace=settings.kube.namespace,
                                        name=settings.leader.lease_name),
            identity="replica-1",
            timing=leader_elector.ElectionTiming(lease_seconds=3, renew_deadline=2.0,
                                                 retry_period=0.2))
        assert await elector.acquire(asyncio.Event())
        holding = asyncio.create_task(elector.hold())
        await asyncio.sleep(0.5)  # a renewal or two
        assert not holding.done()
        holding.cancel()
        assert await elector.release()
    finally:
        await kube.close()

    assert not recorded.proxy.refused, "devkube's RBAC refused the bridge:\n" + "\n".join(
        f"{m} {p}: {message}" for m, p, message in recorded.proxy.refused)
    rules = granted_rules()
    seen = [(m, p, attributes(m, p)) for m, p in recorded.proxy.requests]
    resource_requests = {a for _, _, a in seen if a is not None}
    denied = sorted(
        {f"{a.verb} {a.resource}{'/' + a.subresource if a.subresource else ''} "
         f"(group {a.group or 'core'!r}, namespace {a.namespace or '-'!r}): {a.path}"
         for a in resource_requests if not allowed(a, rules)}
    )
    assert not denied, "requests the deploy RBAC does not grant:\n" + "\n".join(denied)
    others = {p for _, p, a in seen if a is None}
    assert all(urllib.parse.urlsplit(p).path.startswith(DISCOVERY) for p in others), others

    # The recording saw the bridge's real work (so the check above is not vacuous).
    done = {(a.verb, a.resource, a.subresource) for a in resource_requests}
    for expected in [("create", "pods", "binding"), ("patch", "pods", "status"),
                     ("watch", "pods", ""), ("create", "events", ""),
                     ("get", "configmaps", ""), ("get", "secrets", ""),
                     ("create", "tokenreviews", ""), ("delete", "pods", ""),
                     ("create", "serviceaccounts", "token")]:
        assert expected in done, (expected, sorted(done))
    assert any(a.resource == "leases" and a.namespace == "kube-node-lease"
               for a in resource_requests)
    assert {(a.verb, a.namespace) for a in resource_requests if a.resource == "leases"
            and a.namespace == SA[0]} == {("get", SA[0]), ("create", SA[0]), ("update", SA[0])}
    assert any(a.resource == "nodes" and a.verb in ("create", "patch")
               for a in resource_requests)


def test_a_rule_outside_the_grant_is_refused() -> None:
    """The checker itself: what rbac.yaml does not grant is refused."""
    rules = granted_rules()
    for method, path in [
        ("DELETE", "/api/v1/nodes"),  # deletecollection
        ("GET", "/api/v1/namespaces/apps/secrets"),  # list secrets: only get is granted
        ("POST", "/api/v1/namespaces/apps/pods"),  # the bridge never creates pods
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/apps/leases/x"),  # other namespace
        ("PATCH", "/api/v1/namespaces/other/configmaps/x"),  # own state only in k8sbridge
    ]:
        attrs = attributes(method, path)
        assert attrs is not None and not allowed(attrs, rules), (method, path)
    attrs = attributes("PATCH", "/api/v1/namespaces/k8sbridge/configmaps/k8sbridge-state")
    assert attrs is not None and allowed(attrs, rules)


def test_the_deployment_names_what_the_bridge_reads() -> None:
    """The Deployment runs the bridge alone (--master) as the RBAC's ServiceAccount, and its
    environment parses as settings."""
    docs = {d["kind"]: d for d in _documents("bridge.yaml")}
    namespace = _documents("namespace.yaml")[0]
    assert namespace["metadata"]["name"] == SA[0]
    deployment = docs["Deployment"]
    assert deployment["metadata"]["namespace"] == SA[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SA[1]
    # two replicas electing a leader, on different nodes when there are, one always left
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0,
                                                               "maxUnavailable": 1}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (term,) = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
    budget = docs["PodDisruptionBudget"]
    assert budget["metadata"]["namespace"] == SA[0]
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": labels}}
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "run" and "--master" in args  # never the embedded default in a cluster
    config = docs["ConfigMap"]["data"]
    env = {k: v for k, v in config.items() if k.startswith(bridge_settings.ENV_PREFIX)}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = {"status.podIP": "10.1.2.3",
                                 "metadata.namespace": SA[0]}[item["valueFrom"]["fieldRef"]
                                                              ["fieldPath"]]
    masters = config["masters"]
    settings = bridge_settings.load(env=env, flags={"mesos": {"masters": masters}})
    assert settings.mesos.masters == tuple(masters.split(","))
    assert settings.kubelet.advertise_address == "10.1.2.3"
    assert settings.kube.namespace == SA[0]
    assert settings.mesos.user == "nobody"
    assert settings.kubelet.client_ca_file is not None
    assert settings.leader.enabled
    # the bridge's own namespace grants writing its state ConfigMap
    state = attributes(
        "PATCH", f"/api/v1/namespaces/{settings.kube.namespace}/configmaps/"
        f"{settings.kube.state_configmap}")
    assert state is not None and allowed(state, granted_rules())


def test_the_doctor_checks_exactly_what_the_manifests_grant() -> None:
    # `k8sbridge doctor` asks a SelfSubjectAccessReview per permission of REQUIRED_ACCESS: the
    # same set the ServiceAccount is granted here (the bridge's own namespace symbolic).
    granted = set()
    for scope, rule in granted_rules():
        namespace = doctor.BRIDGE_NAMESPACE if scope == SA[0] else scope or ""
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    granted.add(doctor.Access(verb, group, resource, namespace))
    assert set(doctor.REQUIRED_ACCESS) == granted
    assert len(doctor.REQUIRED_ACCESS) == len(granted)  # no permission asked twice
