"""The Service environment variables a kubelet gives every container, and the Services they
come from.

Why: a pod finds a Service by ``{SVC}_SERVICE_HOST``/``_PORT`` (and Docker's link variables)
before it finds it by name; every kubelet injects them (``pkg/kubelet/envvars``,
``getServiceEnvVarMap`` in ``kubelet_pods.go``), so manifests rely on them. The rules copied:

- only Services with a ClusterIP (not ``None``, not empty: headless and ExternalName ones
  give nothing);
- the pod's namespace's Services when ``enableServiceLinks`` is true or unset (the API
  server defaults it to true), and always the ``kubernetes`` Service of ``default`` (the
  master service); a Service of that name in the pod's own namespace wins over it;
- only the Services that exist when the pod starts: the variables are rendered at launch
  from the bridge's Service cache (``ServiceBook``, kept by the watch) and never change;
- the container's own variables win (``resolve_env`` adds these only where it set none) and
  its ``$(VAR)`` references may name them.

``scheduler.api_service_host``, when set, stands in for the master service's address (the
``kubernetes`` Service's ClusterIP is then not used): an operator's override for clusters
whose service proxy does not answer it. Pure: the book is a dict the loop's watch callback
updates; rendering takes a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASTER_NAMESPACE", "MASTER_SERVICES", "NOT_SYNCED", "ServiceBook", "link_env",
           "pod_service_env", "service_env"]

RawService = Mapping[str, Any]

MASTER_NAMESPACE = "default"
MASTER_SERVICES = frozenset({"kubernetes"})  # the kubelet's masterServices
HEADLESS = "None"
# the kubelet's refusal while its Service informer has not synced (kubelet_pods.go)
NOT_SYNCED = "services have not yet been read at least once, cannot construct envvars"


class ServiceBook:
    """Namespace/name → the latest raw Service the watch delivered (or a listing replaced).

    ``synced`` is false until one full listing was applied (``replace``): before that the
    book may miss Services, and a kubelet refuses to build a container's variables. Events
    that arrive while a listing is read (``begin_listing``) are applied again after it, so
    an older listing never undoes a newer event."""

    __slots__ = ("_during_listing", "_services", "synced")

    def __init__(self) -> None:
        self._services: dict[tuple[str, str], RawService] = {}
        self._during_listing: list[tuple[str | None, RawService]] | None = None
        self.synced = False

    def __len__(self) -> int:
        return len(self._services)

    def observe(self, etype: str | None, raw: RawService) -> None:
        """Apply one watch event (``None``: an object of kopf's initial listing)."""
        key = _key(raw)
        if not key[1]:
            return
        if self._during_listing is not None:
            self._during_listing.append((etype, raw))
        if etype == "DELETED":
            self._services.pop(key, None)
        else:
            self._services[key] = raw

    def begin_listing(self) -> None:
        """A listing is being read: remember the events until ``replace`` or ``abandon``."""
        self._during_listing = []

    def abandon_listing(self) -> None:
        self._during_listing = None

    def replace(self, items: Iterable[RawService]) -> None:
        """A full listing: the book holds exactly these (and the events seen since
        ``begin_listing``) from now on, and is synced."""
        replay, self._during_listing = self._during_listing or [], None
        self._services = {k: s for s in items if (k := _key(s))[1]}
        for etype, raw in replay:
            self.observe(etype, raw)
        self.synced = True

    def snapshot(self) -> tuple[RawService, ...]:
        return tuple(self._services.values())


def _key(raw: RawService) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _cluster_ip(service: RawService) -> str:
    ip = (service.get("spec") or {}).get("clusterIP")
    return "" if ip in (None, "", HEADLESS) else str(ip)


def pod_service_env(
    services: Iterable[RawService],
    *,
    namespace: str,
    enable_links: bool,
    api_host: str = "",
    api_port: int = 443,
) -> dict[str, str]:
    """The kubelet's ``getServiceEnvVarMap`` for a pod of ``namespace``: the variables of the
    Services it sees. ``api_host`` (setting ``scheduler.api_service_host``): the master
    service is that address and ``api_port`` (its port named ``https``) instead."""
    chosen: dict[str, RawService] = {}
    own: dict[str, RawService] = {}
    for service in services:
        ns, name = _key(service)
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            if not api_host and _cluster_ip(service):
                chosen[name] = service
        elif ns == namespace and enable_links and _cluster_ip(service):
            own[name] = service
    if api_host:
        chosen["kubernetes"] = {
            "metadata": {"namespace": MASTER_NAMESPACE, "name": "kubernetes"},
            "spec": {"clusterIP": api_host,
                     "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]},
        }
    chosen.update(own)  # a namespace's own Service of a master service's name wins
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(service_env(chosen[name]))
    return out


def _var(name: str) -> str:
    """``makeEnvVariableName``: upper case, dashes to underscores."""
    return name.replace("-", "_").upper()


def service_env(service: RawService) -> list[tuple[str, str]]:
    """``envvars.FromServices`` for one Service: host, first port, named ports, links."""
    ip = _cluster_ip(service)
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    if not ip or not ports:
        return []
    name = _var(_key(service)[1])
    port_var = f"{name}_SERVICE_PORT"
    out = [(f"{name}_SERVICE_HOST", ip), (port_var, str(ports[0].get("port")))]
    for port in ports:
        if port.get("name"):
            out.append((f"{port_var}_{_var(str(port['name']))}", str(port.get("port"))))
    return out + link_env(name, ip, ports)


def link_env(prefix: str, ip: str, ports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``makeLinkVariables``: Docker's link variables, the first port also as ``{SVC}_PORT``."""
    host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
    out: list[tuple[str, str]] = []
    for i, port in enumerate(ports):
        protocol = str(port.get("protocol") or "TCP")
        number = str(port.get("port"))
        url = f"{protocol.lower()}://{host}:{number}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        base = f"{prefix}_PORT_{number}_{protocol.upper()}"
        out += [(base, url), (f"{base}_PROTO", protocol.lower()), (f"{base}_PORT", number),
                (f"{base}_ADDR", ip)]
    return out

