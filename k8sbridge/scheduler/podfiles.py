"""The files a kubelet writes into every container: ``/etc/hosts``, ``/etc/resolv.conf`` and
``/etc/hostname`` (pure: the pod and the cluster's network settings in, file contents out).

Why: a container that resolves its own name to nothing, never sees its ``hostAliases``, or
asks the agent's resolver for ``web.default.svc.cluster.local`` is the silent difference from
a kubelet this project refuses. The contents follow the kubelet (``pkg/kubelet/
kubelet_pods.go`` ``managedHostsFileContent`` / ``GeneratePodHostNameAndDomain``,
``pkg/kubelet/network/dns/dns.go`` ``GetPodDNS``, ``pkg/kubelet/util`` ``GetNodenameForKernel``)
and containerd's file formats; each file becomes one ``SECRET`` volume (a ``VALUE``) at its
absolute path in every container, as configMap files do (``volumes``), read-write like the
kubelet's mounts. Rules:

* hostname: ``hostnameOverride``, else ``spec.hostname``, else the pod's name (at most 63
  characters); with ``subdomain`` the domain is ``<subdomain>.<ns>.svc.<cluster domain>``.
  ``/etc/hostname`` holds it (the FQDN with ``setHostnameAsFQDN``, at most 64 characters).
  Mesos sets ``ContainerInfo.hostname`` in the UTS namespace only for containers on a CNI
  network (``network/cni``): pods on the agent's network (hostNetwork, a hostPort, or
  ``scheduler.pod_network`` empty) still answer the agent's name to ``hostname``.
* ``/etc/hosts``: the localhost lines, the pod's IPs with the hostname (FQDN first when there
  is a domain), then ``hostAliases``. The pod IP is an input (the agent's address for a pod on
  the agent's network, which the bridge reports as ``status.podIP``).
* ``/etc/resolv.conf`` per ``dnsPolicy``: ``ClusterFirst`` (and ``ClusterFirstWithHostNet``)
  → the cluster DNS servers (setting ``scheduler.cluster_dns``), search
  ``<ns>.svc.<domain> svc.<domain> <domain>``, ``options ndots:5``; the kubelet also appends
  the node's search domains, which the bridge cannot read on an agent, so they are left out.
  No cluster DNS → ``Default`` with the kubelet's ``MissingClusterDNS`` warning. ``Default``
  → the agent's own file (no volume: the agent provides it, as Mesos' ``network/cni`` does in
  host mode). ``None`` → ``dnsConfig`` alone. ``dnsConfig`` is merged as dns.go merges it
  (servers and searches appended without duplicates, options by name) and cut to its limits
  (3 nameservers, 32 search paths, 2048 characters) with the kubelet's ``DNSConfigForming``
  warning. ``dnsConfig`` on top of the agent's file cannot be merged (the bridge cannot read
  it) and is refused.
* a pod on a CNI network (``Network.own_network``, ``podnet``): its IP is the network's, known
  only once Mesos' ``network/cni`` isolator attached it, and that isolator writes the pod's
  ``/etc/hosts`` (localhost and ``<pod IP> <hostname>``) and ``/etc/hostname`` from the
  executor's ``ContainerInfo.hostname`` (the hostname, or the FQDN with
  ``setHostnameAsFQDN``), which also names the pod's UTS namespace: the bridge sends neither
  file; ``hostAliases`` would have to be written next to an IP it does not know, so they are
  refused; a ``subdomain``'s FQDN is not in that ``/etc/hosts`` (cluster DNS answers it).
* ``hostNetwork: true``: the agent's ``/etc/hosts`` and ``/etc/hostname`` (what a kubelet
  gives, less its header line); ``hostAliases`` would have to be appended to the agent's file,
  which the bridge cannot read, so they are refused.
* a container that mounts a volume at one of these paths keeps its volume (as the kubelet).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge.scheduler import limits, podenv

__all__ = [
    "ETC_HOSTNAME",
    "ETC_HOSTS",
    "ETC_RESOLV_CONF",
    "MAX_NAMESERVERS",
    "MAX_SEARCH_CHARS",
    "MAX_SEARCH_PATHS",
    "Network",
    "PodFiles",
    "container_volumes",
    "host_and_domain",
    "render",
]

Json = dict[str, Any]
RawPod = Mapping[str, Any]

ETC_HOSTS = "/etc/hosts"
ETC_RESOLV_CONF = "/etc/resolv.conf"
ETC_HOSTNAME = "/etc/hostname"

MAX_NAMESERVERS = 3  # validation.MaxDNSNameservers
MAX_SEARCH_PATHS = 32  # validation.MaxDNSSearchPathsExpanded
MAX_SEARCH_CHARS = 2048  # validation.MaxDNSSearchListCharsExpanded
MAX_SEARCH_LENGTH = 253  # a DNS-1123 subdomain
HOSTNAME_MAX = 63
FQDN_MAX = 64  # the kernel's nodename field
DEFAULT_OPTIONS = ("ndots:5",)

REASON_MISSING_CLUSTER_DNS = "MissingClusterDNS"
REASON_DNS_CONFIG_FORMING = "DNSConfigForming"
HOST_ALIASES_OWN_NETWORK = (
    "spec.hostAliases cannot be honoured on a CNI network: the pod's IP is known only once "
    "the agent's network/cni isolator attached it, and that isolator writes the pod's "
    "/etc/hosts (its hostname and IP); use hostNetwork, or a DNS name")
POD_FILES_OFF = ("scheduler.pod_files is off: the agents are not known to take SECRET volumes, "
                 "so containers see the agent's /etc/hosts, /etc/resolv.conf and /etc/hostname")

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
_LOCALHOST = ("127.0.0.1\tlocalhost\n"
              "::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\n"
              "fe00::0\tip6-mcastprefix\n"
              "fe00::1\tip6-allnodes\n"
              "fe00::2\tip6-allrouters\n")


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """What the files are made of besides the pod: its IPs at launch and the cluster's DNS.
    ``enabled`` False: the agents take no SECRET volumes (setting ``scheduler.pod_files``)."""

    pod_ips: tuple[str, ...] = ()
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    enabled: bool = True
    # the pod joins a CNI network (``podnet``): Mesos' network/cni isolator writes its
    # /etc/hosts and /etc/hostname from ContainerInfo.hostname and the IP it got
    own_network: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PodFiles:
    """The files every container gets ((absolute path, content); a path not listed is the
    agent's own file) and what the pod is told about them."""

    files: tuple[tuple[str, bytes], ...] = ()
    notices: tuple[limits.Notice, ...] = ()
    hostname: str = ""  # the executor's ContainerInfo.hostname (pods on a CNI network)


def _refuse(message: str) -> podenv.LaunchError:
    return podenv.LaunchError(message)


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL.match(value))


