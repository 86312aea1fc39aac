"""A pod's sandbox on the pod network: one executor, and so one IP, for the pod's whole life.

Why: a kubelet keeps one pod sandbox (one network namespace, one IP) across the pod's init
containers and every restart of its containers. On Mesos all task groups launched onto one
DEFAULT executor share its container's network namespace, but the executor ends with its
last active task; init containers run one group at a time and a restart is a new group, so
between two groups the executor, and the IP, would be gone. So the pod's first launch on the
pod network starts with a group of one task, the sandbox task (container name
``taskids.SANDBOX``, a ``sleep`` that runs until killed), which keeps the executor alive: a
group of its own, since the default executor kills a whole group when one of its tasks fails
or is killed, and a failing container must not take the sandbox down. The first group of
containers, in the same ACCEPT, and every later group of the pod (the next init container,
the app containers, a restart) are launched onto the same executor with its ExecutorInfo
exactly as first sent (Mesos refuses any other: "ExecutorInfo is not compatible with
existing ExecutorInfo"), and add no executor resources. The sandbox task is killed when the
pod ends (deleted, Succeeded or Failed); if it ends on its own, the next launch makes a new
sandbox.

Resources: Mesos refuses a task without resources ("Task uses no resources"), so the sandbox
task takes ``SANDBOX_CPUS`` (0.001, the smallest scalar Mesos keeps) out of the executor
share placement carved for the pod: the pod's overhead is unchanged. A later group's
assignment still carves an executor share (placement does not know the executor runs); it
is not used, and goes back with the offer. A restarted bridge joins the sandboxes it
finds running (``adopt``): their ExecutorInfo comes from the master (GET_EXECUTORS), as the
master keeps it, which is what it compares the next launch's with.
Pure: values in, wire JSON out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from k8sbridge.lifecycle import taskids
from k8sbridge.lifecycle.launches import PodSandbox
from k8sbridge.model import ids
from k8sbridge.model.resources import Resources

__all__ = ["SANDBOX_CPUS", "LiveTask", "adopt", "joinable", "sandbox_task", "split_executor",
           "start"]

SANDBOX_CPUS = 0.001
# Runs until killed, on any agent's file system (no image): 2**31-1 seconds.
_SLEEP = {"shell": False, "value": "sleep", "arguments": ["sleep", "2147483647"]}

Json = dict[str, Any]


def joinable(sandbox: PodSandbox | None, agent_id: str) -> PodSandbox | None:
    """The pod's sandbox if a group placed on ``agent_id`` can join it."""
    if sandbox is None or str(sandbox.agent_id) != agent_id:
        return None
    return sandbox


def split_executor(executor: Resources) -> tuple[Resources, Resources]:
    """``(executor's share, sandbox task's)``: the task's cpus come out of the share, with
    its reservation and allocation."""
    for item in executor.items:
        if item.name == "cpus" and item.type == "SCALAR" and item.scalar > 2 * SANDBOX_CPUS:
            task = Resources.of([dataclasses.replace(item, scalar=SANDBOX_CPUS)])
            return executor - task, task
    return executor, Resources.from_scalars({"cpus": SANDBOX_CPUS})


def sandbox_task(*, uid: str, attempt: int, generation: int, init_phase: int | None,
                 agent_id: str, resources: Resources, labels: list[Json],
                 share_cgroups_false: bool) -> Json:
    """The TaskInfo of the sandbox task."""
    task: Json = {
        "name": "pod sandbox",
        "task_id": {"value": taskids.task_id(uid=uid, attempt=attempt, generation=generation,
                                             container=taskids.sandbox_name(init_phase))},
        "agent_id": {"value": agent_id},
        "resources": resources.to_raw(),
        "command": dict(_SLEEP),
        "labels": {"labels": labels},
        "kill_policy": {"grace_period": {"nanoseconds": 0}},
    }
    if share_cgroups_false:  # every task under one executor agrees on it (Mesos >= 1.11)
        task["container"] = {"type": "MESOS", "linux_info": {"share_cgroups": False}}
    return task


def start(*, executor: Mapping[str, Any], share: Resources, uid: str, attempt: int,
          generation: int, init_phase: int | None, agent_id: str, labels: list[Json],
          share_cgroups_false: bool) -> tuple[PodSandbox, Json]:
    """A new sandbox on ``executor`` (its resources: ``share`` less the sandbox task's) and
    the LAUNCH_GROUP of its task."""
    own_share, own = split_executor(share)
    info = {**executor, "resources": own_share.to_raw()}
    task = sandbox_task(uid=uid, attempt=attempt, generation=generation,
                        init_phase=init_phase, agent_id=agent_id, resources=own,
                        labels=labels, share_cgroups_false=share_cgroups_false)
    made = PodSandbox(agent_id=ids.AgentId(agent_id),
                      executor_id=str(info["executor_id"]["value"]),
                      task_id=ids.TaskId(str(task["task_id"]["value"])), executor=info)
    return made, {"type": "LAUNCH_GROUP",
                  "launch_group": {"executor": info, "task_group": {"tasks": [task]}}}


@dataclasses.dataclass(frozen=True, slots=True)
class LiveTask:
    """A live task of ours as reconciliation lists it."""

    uid: str
    task_id: ids.TaskId
    container: str
    agent_id: str
    executor_id: str
    incarnation: tuple[int, int]  # (generation, attempt): the later one wins


def adopt(tasks: Iterable[LiveTask], executors: Iterable[Mapping[str, Any]], *,
          framework_id: str) -> dict[str, PodSandbox]:
    """The sandbox each pod can join after a bridge restart: its latest live sandbox task's
    executor, with the ExecutorInfo the master lists (GET_EXECUTORS) for it."""
    infos: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in executors:
        info = entry.get("executor_info")
        agent = (entry.get("agent_id") or {}).get("value")
        if not isinstance(info, dict) or not isinstance(agent, str):
            continue
        if (info.get("framework_id") or {}).get("value") not in (None, framework_id):
            continue
        infos[(agent, str((info.get("executor_id") or {}).get("value") or ""))] = info
    best: dict[str, LiveTask] = {}
    for task in tasks:
        if not taskids.is_sandbox(task.container) or (task.agent_id,
                                                      task.executor_id) not in infos:
            continue
        if task.uid not in best or task.incarnation > best[task.uid].incarnation:
            best[task.uid] = task
    return {uid: PodSandbox(agent_id=ids.AgentId(t.agent_id), executor_id=t.executor_id,
                            task_id=t.task_id, executor=dict(infos[(t.agent_id,
                                                                    t.executor_id)]))
            for uid, t in best.items()}
