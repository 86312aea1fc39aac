"""Deletion (kill with the pod's grace, sidecars last, then delete) and init phases, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from k8sbridge.lifecycle import deletion, intents, phases
from k8sbridge.model import ids
from tests.lifecycle.harness import pod


def _t(container: str, *, terminal: bool = False, killing: bool = False) -> deletion.TaskView:
    return deletion.TaskView(task_id=ids.TaskId(f"u1.0.{container}"), container=container,
                             terminal=terminal, killing=killing)


def _deleting(grace: Any = None, *, termination: Any = None) -> dict[str, Any]:
    raw = pod(inits=("proxy",), sidecars=("proxy",), deleting=True)
    if grace is not None:
        raw["metadata"]["deletionGracePeriodSeconds"] = grace
    if termination is not None:
        raw["spec"]["terminationGracePeriodSeconds"] = termination
    return raw


def _kill(container: str, grace: float) -> intents.Kill:
    return intents.Kill(ids.TaskId(f"u1.0.{container}"), grace=grace)


@pytest.mark.parametrize(("raw", "tasks", "expected"), [
    pytest.param(_deleting(5), [_t("app"), _t("proxy")], (_kill("app", 5.0),),
                 id="apps-first-with-the-deletion-grace"),
    pytest.param(_deleting(termination=7), [_t("app")], (_kill("app", 7.0),),
                 id="else-the-termination-grace"),
    pytest.param(_deleting(), [_t("app")], (_kill("app", 30.0),), id="else-30s"),
    pytest.param(_deleting("soon"), [_t("app")], (_kill("app", 30.0),),
                 id="a-malformed-grace-is-the-default"),
    pytest.param(_deleting(5), [_t("app", terminal=True), _t("proxy")], (_kill("proxy", 5.0),),
                 id="then-the-sidecars"),
    pytest.param(_deleting(5), [_t("app", killing=True), _t("proxy")], (),
                 id="waiting-for-a-kill"),
    pytest.param(None, [_t("app"), _t("proxy")], (_kill("app", 0.0), _kill("proxy", 0.0)),
                 id="a-force-deleted-pod-kills-everything-at-once"),
    pytest.param(_deleting(5), [_t("app", terminal=True), _t("proxy", terminal=True)],
                 (intents.DeletePod(), intents.Forget()), id="all-ended-deletes"),
    pytest.param(_deleting(5), [], (intents.DeletePod(), intents.Forget()),
                 id="never-launched-deletes"),
    pytest.param(None, [_t("app", terminal=True)], (intents.Forget(),),
                 id="object-gone-forgets"),
])
def test_deletion_steps(
    raw: dict[str, Any] | None, tasks: list[deletion.TaskView],
    expected: tuple[intents.Intent, ...],
) -> None:
    assert deletion.step(pod=raw, tasks=tasks) == expected


@pytest.mark.parametrize(("finished", "running", "expected"), [
    pytest.param(set(), set(), 0, id="the-first"),
    pytest.param({"setup"}, set(), 0, id="in-order"),
    pytest.param(set(), {"proxy"}, 1, id="a-running-sidecar-ends-its-phase"),
    pytest.param({"proxy"}, set(), 0, id="a-finished-sidecar-runs-again-first"),
    pytest.param({"setup"}, {"proxy"}, None, id="then-the-app-group"),
    pytest.param(set(), {"proxy", "setup"}, 1, id="a-running-regular-one-has-not-ended"),
])
def test_next_init_phase(finished: set[str], running: set[str], expected: int | None) -> None:
    inits = [("proxy", True), ("setup", False)]
    assert phases.next_init(inits=inits, finished=finished, running=running) == expected


def test_no_init_containers_is_the_app_group() -> None:
    assert phases.next_init(inits=[], finished=set(), running=set()) is None


@pytest.mark.parametrize(("container", "state", "terminal", "in_phase", "deleting", "apps",
                          "expected"), [
    pytest.param("init", "TASK_FINISHED", True, True, False, False, "next", id="init-done"),
    pytest.param("init", "TASK_FAILED", True, True, False, False, "failed", id="init-failed"),
    pytest.param("init", "TASK_RUNNING", False, True, False, False, "none", id="init-runs"),
    pytest.param("proxy", "TASK_RUNNING", False, True, False, False, "next", id="sidecar-runs"),
    pytest.param("proxy", "TASK_RUNNING", False, True, False, True, "stay",
                 id="sidecar-restarted-beside-apps"),
    pytest.param("init", "TASK_FINISHED", True, False, False, False, "none", id="other-attempt"),
    pytest.param("init", "TASK_FINISHED", True, True, True, False, "none", id="deleting"),
    pytest.param("app", "TASK_FINISHED", True, True, False, False, "none", id="app-container"),
])
def test_an_update_ends_an_init_phase_or_not(
    container: str, state: str, terminal: bool, in_phase: bool, deleting: bool, apps: bool,
    expected: str,
) -> None:
    assert phases.after_update(
        container=container, inits=["init", "proxy"], sidecars={"proxy"}, in_phase=in_phase,
        state=state, terminal=terminal, deleting=deleting, apps_live=lambda: apps,
    ) == expected