def is_dns_subdomain(value: str) -> bool:
    return (0 < len(value) <= MAX_SEARCH_LENGTH
            and all(is_dns_label(part) for part in value.split(".")))


def _truncate(pod_name: str, hostname: str) -> str:
    if len(hostname) <= HOSTNAME_MAX:
        return hostname
    truncated = hostname[:HOSTNAME_MAX].rstrip("-.")
    if not truncated:
        raise _refuse(f'hostname for pod "{pod_name}" was invalid: "{hostname}"')
    return truncated


def host_and_domain(pod: RawPod, *, cluster_domain: str) -> tuple[str, str]:
    """The pod's hostname and its domain ("" for none), as ``GeneratePodHostNameAndDomain``."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    override = spec.get("hostnameOverride")
    if override:
        text = str(override)
        if not is_dns_subdomain(text):
            raise _refuse(f'pod HostnameOverride "{text}" is not a valid DNS subdomain')
        return _truncate(name, text), ""
    hostname = name
    if spec.get("hostname"):
        hostname = str(spec["hostname"])
        if not is_dns_label(hostname):
            raise _refuse(f'pod Hostname "{hostname}" is not a valid DNS label')
    hostname = _truncate(name, hostname)
    domain = ""
    if spec.get("subdomain"):
        sub = str(spec["subdomain"])
        if not is_dns_label(sub):
            raise _refuse(f'pod Subdomain "{sub}" is not a valid DNS label')
        namespace = str(meta.get("namespace") or "default")
        domain = f"{sub}.{namespace}.svc.{cluster_domain}"
    return hostname, domain


def _hosts(spec: Mapping[str, Any], *, pod_ips: Sequence[str], hostname: str,
           domain: str) -> bytes:
    out = [_HOSTS_HEADER, _LOCALHOST]
    for ip in pod_ips:
        out.append(f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain
                   else f"{ip}\t{hostname}\n")
    aliases = spec.get("hostAliases") or []
    if aliases:
        out.append("\n# Entries added by HostAliases.\n")
        for i, alias in enumerate(aliases):
            ip = str((alias or {}).get("ip") or "")
            try:
                ipaddress.ip_address(ip)
            except ValueError as e:
                raise _refuse(f"spec.hostAliases[{i}].ip {ip!r} is not an IP address") from e
            names = [str(n) for n in (alias or {}).get("hostnames") or []]
            out.append(f"{ip}\t" + "\t".join(names) + "\n")
    return "".join(out).encode()


def _pod_label(pod: RawPod) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace') or 'default'}({meta.get('uid')})"


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(existing: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    options: dict[str, str] = {}
    for option in existing:
        name, _, text = option.partition(":")
        options[name] = text
    for item in extra:
        value = item.get("value")
        options[str(item.get("name") or "")] = "" if value is None else str(value)
    return [f"{k}:{v}" if v else k for k, v in options.items()]


def _fit_searches(searches: list[str], notices: list[limits.Notice]) -> list[str]:
    exceeded = len(searches) > MAX_SEARCH_PATHS
    searches = searches[:MAX_SEARCH_PATHS]
    kept = [s for s in searches if len(s) <= MAX_SEARCH_LENGTH]
    exceeded = exceeded or len(kept) != len(searches)
    line = len(" ".join(kept))
    if line > MAX_SEARCH_CHARS:
        cut = 0
        while kept and line - cut > MAX_SEARCH_CHARS:
            cut += len(kept.pop()) + 1
        exceeded = True
    if exceeded:
        notices.append(limits.Notice(
            reason=REASON_DNS_CONFIG_FORMING,
            message="Search Line limits were exceeded, some search paths have been omitted, "
                    f"the applied search line is: {' '.join(kept)}"))
    return kept


def _fit_servers(servers: list[str], notices: list[limits.Notice]) -> list[str]:
    if len(servers) <= MAX_NAMESERVERS:
        return servers
    servers = servers[:MAX_NAMESERVERS]
    notices.append(limits.Notice(
        reason=REASON_DNS_CONFIG_FORMING,
        message="Nameserver limits were exceeded, some nameservers have been omitted, the "
                f"applied nameserver line is: {' '.join(servers)}"))
    return servers


def _resolv_conf(pod: RawPod, *, network: Network,
                 notices: list[limits.Notice]) -> bytes | None:
    """The pod's resolv.conf, or None for the agent's own."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    config = spec.get("dnsConfig")
    host_network = bool(spec.get("hostNetwork"))
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "None":
        pass
    elif policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network):
        if network.cluster_dns:
            domain = network.cluster_domain
            namespace = str(meta.get("namespace") or "default")
            servers = list(network.cluster_dns)
            searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
            options = list(DEFAULT_OPTIONS)
        else:
            message = ("kubelet does not have ClusterDNS IP configured and cannot create Pod "
                       'using "ClusterFirst" policy. Falling back to "Default" policy.')
            notices.append(limits.Notice(reason=REASON_MISSING_CLUSTER_DNS,
                                         message=f'pod: "{_pod_label(pod)}". {message}'))
            policy = "Default"
    elif policy not in ("ClusterFirst", "Default"):
        raise _refuse(f"spec.dnsPolicy {policy!r} is not a DNS policy (ClusterFirst, "
                      "ClusterFirstWithHostNet, Default or None)")
    else:
        policy = "Default"
    if policy == "Default":
        if config:
            raise _refuse("spec.dnsConfig cannot be honoured with the agent's own resolv.conf "
                          "(dnsPolicy Default, hostNetwork with ClusterFirst, or ClusterFirst "
                          "without scheduler.cluster_dns): the kubelet merges it into the "
                          "node's file, which k8sbridge cannot read on an agent")
        return None
    if config:
        servers = _unique([*servers, *(str(s) for s in config.get("nameservers") or [])])
        searches = _unique([*searches, *(str(s) for s in config.get("searches") or [])])
        options = _merge_options(options, config.get("options") or [])
    servers = _fit_servers(servers, notices)
    searches = _fit_searches(searches, notices)
    text = ""
    if searches:
        text += f"search {' '.join(searches)}\n"
    text += "".join(f"nameserver {s}\n" for s in servers)
    if options:
        text += f"options {' '.join(options)}\n"
    return text.encode()


