"""What `k8sbridge run` tells the cluster network's users, as plain values: the CNI
configuration's ``dns`` section (the resolv.conf every Mesos task on the network gets: the
cluster DNS, a pod's search path for ``default``, ``ndots:5``), and where pods find the API
server (the ``kubernetes`` Service's ClusterIP when a service proxy runs, the API server's own
address in the network when none does, ``scheduler.api_service_host`` over both). The
processes are tested in tests/dns/test_resolving_from_pods_and_tasks.py and
tests/integration/test_calling_the_api_from_pods.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from k8sbridge import embedded, embedded_network
from k8sbridge import settings as bridge_settings
from k8sbridge.kernel import network


def _scheduler(**fields: Any) -> bridge_settings.BridgeSettings:
    base = bridge_settings.BridgeSettings()
    return dataclasses.replace(base, scheduler=dataclasses.replace(base.scheduler, **fields))


def test_tasks_on_the_network_get_the_cluster_dns_and_a_pods_search_path() -> None:
    assert embedded_network.task_dns(_scheduler()) == {
        "nameservers": ["10.96.0.10"],
        "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": ["ndots:5"]}
    own = embedded_network.task_dns(_scheduler(cluster_dns=("192.0.2.53", "192.0.2.54"),
                                               cluster_domain="k8s.test"))
    assert own["nameservers"] == ["192.0.2.53", "192.0.2.54"]  # the pods' own servers
    assert own["search"] == ["default.svc.k8s.test", "svc.k8s.test", "k8s.test"]


def test_the_cni_configuration_carries_the_dns_section_only_when_given(tmp_path: Path) -> None:
    dns = embedded_network.task_dns(_scheduler())
    with_dns = network.ClusterNetwork(dns=dns).agent_config(1, work_dir=tmp_path)
    assert with_dns["dns"] == dns and with_dns["type"] == "bridge"
    assert with_dns["ipam"]["subnet"] == "10.88.1.0/24"
    assert "dns" not in network.ClusterNetwork().agent_config(1, work_dir=tmp_path)


def _api(settings: bridge_settings.BridgeSettings, api_address: str) -> tuple[str, int]:
    out = embedded.bridge_settings_for(settings, kernel_url="https://127.0.0.1:5050",
                                       kubeconfig=Path("/nonexistent"), client_ca_file=None,
                                       api_address=api_address)
    return out.scheduler.api_service_host, out.scheduler.api_service_port


def test_pods_find_the_api_at_the_cluster_ip_unless_no_proxy_runs_or_told_otherwise() -> None:
    settings = _scheduler()
    # a service proxy runs: the kubernetes Service's ClusterIP and port (no override)
    assert _api(settings, "") == ("", 443)
    # none: the API server's own address in the cluster network, on its own port
    assert _api(settings, "10.88.255.254") == ("10.88.255.254", settings.embedded.api_port)
    # the setting, when given, wins over both
    told = _scheduler(api_service_host="10.88.255.254", api_service_port=7443)
    assert _api(told, "") == ("10.88.255.254", 7443)
    assert _api(told, "10.88.0.9") == ("10.88.255.254", 7443)


def test_the_cluster_network_needs_bridge_and_host_local_only(tmp_path: Path) -> None:
    """The agents bring each namespace's ``lo`` up themselves: a plugins directory without
    ``loopback`` is enough, one without ``host-local`` is not."""
    for name in ("bridge", "host-local"):
        (tmp_path / name).symlink_to(f"/usr/lib/cni/{name}")
    assert network.missing_plugins(str(tmp_path)) == []
    (tmp_path / "host-local").unlink()
    assert network.missing_plugins(str(tmp_path)) == ["host-local"]
