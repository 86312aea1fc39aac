"""``embedded.bridge_replicas``: what each bridge child of ``k8sbridge run`` is told."""

from __future__ import annotations

import dataclasses

import pytest

from k8sbridge import embedded_bridges
from k8sbridge import settings as bridge_settings


def test_each_replica_elects_with_an_identity_per_process_and_a_port_of_its_own() -> None:
    base = bridge_settings.load(env={})
    base = dataclasses.replace(base, leader=dataclasses.replace(base.leader, identity="shared"))
    first, second = (embedded_bridges.replica_settings(base, i) for i in (0, 1))
    assert first.leader.enabled and second.leader.enabled
    assert first.leader.identity == second.leader.identity == ""  # HOSTNAME_<uuid> each
    assert (first.kubelet.port, second.kubelet.port) == (base.kubelet.port,
                                                         base.kubelet.port + 1)
    anywhere = dataclasses.replace(base, kubelet=dataclasses.replace(base.kubelet, port=0))
    assert embedded_bridges.replica_settings(anywhere, 1).kubelet.port == 0


def test_at_least_one_bridge() -> None:
    assert bridge_settings.load(env={}).embedded.bridge_replicas == 1
    assert bridge_settings.load(
        env={"K8SBRIDGE_EMBEDDED_BRIDGE_REPLICAS": "2"}).embedded.bridge_replicas == 2
    with pytest.raises(bridge_settings.SettingsError, match="embedded.bridge_replicas"):
        bridge_settings.load(env={"K8SBRIDGE_EMBEDDED_BRIDGE_REPLICAS": "0"})