def _needs_files(spec: Mapping[str, Any]) -> str | None:
    """The first field that asks for a file of the pod's own (pod files off)."""
    for field in ("hostAliases", "dnsConfig", "hostname", "subdomain", "setHostnameAsFQDN",
                  "hostnameOverride"):
        if spec.get(field):
            return field
    if spec.get("dnsPolicy") in ("None", "ClusterFirstWithHostNet"):
        return "dnsPolicy"
    return None


def render(pod: RawPod, *, network: Network) -> PodFiles:
    """The pod's files (``LaunchError`` naming the field when one cannot be given)."""
    spec = pod.get("spec") or {}
    notices: list[limits.Notice] = []
    if not network.enabled:
        field = _needs_files(spec)
        if field is not None:
            raise _refuse(f"spec.{field} cannot be honoured: {POD_FILES_OFF}")
        if network.cluster_dns and spec.get("dnsPolicy", "ClusterFirst") == "ClusterFirst" \
                and not spec.get("hostNetwork"):
            raise _refuse(f"spec.dnsPolicy ClusterFirst cannot be honoured: {POD_FILES_OFF}")
        _resolv_conf(pod, network=network, notices=notices)  # the MissingClusterDNS notice
        return PodFiles(notices=tuple(notices))
    hostname, domain = host_and_domain(pod, cluster_domain=network.cluster_domain)
    files: list[tuple[str, bytes]] = []
    kernel_name = ""
    if network.own_network:
        if spec.get("hostAliases"):
            raise _refuse(HOST_ALIASES_OWN_NETWORK)
        kernel_name = _kernel_name(spec, hostname=hostname, domain=domain)
    elif spec.get("hostNetwork"):
        if spec.get("hostAliases"):
            raise _refuse("spec.hostAliases cannot be honoured with hostNetwork: the kubelet "
                          "appends them to the node's /etc/hosts, which k8sbridge cannot read "
                          "on an agent")
    else:
        files.append((ETC_HOSTS, _hosts(spec, pod_ips=network.pod_ips, hostname=hostname,
                                        domain=domain)))
        files.append((ETC_HOSTNAME,
                      f"{_kernel_name(spec, hostname=hostname, domain=domain)}\n".encode()))
    resolv = _resolv_conf(pod, network=network, notices=notices)
    if resolv is not None:
        files.append((ETC_RESOLV_CONF, resolv))
    return PodFiles(files=tuple(files), notices=tuple(notices), hostname=kernel_name)


def _kernel_name(spec: Mapping[str, Any], *, hostname: str, domain: str) -> str:
    """The name the pod's UTS namespace gets (``setHostnameAsFQDN``: the FQDN)."""
    if not (domain and spec.get("setHostnameAsFQDN")):
        return hostname
    fqdn = f"{hostname}.{domain}"
    if len(fqdn) > FQDN_MAX:
        raise _refuse("failed to construct FQDN from pod hostname and cluster domain, "
                      f"FQDN {fqdn} is too long ({FQDN_MAX} characters is the max, "
                      f"{len(fqdn)} characters requested)")
    return fqdn


def container_volumes(files: PodFiles, container: Mapping[str, Any]) -> list[Json]:
    """``ContainerInfo.volumes`` entries for the pod's files in ``container`` (a path the
    container mounts a volume at keeps that volume)."""
    mounted = {posixpath.normpath(str(m.get("mountPath") or ""))
               for m in container.get("volumeMounts") or []}
    return [{"container_path": path, "mode": "RW",
             "source": {"type": "SECRET", "secret": {
                 "type": "VALUE", "value": {"data": base64.b64encode(data).decode()}}}}
            for path, data in files.files if path not in mounted]
