"""An unschedulable pod must not make new, schedulable pods wait for decline filters.

The lead's reproduction: with the `impossible` pod (cpu: 1000) pending, the framework stays
unsuppressed and declines every offer with a long refuse filter; scaling a Deployment up then
left the new pods Pending until the filters expired (30 s), because the loop only REVIVEd when
suppressed. A newly pending pod must REVIVE (rate-limited) whatever the suppression state.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings

REFUSE = 30.0  # the production default: long enough that waiting it out fails the test


@pytest.fixture
async def long_filters(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    base = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(
        base,
        mesos=dataclasses.replace(
            base.mesos, refuse_seconds=REFUSE, revive_min_interval_seconds=1.0
        ),
    )
    async with app.running_embedded(settings) as targets:
        yield targets


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox", "command": ["sleep", "300"],
                        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}},
                    }],
                },
            },
        },
    }


async def _running_web(kube: Any) -> set[str]:
    pods = await kube.list_pods()
    return {
        p["metadata"]["name"] for p in pods
        if (p["metadata"].get("labels") or {}).get("app") == "web"
        and (p.get("status") or {}).get("phase") == "Running"
    }


async def test_new_pods_start_at_once_while_an_impossible_pod_is_pending(
    long_filters: app.EmbeddedTargets,
) -> None:
    kube = long_filters.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "impossible", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"],
                                 "resources": {"requests": {"cpu": "1000"}}}]},
    })
    await kube.create("/apis/apps/v1/namespaces/default/deployments", _deployment(3))

    async def explained() -> str | None:
        pod = await kube.get_pod("default", "impossible")
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return str(cond.get("message"))
        return None

    message = await eventually(explained, what="the impossible pod's explanation")
    assert message.startswith("0/3 nodes are available: 3 Insufficient cpu (requested 1000, ")
    first = await eventually(lambda: _wait_count(kube, 3), what="3 web pods Running")
    # Every agent's offers have now been declined with a 30 s filter (the impossible pod keeps
    # the framework unsuppressed). Let the declines land, then scale up.
    await asyncio.sleep(2.0)
    assert not long_filters.bridge.scheduler.suppressed
    await kube.patch("/apis/apps/v1/namespaces/default/deployments/web",
                     {"spec": {"replicas": 6}})
    # well inside the refuse filter: the new pods do not wait for it to expire
    running = await eventually(lambda: _wait_count(kube, 6), timeout=REFUSE / 3,
                               what="6 web pods Running")
    assert first <= running


async def _wait_count(kube: Any, n: int) -> set[str] | None:
    names = await _running_web(kube)
    return names if len(names) >= n else None
