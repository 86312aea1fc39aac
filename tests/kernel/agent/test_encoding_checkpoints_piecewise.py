"""A checkpoint encoded piece by piece (``checkpoint.encode``, reusing the JSON of what did not
change) is the very text ``json.dumps`` makes of the whole checkpoint, after every kind of
change the agent makes between two writes: a status appended (and the oldest dropped), an
acknowledgement, the launch's fields, a replaced environment or view, a second task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import checkpoint
from k8sbridge.kernel.agent.state import Container, Task


def _whole(container: Container, pending: dict[str, list[dict[str, Any]]]) -> str:
    return json.dumps(checkpoint.document(container, pending), separators=(",", ":"))


def _status(task_id: str, state: str, n: int) -> dict[str, Any]:
    return {"task_id": {"value": task_id}, "state": state, "uuid": f"u{n}",
            "timestamp": 1796658639.5 + n, "container_status": {"executor_pid": 7},
            "message": "caf\u00e9 \u2603 \"quoted\""}


def _container() -> Container:
    info = {"task_id": {"value": "t1"}, "name": "t1", "command": {"value": "sleep 1"},
            "labels": {"labels": [{"key": "k", "value": "v\u00e9"}]}}
    task = Task(info=info, framework_id="F", executor_id="e", container_id="c1")
    return Container(container_id="c1", framework_id="F", executor_id="e", kind="DEFAULT",
                     framework={"id": {"value": "F"}, "checkpoint": True},
                     executor={"executor_id": {"value": "e"}}, directory=Path("/w/s/c1"),
                     meta_dir=Path("/w/m/c1"), tasks={"t1": task}, started=1796658639.25)


def test_every_write_is_the_whole_checkpoint_as_json_dumps_makes_it() -> None:
    container = _container()
    memo = checkpoint.Memo()
    pending: dict[str, list[dict[str, Any]]] = {"t1": []}
    assert checkpoint.encode(memo, container, pending) == _whole(container, pending)

    task = container.tasks["t1"]
    task.cwd, task.env = "/w/s/c1/tasks/t1", {"HOME": "/w/s/c1/tasks/t1", "X": "1"}
    task.user = {"uid": 1000, "gid": 1000}
    task.view = {"cwd": "/mnt/mesos/sandbox", "env": {"HOME": "/mnt/mesos/sandbox"}}
    container.mem_limit_mb, container.cpus_limit = 32.0, 0.5
    assert checkpoint.encode(memo, container, pending) == _whole(container, pending)

    container.launched = True
    task.pid = 4321
    for n, state in enumerate(["TASK_STARTING", "TASK_RUNNING"]):
        status = _status("t1", state, n)
        task.state = state
        task.statuses.append(status)
        pending["t1"].append(status)
        assert checkpoint.encode(memo, container, pending) == _whole(container, pending)
    pending["t1"].pop(0)  # acknowledged
    assert checkpoint.encode(memo, container, pending) == _whole(container, pending)

    task.env = {**task.env, "Y": "2"}  # replaced, never changed in place
    task.network = {"netns": "/run/netns/c1", "ip": "10.0.0.2"}
    container.tasks["t2"] = Task(info={"task_id": {"value": "t2"}}, framework_id="F",
                                 executor_id="e", container_id="c1",
                                 statuses=[_status("t2", "TASK_STAGING", 9)])
    pending["t2"] = list(container.tasks["t2"].statuses)
    for n in range(3, 60):  # the status list is bounded by the agent; the memo follows it
        task.statuses.append(_status("t1", "TASK_RUNNING", n))
        del task.statuses[:-50]
    container.terminated = True
    assert checkpoint.encode(memo, container, pending) == _whole(container, pending)
    assert json.loads(checkpoint.encode(memo, container, pending))["tasks"]["t1"]["env"]["Y"] \
        == "2"


def test_a_fresh_memo_and_a_used_one_write_the_same() -> None:
    container = _container()
    used = checkpoint.Memo()
    pending = {"t1": [_status("t1", "TASK_RUNNING", 1)]}
    checkpoint.encode(used, container, pending)
    container.tasks["t1"].state = "TASK_RUNNING"
    container.tasks["t1"].statuses.append(pending["t1"][0])
    assert checkpoint.encode(used, container, pending) == \
        checkpoint.encode(checkpoint.Memo(), container, pending)


def test_a_container_settles_once_every_task_has_a_status_and_none_awaits_an_ack() -> None:
    container = _container()
    pending: dict[str, list[dict[str, Any]]] = {"t1": []}
    assert not checkpoint.settled(container, pending)  # launching: no status yet
    running = _status("t1", "TASK_RUNNING", 1)
    container.tasks["t1"].statuses.append(running)
    pending["t1"].append(running)
    assert not checkpoint.settled(container, pending)  # RUNNING not acknowledged yet
    memo = checkpoint.Memo()
    checkpoint.encode(memo, container, pending)
    assert len(memo) > 0
    pending["t1"].clear()
    assert checkpoint.settled(container, pending)
    memo.clear()
    assert len(memo) == 0
    assert checkpoint.encode(memo, container, pending) == _whole(container, pending)
