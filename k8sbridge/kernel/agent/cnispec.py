"""The CNI side of the ``network/cni`` isolator without any I/O: which networks a
configuration directory names, the environment and standard input of a plugin call, what a
plugin's answer means, and the network files (``hosts``, ``hostname``, ``resolv.conf``) of a
container, as Mesos' ``network/cni`` isolator (``cni.cpp``, ``spec.cpp``) words them.

Why a module of its own: the isolator's I/O (namespaces, plugin processes, files) is in
``cni``; what it decides is tested here on plain values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CNI_VERSION", "CniError", "Network", "Result", "container_networks", "hosts_file",
    "parse_network_config", "parse_result", "plugin_env", "plugin_input", "resolv_conf",
]

CNI_VERSION = "0.4.0"  # what our calls speak; the reference plugins answer in it


class CniError(Exception):
    """A network that cannot be joined; the message reaches the task's status."""


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """One network of ``--network_cni_config_dir``: its name, plugin type and configuration."""

    name: str
    plugin: str
    config: dict[str, Any]
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What ADD gave a container on one network: its addresses (without prefix length) and
    its DNS settings."""

    ips: tuple[str, ...]
    dns: dict[str, Any]

    def to_raw(self) -> dict[str, Any]:
        return {"ips": list(self.ips), "dns": self.dns}

    @classmethod
    def from_raw(cls, raw: Any) -> Result:
        if not isinstance(raw, dict):
            raise CniError("malformed network information")
        return cls(ips=tuple(str(ip) for ip in raw.get("ips") or []),
                   dns=dict(raw.get("dns") or {}))


def parse_network_config(text: str, *, path: str) -> Network:
    """A network configuration file: JSON with a ``name`` and a plugin ``type`` (Mesos reads
    single-plugin configurations)."""
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise CniError(f"Failed to parse CNI network configuration file '{path}': {e}") from None
    if not isinstance(raw, dict):
        raise CniError(f"Failed to parse CNI network configuration file '{path}': not an object")
    name, plugin = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise CniError(f"Failed to get network name from '{path}'")
    if not isinstance(plugin, str) or not plugin or "/" in plugin:
        raise CniError(f"Failed to get plugin type for network '{name}' from '{path}'")
    return Network(name=name, plugin=plugin, config=raw, path=path)


def container_networks(container_info: Any, known: Mapping[str, Network]) -> list[Network]:
    """The CNI networks a ``ContainerInfo`` joins, in order (its interfaces are ``eth0``,
    ``eth1``...); a name this agent does not have fails the launch with Mesos' message."""
    if not isinstance(container_info, dict):
        return []
    out: list[Network] = []
    for info in container_info.get("network_infos") or []:
        name = info.get("name") if isinstance(info, dict) else None
        if not name:
            continue
        if name not in known:
            raise CniError(f"Unknown CNI network '{name}'")
        if any(n.name == name for n in out):
            raise CniError(f"Attempted to join CNI network '{name}' multiple times")
        out.append(known[name])
    return out


def plugin_env(*, command: str, container_id: str, netns: str, ifname: str, plugins_dir: str,
               path: str) -> dict[str, str]:
    """The environment of a plugin call: the CNI specification's variables, and
    ``GOMAXPROCS=1`` for the Go runtime of the reference plugins (inherited by the IPAM
    plugin ``bridge`` runs). A plugin call is a few sequential netlink requests; with one
    processor the runtime starts no idle workers that spin looking for goroutines, which cut
    the plugins' CPU per attach by ~3 ms and per detach by ~4 ms here (``bench_cni_attach``,
    2 cores). Plugins in other languages ignore it."""
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_PATH": plugins_dir, "PATH": path, "GOMAXPROCS": "1"}


def plugin_input(network: Network, *, network_info: Mapping[str, Any]) -> bytes:
    """A plugin's standard input: the network's configuration with the framework's
    ``NetworkInfo`` under ``args`` (Mesos' ``org.apache.mesos`` key)."""
    config = dict(network.config)
    config.setdefault("cniVersion", CNI_VERSION)
    args = dict(config.get("args") or {})
    args["org.apache.mesos"] = {"network_info": dict(network_info)}
    config["args"] = args
    return json.dumps(config).encode()


def parse_result(stdout: bytes, *, plugin: str) -> Result:
    """A successful ADD's answer: the 0.3+ ``ips`` list (or 0.2's ``ip4``/``ip6``)."""
    try:
        raw = json.loads(stdout)
    except ValueError as e:
        raise CniError(f"Failed to parse the output of the CNI plugin '{plugin}': {e}") from None
    if not isinstance(raw, dict):
        raise CniError(f"Failed to parse the output of the CNI plugin '{plugin}': not an object")
    found: list[str] = []
    for entry in raw.get("ips") or []:
        if isinstance(entry, dict) and isinstance(entry.get("address"), str):
            found.append(entry["address"])
    for key in ("ip4", "ip6"):
        old = raw.get(key)
        if isinstance(old, dict) and isinstance(old.get("ip"), str):
            found.append(old["ip"])
    ips: list[str] = []
    for address in found:
        try:
            ips.append(str(ipaddress.ip_interface(address).ip))
        except ValueError:
            raise CniError(f"Unable to parse the IP address {address} for the "
                           "container") from None
    dns = raw.get("dns") if isinstance(raw.get("dns"), dict) else {}
    return Result(ips=tuple(ips), dns=dict(dns or {}))


def plugin_error(plugin: str, *, container_id: str, network: str, code: int | None,
                 stdout: bytes, stderr: bytes) -> str:
    """Why ADD failed, with the plugin's own error message (its JSON ``msg``), as Mesos
    reports it."""
    out = stdout.decode(errors="replace").strip()
    err = stderr.decode(errors="replace").strip()
    with_code = "" if code is None else f" (exit status {code})"
    return (f"The CNI plugin '{plugin}' failed to attach container {container_id} to CNI "
            f"network '{network}'{with_code}: stdout='{out}', stderr='{err}'")


def hosts_file(*, hostname: str, ips: list[str]) -> str:
    """The container's ``/etc/hosts``: localhost, and its first IPv4 address with its
    hostname."""
    lines = ["127.0.0.1 localhost"]
    for ip in ips:
        if ipaddress.ip_address(ip).version == 4:
            lines.append(f"{ip} {hostname}")
            break
    return "\n".join(lines) + "\n"


def resolv_conf(dns: Mapping[str, Any]) -> str | None:
    """A ``resolv.conf`` from a plugin's DNS answer; None when it gave none (the container
    then gets the host's)."""
    servers = [str(s) for s in dns.get("nameservers") or []]
    search = [str(s) for s in dns.get("search") or []]
    options = [str(s) for s in dns.get("options") or []]
    if not (servers or search or options or dns.get("domain")):
        return None
    lines = [f"nameserver {s}" for s in servers]
    if dns.get("domain"):
        lines.append(f"domain {dns['domain']}")
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
