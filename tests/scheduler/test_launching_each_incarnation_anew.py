"""Every launch gets task and executor ids no earlier launch had (``lifecycle.taskids``).

The case that ran pods twice: the bridge restarts, the master has forgotten the pod's tasks
(or the crash came between ACCEPT and the first status write), and the pod, bound and without
a written status, is launched again. Its ids used to be ``<uid>.0.<container>`` both times,
so the agent could apply the old incarnation's stale updates to the new one. Now the
bridge's generation is part of the id, and a pod's written attempts keep its attempts growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from k8sbridge import settings as bridge_settings
from k8sbridge.lifecycle import away, taskids
from k8sbridge.model import ids
from k8sbridge.model.resources import parse_resources_flag
from k8sbridge.scheduler import launch, loop, offers, stack

UID = "0b6c7c8e-0000-4000-8000-00000000beef"


class _Sink:
    def task_status(self, **_: Any) -> None: ...
    def unschedulable(self, **_: Any) -> None: ...
    def scheduled(self, **_: Any) -> None: ...
    def launch_failed(self, **_: Any) -> None: ...
    def forget(self, uid: str) -> None: ...
    def observe(self, pod: dict[str, Any]) -> None: ...


class _Driver:
    framework_id = ids.FrameworkId("fw")

    def __init__(self) -> None:
        self.operations: list[dict[str, Any]] = []

    async def accept(self, offer_ids: Sequence[ids.OfferId], operations: Sequence[Any], *,
                     refuse_seconds: float | None = None) -> None:
        self.operations.extend(operations)

    async def decline(self, offer_ids: Sequence[ids.OfferId], *,
                      refuse_seconds: float | None = None) -> None: ...


class _Kube:
    async def bind_pod(self, **_: Any) -> None: ...
    async def post_event(self, **_: Any) -> None: ...

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        return {"items": []}  # the Services, listed once for their variables


class _Agent:
    hostname = "h1"
    version = "1.11.0"


class _Agents:
    agents = {ids.AgentId("a1"): _Agent()}

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None:
        return "node-1"


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": UID, "name": "web", "namespace": "default", "resourceVersion": "1"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "command": ["sleep"]}]},
        "status": status,
    }


async def _launch_once(*, generation: int, pod: dict[str, Any]) -> tuple[list[str], str]:
    """A freshly started loop (nothing known: the master forgot) launches ``pod``."""
    driver = _Driver()
    scheduler = loop.Scheduler(
        settings=bridge_settings.load(env={"K8SBRIDGE_SCHEDULER_POD_SANDBOX": "true"}),
        kube=_Kube(),  # type: ignore[arg-type]
        driver=driver, sink=_Sink(), agents=_Agents(),  # type: ignore[arg-type]
        list_tasks=None,  # type: ignore[arg-type]  # not reconciling here
        generation=generation,
    )
    scheduler._pods[UID] = pod
    scheduler._pending[UID] = None
    res = parse_resources_flag("cpus:4;mem:1024;disk:100").allocated_to("*")
    scheduler._book.add(offers.parse_offer({
        "id": {"value": f"o{generation}"}, "agent_id": {"value": "a1"}, "hostname": "h1",
        "resources": res.to_raw(), "allocation_info": {"role": "*"},
    }, now=0.0))
    result = stack.place(pending=scheduler._pending_requests(), view=scheduler._view(),
                         settings=scheduler._stack_settings)
    await scheduler._commit(result)
    tasks = [t["task_id"]["value"] for operation in driver.operations
             for t in operation["launch_group"]["task_group"]["tasks"]]
    return tasks, driver.operations[-1]["launch_group"]["executor"]["executor_id"]["value"]


async def test_a_restarted_bridge_never_reuses_an_earlier_incarnations_ids() -> None:
    first, first_executor = await _launch_once(generation=1, pod=_pod())
    # restarted, the master has forgotten the task, nothing was written about it yet
    second, second_executor = await _launch_once(generation=2, pod=_pod())
    assert not set(first) & set(second), (first, second)
    assert first_executor != second_executor
    assert [taskids.parse(t) for t in second] == [
        # the pod's sandbox (``podsandbox``), a new one with the new incarnation
        taskids.TaskName(uid=UID, attempt=0, generation=2, container=taskids.SANDBOX),
        taskids.TaskName(uid=UID, attempt=0, generation=2, container="main"),
    ]


async def test_attempts_grow_past_what_the_pods_status_names() -> None:
    old = f"{UID}.3.main"  # written by a bridge from before generations
    running = {"name": "main", "containerID": f"mesos://{old}", "state": {"running": {}},
               "lastState": {"terminated": {"containerID": f"mesos://{UID}.2.main"}}}
    tasks, _ = await _launch_once(generation=5, pod=_pod(containerStatuses=[running]))
    assert tasks == [f"{UID}.4.5.{taskids.SANDBOX}", f"{UID}.4.5.main"]
    assert away.written_attempts(UID, _pod(containerStatuses=[running])) == [3, 2]


def test_both_id_forms_parse() -> None:
    assert taskids.parse(f"{UID}.1.9.main") == taskids.TaskName(UID, 1, 9, "main")
    assert taskids.parse(f"{UID}.1.main") == taskids.TaskName(UID, 1, None, "main")
    assert taskids.parse(f"{UID}.1.7") == taskids.TaskName(UID, 1, None, "7")  # container "7"
    for foreign in ("someone-elses-task", f"{UID}.x.main", f"{UID}.1.x.main", "a.b.c.d.e", ""):
        assert taskids.parse(foreign) is None, foreign
    assert launch.parse_task_id(f"{UID}.1.9.main") == (UID, 1, "main")
    assert taskids.sibling(f"{UID}.1.9.main", "side") == f"{UID}.1.9.side"
    assert taskids.sibling(f"{UID}.1.main", "side") == f"{UID}.1.side"
    assert taskids.app_executor_of(f"{UID}.1.9.main") == f"k8sbridge.{UID}.1.9"
    assert taskids.app_executor_of(f"{UID}.1.main") == f"k8sbridge.{UID}.1"
    written = {"main": {"containerID": f"mesos://{UID}.2.4.main"}}
    assert away.attempt_task_ids(written, ["main", "side"]) == {
        "main": f"{UID}.2.4.main", "side": f"{UID}.2.4.side"}
