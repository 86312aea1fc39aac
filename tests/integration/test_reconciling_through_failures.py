"""A failing GET_TASKS does not wedge the loop: reconciliation is retried with back-off, the
offers that arrive meanwhile are declined at once with a short filter (never held, so other
frameworks get the resources), and launches resume once reconciliation succeeds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import framework as mesos_framework
from k8sbridge.model import ids
from k8sbridge.scheduler import loop_state
from tests.integration.conftest import eventually, fast_settings

FAILURES = 3


async def test_failed_reconciliation_declines_offers_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[float] = []  # when GET_TASKS was called

    def flaky(real: app.ListTasks) -> app.ListTasks:
        async def list_tasks() -> list[dict[str, Any]]:
            listed.append(time.monotonic())
            if len(listed) <= FAILURES:
                raise mesos_errors.MesosError("GET_TASKS failed (injected)")
            return await real()

        return list_tasks

    declines: list[tuple[int, float | None]] = []  # (GET_TASKS calls so far, refuse seconds)
    real_decline = mesos_framework.Framework.decline

    async def decline(
        self: mesos_framework.Framework, offer_ids: Sequence[ids.OfferId], *,
        refuse_seconds: float | None = None,
    ) -> None:
        declines.append((len(listed), refuse_seconds))
        await real_decline(self, offer_ids, refuse_seconds=refuse_seconds)

    monkeypatch.setattr(mesos_framework.Framework, "decline", decline)
    async with app.running_embedded(fast_settings(tmp_path / "run"),
                                    _wrap_list_tasks=flaky) as embedded:
        kube = embedded.bridge.kube
        await kube.create("/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "after-recovery", "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox",
                                     "command": ["sleep", "300"]}]},
        })

        async def running() -> bool:
            pod = await kube.get_pod("default", "after-recovery")
            return (pod.get("status") or {}).get("phase") == "Running"

        await eventually(running, what="the pod Running once reconciliation succeeded")
        assert len(listed) == FAILURES + 1
        # retried with back-off (0.5 s, 1 s, 2 s), not in a tight loop and not never
        gaps = [b - a for a, b in zip(listed, listed[1:], strict=False)]
        assert gaps[0] >= loop_state.RECONCILE_RETRY_FIRST * 0.9
        assert gaps[2] >= gaps[0] * 3
        # the offers that came while unreconciled were declined, with the short filter
        unreconciled = [refuse for calls, refuse in declines if calls <= FAILURES]
        assert unreconciled
        assert set(unreconciled) == {loop_state.UNRECONCILED_REFUSE_SECONDS}
        await kube.delete("/api/v1/namespaces/default/pods/after-recovery",
                          grace_period_seconds=0)
