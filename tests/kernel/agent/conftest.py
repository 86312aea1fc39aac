"""Fixtures the agent's tests share: the embedded cluster network (a namespace of its own with
the bridge, made and removed around a test), which the CNI isolator's tests attach to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from k8sbridge.kernel import network


@pytest.fixture
def cluster() -> Iterator[network.ClusterNetwork]:
    net = network.ClusterNetwork()
    net.create()
    yield net
    net.remove()
