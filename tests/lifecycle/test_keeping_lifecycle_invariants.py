"""Properties of the lifecycle over random lives: whatever Mesos sends (any order, duplicates,
older attempts), restart counts never go back, an ended attempt asks for at most one relaunch,
duplicates ask for nothing more, a pod being deleted restarts nothing, and kills name only
tasks that still run."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.lifecycle import events, intents, machine
from k8sbridge.lifecycle.record import PodRecord
from k8sbridge.model import ids, tasks
from tests.lifecycle.harness import T0, UID, pod

CONTAINERS = ("init", "proxy", "a", "b")
STATES = ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED",
          "TASK_LOST")

_update = st.tuples(st.sampled_from(CONTAINERS), st.integers(0, 2), st.sampled_from(STATES))
_step = st.one_of(
    *[_update.map(lambda u: ("update", *u))] * 4,  # updates mostly; a deletion now and then
    st.just(("delete",)),
    st.just(("tick",)),
)


def _event(step: tuple[Any, ...], at: float, *, deleting_pod: dict[str, Any]) -> events.Event:
    if step[0] == "delete":
        return events.PodChanged(pod=deleting_pod)
    if step[0] == "tick":
        return events.Tick()
    _, container, attempt, state = step
    status = tasks.TaskStatusView(
        task_id=ids.TaskId(f"{UID}.{attempt}.{container}"), state=state, timestamp=at,
        message="Command exited with status 1" if state == "TASK_FAILED" else "",
    )
    return events.TaskUpdated(container=container, attempt=attempt, status=status)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(_step, min_size=5, max_size=40),
    policy=st.sampled_from(["Always", "OnFailure", "Never"]),
    duplicate=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_any_life_keeps_the_invariants(
    steps: list[tuple[Any, ...]], policy: str, duplicate: list[bool]
) -> None:
    kwargs: dict[str, Any] = dict(apps=("a", "b"), inits=("init", "proxy"),
                                  sidecars=("proxy",), policy=policy)
    raw = pod(**kwargs)
    raw["spec"]["activeDeadlineSeconds"] = 20
    deleting_pod = pod(deleting=True, **kwargs)
    deleting_pod["spec"]["activeDeadlineSeconds"] = 20
    record = PodRecord.new(raw)
    deleting = False
    app_relaunched: set[int] = set()
    for i, step in enumerate(steps):
        now = T0 + 3 * i
        event = _event(step, now, deleting_pod=deleting_pod)
        before = record
        record, out = machine.apply(record, event, now)
        deleting = deleting or step[0] == "delete"
        for name, rt in record.runtimes.items():
            old = before.runtimes.get(name)
            assert old is None or rt.restart_count >= old.restart_count, name
        for intent in out:
            if isinstance(intent, intents.Relaunch):
                assert not deleting, "a pod being deleted restarts nothing"
                assert not record.deadline_exceeded
                assert intent.at >= now
                if set(intent.containers) == {"a", "b"}:
                    assert record.app_attempt not in app_relaunched, "one relaunch per attempt"
                    app_relaunched.add(record.app_attempt)
            if isinstance(intent, intents.Kill):
                running = {rt.task_id for rt in before.runtimes.values()
                           if rt.terminated is None} | {
                    rt.task_id for rt in record.runtimes.values() if rt.terminated is None}
                assert intent.task_id in running
        if duplicate[i] and step[0] == "update":
            again, more = machine.apply(record, event, now)
            assert again.runtimes == record.runtimes
            assert not any(isinstance(m, intents.Relaunch | intents.Kill) for m in more)
            record = again
