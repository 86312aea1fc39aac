"""The embedded default's pod network pieces: the cluster network namespace (made on start,
removed on stop, a killed run's left-over removed by the next), and the argv of the two
children that live in it, the cluster DNS and the service proxy.

Why apart from ``embedded``: the network side of ``k8sbridge run`` grew with issue 14 (DNS,
proxy) past what one module should hold; ``embedded`` starts the children, this says how each
network piece is made and named.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from k8sbridge import settings as bridge_settings

log = logging.getLogger("k8sbridge.embedded")

CLUSTER_DNS_ADDRESS = "10.96.0.10"
TASK_NAMESPACE = "default"  # the namespace whose Services a Mesos task finds by short name


def task_dns(settings: bridge_settings.BridgeSettings) -> dict[str, list[str]]:
    """The CNI ``dns`` section of the cluster network: what a Mesos task joining it (of any
    framework: Marathon's ``networks: [{mode: container, name: k8sbridge}]``) gets as its
    resolv.conf. The nameservers are the pods' (``scheduler.cluster_dns``, else the cluster
    DNS), the search path a pod of ``default`` has (``<svc>``, ``<svc>.<ns>`` and the FQDN
    resolve) with ``ndots:5``, as the kubelet writes for ClusterFirst; every other name is
    forwarded by the cluster DNS to the host's resolvers."""
    domain = settings.scheduler.cluster_domain
    return {"nameservers": list(settings.scheduler.cluster_dns or (CLUSTER_DNS_ADDRESS,)),
            "search": [f"{TASK_NAMESPACE}.svc.{domain}", f"svc.{domain}", domain],
            "options": ["ndots:5"]}


def dns_argv(*, py: Sequence[str], cluster: Any, kubeconfig: Path, kernel_url: str,
             domain: str, principal: str | None, secret_file: Path | None,
             ca_file: Path | None = None) -> tuple[str, ...]:
    """``k8sbridge dns`` inside the cluster network: at ``CLUSTER_DNS_ADDRESS`` (what pods'
    resolv.conf names) and at the address below the API server's (the ``kube-system/kube-dns``
    Service's endpoint, where a service proxy sends the ClusterIP), both put on the
    namespace's loopback; Mesos names from the kernel; other names to the host's resolvers."""
    import ipaddress

    endpoint = str(ipaddress.ip_address(cluster.api_address) - 1)
    argv = [*py, "dns", "--listen", CLUSTER_DNS_ADDRESS, "--listen", endpoint, "--port", "53",
            "--listen-netns", cluster.netns_path, "--add-addresses",
            "--kubeconfig", str(kubeconfig), "--cluster-domain", domain,
            "--master", kernel_url, "--service", "kube-system/kube-dns",
            "--service-ip", CLUSTER_DNS_ADDRESS, "--service-endpoint", endpoint]
    if principal is not None and secret_file is not None:
        argv += ["--mesos-principal", principal, "--mesos-secret-file", str(secret_file)]
    if ca_file is not None:  # the kernel's TLS (k8sbridge run's kernel CA)
        argv += ["--mesos-ca-file", str(ca_file)]
    return tuple(argv)


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.replace(path)


CLUSTER_NETNS_FILE = "cluster-netns"  # in the data dir: the namespace of the running cluster


def make_cluster_network(settings: bridge_settings.BridgeSettings, *, data_dir: Path) -> Any:
    """The embedded cluster network (``kernel.network.ClusterNetwork``), created; None, with
    one warning saying why, when it cannot be (plugins missing, no root): the agents then have
    no CNI network, so pods that ask for it (every pod but hostNetwork ones) wait in
    ContainerCreating with the agent's reason, and hostNetwork pods run (issue 13: a missing
    network is said, never replaced by the agent's own). Its name is kept in
    DATA_DIR/cluster-netns: the namespace of a run that was killed (SIGKILL: nothing could
    remove it) is removed by the next run there."""
    from k8sbridge.kernel import network

    record = data_dir / CLUSTER_NETNS_FILE
    with contextlib.suppress(OSError):
        stale = record.read_text(encoding="utf-8").strip()
        if stale.startswith("k8sbridge-") and "/" not in stale:
            network.ClusterNetwork(name=stale).remove()
            log.info("removed the cluster network namespace %s of an earlier run", stale)
        record.unlink()
    emb = settings.embedded
    if not emb.cluster_network or not settings.scheduler.pod_network:
        return None
    plugins = str(emb.cni_plugins_dir)
    missing = network.missing_plugins(plugins)
    if missing:
        log.warning("the CNI reference plugins %s are not in %s (install Debian's "
                    "containernetworking-plugins, as scripts/system-packages does): the agents "
                    "have no pod network, so only hostNetwork pods can start", ", ".join(missing),
                    plugins)
        return None
    cluster = network.ClusterNetwork(cidr=emb.cluster_cidr, agent_prefix=emb.node_cidr_mask_size,
                                     plugins_dir=plugins,
                                     network_name=settings.scheduler.pod_network,
                                     dns=task_dns(settings))
    try:
        cluster.create()
    except network.NetworkError as e:
        log.warning("cannot create the cluster network (%s; it needs root): the agents have "
                    "no pod network, so only hostNetwork pods can start", e)
        return None
    write_private(record, cluster.name + "\n")
    log.info("cluster network: namespace %s, pods in %s, the API server at %s inside it",
             cluster.name, cluster.cidr, cluster.api_address)
    return cluster


def proxy_flags(cluster: Any, *, kubeconfig: Path, hosts: Sequence[str]) -> list[str]:
    """``k8sbridge proxy``'s flags in the embedded default: the cluster network's namespace,
    one node per agent with its pod subnet (agent ``i`` is Node ``127.0.0.<i+1>``, as
    ``embedded_agent_configs`` names them), and every Service connection masqueraded (pods of
    one agent share a bridge, and without br_netfilter a reply between them would bypass the
    namespace's conntrack; see ``proxy.rules``)."""
    nodes = [f"--node={host}={cluster.agent_subnet(i)}" for i, host in enumerate(hosts)]
    return ["--kubeconfig", str(kubeconfig), "--netns", cluster.netns_path, *nodes,
            "--masquerade-all", "on"]


def remove_cluster_network(cluster: Any, *, data_dir: Path, agents: int) -> None:
    """The namespace (with every bridge and veth in it) and the agents' IPAM state (what a
    kernel killed before its tasks ended could not free)."""
    cluster.remove()
    with contextlib.suppress(OSError):
        (data_dir / CLUSTER_NETNS_FILE).unlink()
    for i in range(agents):
        work_dir = data_dir / "kernel" / f"agent-{i}"
        shutil.rmtree(work_dir / "network", ignore_errors=True)
        shutil.rmtree(cluster.ipam_dir(work_dir=work_dir), ignore_errors=True)
