"""The embedded cluster network: a network namespace of its own (``k8sbridge-<id>``) that
holds every agent's CNI bridge and gateway, and the CNI configuration each agent's
``network/cni`` isolator reads.

Why a namespace of its own: pod addresses must never appear in the machine's namespace (no
bridge, veth or route to the pod range there), as kind's nodes share a network of their own.
The agents run the reference plugins inside it (``--network_cni_plugins_netns``), so the
``bridge`` plugin makes its bridge and the host ends of the veths there; tests and tools
reach pods from inside it (``ip netns exec``).

Why one cluster CIDR split into a subnet per agent (``/24`` of a ``/16`` by default, as
kube-controller-manager's ``--node-cidr-mask-size``): every agent's ``host-local`` IPAM then
hands out addresses no other agent can, and since all bridges are in the one namespace
(with forwarding on) a pod on one agent reaches a pod on another through its gateway with
no routing daemon. The last ``/24`` is no agent's: its last address (``10.88.255.254`` by
default) is the Kubernetes API server's, on the namespace's loopback. Each agent has its own
bridge (``k8sbr<index>``): the ``bridge`` plugin gives a bridge one IPv4 gateway address.
IPAM state is in the agent's runtime directory (``ipam_dir``), which outlives the agent, so a
restarted agent's surviving pods keep their addresses.

Why a ``dns`` section in the configuration (when one is given): the ``bridge`` plugin returns a
configuration's ``dns`` as its result's, and Mesos' ``network/cni`` isolator writes a
container's ``resolv.conf`` from that result (the host's otherwise). So a Mesos task of any
framework that joins the network (Marathon's ``networks: [{mode: container}]``) resolves
names through the cluster DNS, as pods do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cni

__all__ = ["DEFAULT_CLUSTER_CIDR", "DEFAULT_NETWORK_NAME", "REQUIRED_PLUGINS", "ClusterNetwork",
           "NetworkError", "missing_plugins"]

DEFAULT_CLUSTER_CIDR = "10.88.0.0/16"
DEFAULT_NETWORK_NAME = "k8sbridge"
PLUGINS_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
REQUIRED_PLUGINS = ("bridge", "host-local")  # the agents bring each namespace's lo up themselves


def missing_plugins(plugins_dir: str = PLUGINS_DIR) -> list[str]:
    """The reference plugins the cluster network needs that ``plugins_dir`` lacks."""
    return [p for p in REQUIRED_PLUGINS if not os.access(Path(plugins_dir) / p, os.X_OK)]


class NetworkError(Exception):
    """The cluster network cannot be made (the message says which command failed)."""


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


@dataclasses.dataclass(slots=True)
class ClusterNetwork:
    """A cluster network namespace and its per-agent CNI configurations."""

    cidr: str = DEFAULT_CLUSTER_CIDR
    agent_prefix: int = 24
    network_name: str = DEFAULT_NETWORK_NAME
    name: str = dataclasses.field(default_factory=lambda: f"k8sbridge-{secrets.token_hex(4)}")
    plugins_dir: str = PLUGINS_DIR
    # the CNI ``dns`` section (nameservers, search, options) tasks on the network get; {}: none
    # (they get the agent's resolv.conf)
    dns: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        cluster = ipaddress.ip_network(self.cidr)
        if not cluster.prefixlen < self.agent_prefix <= cluster.max_prefixlen - 2:
            raise NetworkError(f"cannot split {self.cidr} into /{self.agent_prefix} agent "
                               "subnets")

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def api_address(self) -> str:
        """The cluster network's reserved address for the Kubernetes API server (the last
        usable address of the cluster CIDR, in the last agent-sized subnet, which no agent
        gets), on the cluster namespace's loopback: every pod reaches it through its
        gateway, as pods of a kind cluster reach the API server's node."""
        return str(ipaddress.ip_network(self.cidr).broadcast_address - 1)

    def create(self) -> None:
        """The namespace, its loopback up with the API server's address (``api_address``)
        and forwarding on (pods of different agents)."""
        _run(["ip", "netns", "add", self.name])
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
            _run(["ip", "-n", self.name, "addr", "add", f"{self.api_address}/32", "dev", "lo"])
            _run(["ip", "netns", "exec", self.name, "sysctl", "-q", "-w",
                  "net.ipv4.ip_forward=1"])
        except NetworkError:
            self.remove()
            raise

    def remove(self) -> None:
        """The namespace, and with it every bridge and veth end in it."""
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)

    def agent_subnet(self, index: int) -> str:
        """Agent ``index``'s subnet (the last one holds ``api_address``: no agent's)."""
        cluster = ipaddress.ip_network(self.cidr)
        count = 1 << (self.agent_prefix - cluster.prefixlen)
        if not 0 <= index < count - 1:
            raise NetworkError(f"{self.cidr} has no /{self.agent_prefix} subnet for agent "
                               f"{index}")
        size = 1 << (cluster.max_prefixlen - self.agent_prefix)
        first = cluster.network_address + index * size
        return f"{first}/{self.agent_prefix}"

    def agent_config(self, index: int, *, work_dir: Path) -> dict[str, Any]:
        """The CNI configuration of agent ``index``: the reference ``bridge`` plugin with
        ``host-local`` IPAM on the agent's subnet, leases in ``ipam_dir``, and the
        network's ``dns`` section if it has one."""
        config: dict[str, Any] = {
            "cniVersion": "0.4.0",
            "name": self.network_name,
            "type": "bridge",
            "bridge": f"k8sbr{index}",
            "isGateway": True,
            "isDefaultGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "subnet": self.agent_subnet(index),
                     "dataDir": str(self.ipam_dir(work_dir=work_dir))},
        }
        if self.dns:
            config["dns"] = dict(self.dns)
        return config

    @staticmethod
    def ipam_dir(*, work_dir: Path) -> Path:
        """Where the agent working in ``work_dir`` keeps its ``host-local`` leases: its
        runtime directory (``cni.runtime_dir``, on a tmpfs), as kind's ``kindnet`` keeps them
        in ``/run/cni-ipam-state``."""
        return cni.runtime_dir(work_dir=work_dir.resolve()) / "ipam"

    def agent_flags(self, index: int, *, work_dir: Path) -> dict[str, Any]:
        """``AgentConfig`` fields for agent ``index`` (its configuration written to
        ``<work_dir>/network/cni``)."""
        config_dir = work_dir / "network" / "cni"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / f"{self.network_name}.conf").write_text(
            json.dumps(self.agent_config(index, work_dir=work_dir), indent=2) + "\n")
        return {"network_cni_config_dir": str(config_dir),
                "network_cni_plugins_dir": self.plugins_dir,
                "network_cni_plugins_netns": self.netns_path}
