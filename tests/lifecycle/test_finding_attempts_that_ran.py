"""Which attempt of a pod ran, read from its written status (the bridge-was-away check)."""

from __future__ import annotations

from typing import Any

from k8sbridge.lifecycle import away
from k8sbridge.model import ids

reconcile_of = away.previous_attempt


def _pod(*statuses: dict[str, Any], inits: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"uid": "u1"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                 "initContainers": [{"name": f"i{n}"} for n in range(inits)]},
        "status": {"containerStatuses": list(statuses)},
    }


def _cs(name: str, attempt: int, state: str, uid: str = "u1") -> dict[str, Any]:
    return {"name": name, "containerID": f"mesos://{uid}.{attempt}.{name}", "state": {state: {}}}


def test_a_running_attempt_is_found_with_its_containers() -> None:
    found = reconcile_of("u1", _pod(_cs("a", 2, "running"), _cs("b", 2, "waiting")))
    assert found is not None
    attempt, written = found
    assert attempt == 2 and set(written) == {"a", "b"}


def test_nothing_started_means_launch_it() -> None:
    # app containers get ids at the attempt's start (also while init containers run)
    assert reconcile_of("u1", _pod(_cs("a", 0, "waiting"), _cs("b", 0, "waiting"),
                                             inits=1)) is None
    assert reconcile_of("u1", _pod()) is None


def test_a_later_attempt_launched_but_not_started_is_launched_again() -> None:
    pod = _pod(_cs("a", 1, "terminated"), _cs("b", 2, "waiting"))
    assert reconcile_of("u1", pod) is None


def test_foreign_ids_are_ignored() -> None:
    pod = _pod(_cs("a", 0, "running", uid="other"),
               {"name": "b", "containerID": "docker://abc", "state": {"running": {}}})
    assert reconcile_of("u1", pod) is None


def test_a_vanished_task_becomes_task_gone_and_a_written_exit_is_kept() -> None:
    gone = away.final_from_written(ids.TaskId("u1.0.a"), {"state": {"running": {}}},
                                     agent_id=None, now=100.0)
    assert gone.state == "TASK_GONE" and "vanished while the bridge was away" in str(gone.message)
    failed = away.final_from_written(
        ids.TaskId("u1.0.a"),
        {"state": {"terminated": {"exitCode": 3, "finishedAt": "2026-11-26T00:00:00Z"}}},
        agent_id=None, now=100.0,
    )
    assert failed.state == "TASK_FAILED" and failed.message == "Command exited with status 3"
    assert failed.timestamp == 1795651200.0
    done = away.final_from_written(
        ids.TaskId("u1.0.a"), {"state": {"terminated": {"exitCode": 0}}},
        agent_id=None, now=100.0,
    )
    assert done.state == "TASK_FINISHED" and done.timestamp == 100.0
