"""The kubelet's --cluster-dns / --cluster-domain as scheduler settings: environment, flags
and their validation (a misspelt address is an error, not a pod with a broken resolver)."""

from __future__ import annotations

import pytest

from k8sbridge import settings as bridge_settings


def test_defaults_environment_and_flags() -> None:
    default = bridge_settings.load(env={}).scheduler
    assert (default.cluster_dns, default.cluster_domain, default.pod_files) == (
        (), "cluster.local", True)
    env = bridge_settings.load(env={"K8SBRIDGE_SCHEDULER_CLUSTER_DNS": "10.96.0.10,fd00::a",
                                    "K8SBRIDGE_SCHEDULER_CLUSTER_DOMAIN": "k8s.test"}).scheduler
    assert (env.cluster_dns, env.cluster_domain) == (("10.96.0.10", "fd00::a"), "k8s.test")
    flags = bridge_settings.load(env={}, flags={"scheduler": {
        "cluster_dns": ("10.0.0.10",), "cluster_domain": None}}).scheduler
    assert (flags.cluster_dns, flags.cluster_domain) == (("10.0.0.10",), "cluster.local")


@pytest.mark.parametrize(("env", "message"), [
    ({"K8SBRIDGE_SCHEDULER_CLUSTER_DNS": "dns.local"},
     "scheduler.cluster_dns: 'dns.local' is not an IP address"),
    ({"K8SBRIDGE_SCHEDULER_CLUSTER_DNS": "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4"},
     "scheduler.cluster_dns: at most 3 nameservers (resolv.conf's limit)"),
    ({"K8SBRIDGE_SCHEDULER_CLUSTER_DOMAIN": "Cluster_Local"},
     "scheduler.cluster_domain: 'Cluster_Local' is not a DNS domain (lower-case labels "
     "separated by dots)"),
])
def test_bad_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(bridge_settings.SettingsError) as e:
        bridge_settings.load(env=env)
    assert str(e.value) == message
