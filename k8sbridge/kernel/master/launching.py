"""Validation of ACCEPT's LAUNCH, LAUNCH_GROUP, RESERVE and UNRESERVE, as ``master/validation.cpp``.

Why a module of its own: these are the ``task::``, ``group::`` and ``operation::`` namespaces of
Mesos' validation, pure functions from a TaskInfo (plus what the master knows of the agent and
framework) to "valid" or the TASK_ERROR message Mesos gives. ``calls`` keeps the call-level
checks (the HTTP 400s); the master only applies what passed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import containers
from k8sbridge.kernel.master.calls import MIN_CPUS, MIN_MEM, id_value, validate_id, validate_role
from k8sbridge.kernel.master.errors import TaskInvalid

# --------------------------------------------------------------------------------------------
# Tasks


def parse_resources(raw: Any, *, role: str, what: str) -> res.Resources:
    """Resources of a task or executor, with the offer's allocation role filled in if absent."""
    try:
        parsed = res.Resources.parse(raw if raw is not None else [])
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise TaskInvalid(f"{what} uses invalid resources: {e}") from e
    out: list[res.Resource] = []
    for r in parsed:
        if r.allocation_role is None:
            r = res.Resource(
                name=r.name, type=r.type, scalar=r.scalar, ranges=r.ranges, items=r.items,
                reservations=r.reservations, allocation_role=role, extra=r.extra,
            )
        elif r.allocation_role != role:
            raise TaskInvalid(
                f"{what} uses resources allocated to role '{r.allocation_role}' while the "
                f"offer is allocated to role '{role}'"
            )
        out.append(r)
    return res.Resources.of(out)


# --------------------------------------------------------------------------------------------
# Resource limits and 'share_cgroups' (Mesos >= 1.11)

# What the kernel's agents declare (``SlaveInfo.Capability``): they enforce limits.
AGENT_CAPABILITIES = ("MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT",
                      "AGENT_DRAINING", "TASK_RESOURCE_LIMITS")


def _share_cgroups(container: Any) -> bool | None:
    """``linux_info.share_cgroups`` if set (None if not); the proto default is true."""
    linux = container.get("linux_info") if isinstance(container, dict) else None
    if not isinstance(linux, dict) or "share_cgroups" not in linux:
        return None
    return linux["share_cgroups"] is not False


def validate_resource_limits(task: Mapping[str, Any], resources: res.Resources, *,
                             agent_capabilities: Collection[str] = AGENT_CAPABILITIES) -> None:
    """``task::internal::validateResourceLimits`` (for LAUNCH and each task of a group)."""
    limits = task.get("limits") or {}
    if not limits:
        return
    if "TASK_RESOURCE_LIMITS" not in agent_capabilities:
        raise TaskInvalid("Agent is not capable of handling task resource limits")
    if set(limits) - {"cpus", "mem"}:
        raise TaskInvalid("Only cpus and mem may be included in a task's resource limits")
    if "cpus" in limits:
        if "cpus" not in resources.names():
            raise TaskInvalid(
                "When a CPU limit is specified, a CPU request must also be specified")
        if float(limits["cpus"]["value"]) < resources.scalar("cpus"):
            raise TaskInvalid("The cpu limit must be greater than or equal to the cpu request")
    if "mem" in limits:
        if "mem" not in resources.names():
            raise TaskInvalid(
                "When a memory limit is specified, a memory request must also be specified")
        mem_limit = float(limits["mem"]["value"])
        # Mesos compares Bytes: both sides as whole bytes of the MB figure.
        if not math.isinf(mem_limit) and int(mem_limit * 1024 * 1024) < int(
                resources.scalar("mem") * 1024 * 1024):
            raise TaskInvalid(
                "The memory limit must be greater than or equal to the memory request")


def validate_launch_share_cgroups(task: Mapping[str, Any]) -> None:
    """``task::internal::validateShareCgroups``: 'false' is for task groups only."""
    if _share_cgroups(task.get("container")) is False:
        raise TaskInvalid("Only tasks in a task group may have 'share_cgroups' set to 'false'")


def validate_group_task_limits(task: Mapping[str, Any]) -> None:
    """The end of ``group::internal::validateTask``: limits need ``share_cgroups: false``."""
    container = task.get("container")
    linux = container.get("linux_info") if isinstance(container, dict) else None
    if task.get("limits") and not (
            isinstance(linux, dict) and linux.get("share_cgroups", True) is False):
        raise TaskInvalid(
            "Resource limits may only be set for tasks within a task group when the "
            "'share_cgroups' field is set to 'false'.")


def validate_group_share_cgroups(executor: Mapping[str, Any], tasks: Iterable[Any], *,
                                 executor_task_containers: Iterable[Any]) -> None:
    """``group::internal::validateShareCgroups``: the executor container cannot share; the
    group's tasks, and the tasks already under the same executor, must all agree."""
    if _share_cgroups(executor.get("container")) is True:
        raise TaskInvalid(
            "The 'share_cgroups' field cannot be set to 'true' on executor containers")
    seen: bool | None = None

    def agree(container: Any) -> None:
        nonlocal seen
        shares = _share_cgroups(container)
        shares = True if shares is None else shares  # unset means the default, true
        if seen is None:
            seen = shares
        elif shares != seen:
            raise TaskInvalid(
                "If set, the value of 'share_cgroups' must be the same for all tasks in each "
                "task group and under a single executor")

    for task in tasks:
        agree(task.get("container") if isinstance(task, dict) else None)
    if seen is not None:
        for container in executor_task_containers:
            agree(container)


def _task_common(
    task: Any, *, agent_id: str, known_task_ids: Collection[str], role: str,
    also_known: Collection[str] = (),
) -> tuple[str, res.Resources]:
    if not isinstance(task, dict):
        raise TaskInvalid("TaskInfo must be a JSON object")
    tid = id_value(task.get("task_id"))
    if tid is None:
        raise TaskInvalid("Missing required fields: task_id")
    if not isinstance(task.get("name"), str):
        raise TaskInvalid("Missing required fields: name")
    err = validate_id(tid)
    if err is not None:
        raise TaskInvalid(f"Task ID is invalid: {err}")
    if tid in known_task_ids or tid in also_known:
        raise TaskInvalid(f"Task has duplicate ID: {tid}")
    tagent = id_value(task.get("agent_id"))
    if tagent is None:
        raise TaskInvalid("Missing required fields: agent_id")
    if tagent != agent_id:
        raise TaskInvalid(f"Task uses invalid agent {tagent} while agent {agent_id} is expected")
    grace = ((task.get("kill_policy") or {}).get("grace_period") or {}).get("nanoseconds")
    if grace is not None and (not isinstance(grace, int | float) or grace < 0):
        raise TaskInvalid("Task's 'kill_policy.grace_period' must be non-negative")
    mct = (task.get("max_completion_time") or {}).get("nanoseconds")
    if mct is not None and (not isinstance(mct, int | float) or mct < 0):
        raise TaskInvalid("Task's `max_completion_time` must be non-negative")
    if not task.get("resources"):
        raise TaskInvalid("Task uses no resources")
    resources = parse_resources(task.get("resources"), role=role, what="Task")
    if resources.is_empty():
        raise TaskInvalid("Task uses no resources")
    container = task.get("container")
    if container is not None:
        if not isinstance(container, dict) or container.get("type") not in ("MESOS", "DOCKER"):
            raise TaskInvalid("Task's `ContainerInfo` is invalid: 'ContainerInfo.type' is missing "
                              "or unknown")
        error = containers.container_info_error(container)
        if error is not None:
            raise TaskInvalid(f"Task's `ContainerInfo` is invalid: {error}")
    command = task.get("command")
    if command is not None and not isinstance(command, dict):
        raise TaskInvalid("Task's `CommandInfo` is invalid: expecting an object")
    # As Mesos (``common::validation::validateCommandInfo``), 'value' is not required when
    # 'shell' is false: a task with an image runs the image's Entrypoint/Cmd (docker/runtime);
    # without one the agent fails it ("Executable path is not specified").
    validate_resource_limits(task, resources)
    return tid, resources


def validate_executor(
    executor: Any, *, framework_id: str, role: str, for_group: bool
) -> tuple[str, res.Resources]:
    if not isinstance(executor, dict):
        raise TaskInvalid("ExecutorInfo must be a JSON object")
    eid = id_value(executor.get("executor_id"))
    if eid is None:
        raise TaskInvalid("Missing required fields: executor.executor_id")
    err = validate_id(eid)
    if err is not None:
        raise TaskInvalid(f"Executor ID is invalid: {err}")
    fid = executor.get("framework_id")
    if fid is None:
        raise TaskInvalid("'ExecutorInfo.framework_id' must be set")
    if id_value(fid) != framework_id:
        raise TaskInvalid(
            f"ExecutorInfo has an invalid FrameworkID (Actual: {id_value(fid)} vs Expected: "
            f"{framework_id})"
        )
    grace = (executor.get("shutdown_grace_period") or {}).get("nanoseconds")
    if grace is not None and (not isinstance(grace, int | float) or grace < 0):
        raise TaskInvalid("ExecutorInfo's 'shutdown_grace_period' must be non-negative")
    container = executor.get("container")
    if isinstance(container, dict):
        error = containers.container_info_error(container)
        if error is not None:
            raise TaskInvalid(f"Executor's `ContainerInfo` is invalid: {error}")
    resources = parse_resources(executor.get("resources"), role=role, what="Executor")
    if for_group:
        etype = executor.get("type")
        if etype is None:
            raise TaskInvalid("'ExecutorInfo.type' must be set")
        if etype not in ("DEFAULT", "CUSTOM"):
            raise TaskInvalid("Unknown executor type")
        if (executor.get("container") or {}).get("type") == "DOCKER":
            raise TaskInvalid("Docker ContainerInfo is not supported on the executor")
        cpus = resources.scalar("cpus") if "cpus" in resources.names() else None
        if cpus is None or cpus < MIN_CPUS:
            raise TaskInvalid(
                f"Executor '{eid}' uses less CPUs ({_num(cpus)}) than the minimum required "
                f"({MIN_CPUS:g})"
            )
        mem = resources.scalar("mem") if "mem" in resources.names() else None
        if mem is None or mem < MIN_MEM:
            raise TaskInvalid(
                f"Executor '{eid}' uses less memory ({_num(mem, 'MB')}) than the minimum "
                f"required ({MIN_MEM:g}MB)"
            )
        if "disk" not in resources.names():
            raise TaskInvalid(f"Executor '{eid}' uses no disk")
    else:
        if executor.get("type") not in (None, "CUSTOM"):
            raise TaskInvalid("'ExecutorInfo.type' must be 'CUSTOM'")
        if executor.get("command") is None:
            raise TaskInvalid("'ExecutorInfo.command' must be set")
    return eid, resources


def _num(value: float | None, unit: str = "") -> str:
    return "None" if value is None else f"{value:g}{unit}"


def validate_launch_task(
    task: Any,
    *,
    framework_id: str,
    agent_id: str,
    role: str,
    known_task_ids: Collection[str],
    known_executors: Mapping[str, Any],
    offered: res.Resources,
) -> tuple[str, res.Resources, str | None, res.Resources]:
    """One TaskInfo of a LAUNCH: ``(task_id, task resources, executor id, new executor res)``.

    ``known_executors`` maps this framework's executor ids on the agent to their ExecutorInfo;
    an executor already running adds no resources.
    """
    tid, resources = _task_common(
        task, agent_id=agent_id, known_task_ids=known_task_ids, role=role
    )
    has_exec = task.get("executor") is not None
    if has_exec == (task.get("command") is not None):
        raise TaskInvalid(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        )
    total = resources
    eid: str | None = None
    exec_resources = res.Resources()
    if has_exec:
        eid, exec_resources = validate_executor(
            task["executor"], framework_id=framework_id, role=role, for_group=False
        )
        validate_compatible_executor(task["executor"], eid, exec_resources,
                                     framework_id=framework_id, known_executors=known_executors)
        if eid in known_executors:
            exec_resources = res.Resources()
        total = total + exec_resources
    if not offered.contains(total):
        raise TaskInvalid(
            f"Total resources {total} required by task and its executor is more than "
            f"available {offered}"
        )
    validate_launch_share_cgroups(task)
    return tid, resources, eid, exec_resources


def validate_compatible_executor(executor: Mapping[str, Any], eid: str,
                                 resources: res.Resources, *, framework_id: str,
                                 known_executors: Mapping[str, Any]) -> None:
    """``validateCompatibleExecutorInfo``: a launch onto an executor the agent runs must carry
    the same ExecutorInfo (its resources as the master records them)."""
    existing = known_executors.get(eid)
    if not isinstance(existing, Mapping):
        return
    given = _comparable(executor, resources, framework_id=framework_id)
    if given != _comparable(existing, res.Resources.parse(existing.get("resources")),
                            framework_id=framework_id):
        raise TaskInvalid(
            "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.\n"
            + "-" * 60 + "\nExisting ExecutorInfo:\n"
            + json.dumps(dict(existing), sort_keys=True) + "\n" + "-" * 60
            + "\nExecutorInfo:\n" + json.dumps(dict(executor), sort_keys=True) + "\n"
            + "-" * 60 + "\n")


def _comparable(executor: Mapping[str, Any], resources: res.Resources, *,
                framework_id: str) -> dict[str, Any]:
    out = {k: v for k, v in executor.items() if k != "resources"}
    out["framework_id"] = {"value": framework_id}
    if not resources.is_empty():
        out["resources"] = sorted(json.dumps(r, sort_keys=True) for r in resources.to_raw())
    return out


def validate_task_group(
    executor: Any,
    tasks: Any,
    *,
    framework_id: str,
    agent_id: str,
    role: str,
    known_task_ids: Collection[str],
    known_executors: Mapping[str, Any],
    offered: res.Resources,
    executor_task_containers: Iterable[Any] = (),
) -> tuple[str, list[tuple[str, res.Resources]], res.Resources]:
    """A LAUNCH_GROUP: ``(executor id, [(task id, resources)], new executor resources)``.

    ``executor_task_containers``: the ContainerInfo (or None) of this framework's tasks, live
    or unreachable, already under the same executor on the agent.
    """
    if not isinstance(tasks, list) or not tasks:
        raise TaskInvalid("Task group is empty")
    seen: set[str] = set()
    parsed: list[tuple[str, res.Resources]] = []
    for task in tasks:
        try:
            tid, resources = _task_common(
                task, agent_id=agent_id, known_task_ids=known_task_ids, role=role,
                also_known=seen,
            )
        except TaskInvalid as e:
            tid_text = id_value(task.get("task_id")) if isinstance(task, dict) else None
            raise TaskInvalid(f"Task '{tid_text}' is invalid: {e}") from e
        seen.add(tid)
        if task.get("command") is not None and task.get("executor") is not None:
            raise TaskInvalid(
                f"Task '{tid}' is invalid: Task should have at least one (but not both) of "
                "CommandInfo or ExecutorInfo present"
            )
        if (task.get("container") or {}).get("type") == "DOCKER":
            raise TaskInvalid(
                f"Task '{tid}' is invalid: Docker ContainerInfo is not supported on the task"
            )
        try:
            validate_group_task_limits(task)
        except TaskInvalid as e:
            raise TaskInvalid(f"Task '{tid}' is invalid: {e}") from e
        parsed.append((tid, resources))
    eid, exec_resources = validate_executor(
        executor, framework_id=framework_id, role=role, for_group=True
    )
    for task in tasks:
        if task.get("executor") is not None and task["executor"] != executor:
            raise TaskInvalid(
                f"The `ExecutorInfo` of task '{id_value(task.get('task_id'))}' is different "
                f"from executor '{eid}'"
            )
    validate_compatible_executor(executor, eid, exec_resources, framework_id=framework_id,
                                 known_executors=known_executors)
    if eid in known_executors:
        exec_resources = res.Resources()
    total = exec_resources
    for _, r in parsed:
        total = total + r
    if not offered.contains(total):
        raise TaskInvalid(
            f"Total resources {total} required by task group and its executor are more than "
            f"available {offered}"
        )
    validate_group_share_cgroups(executor, tasks,
                                 executor_task_containers=executor_task_containers)
    return eid, parsed, exec_resources


# --------------------------------------------------------------------------------------------
# Reservations (RESERVE / UNRESERVE in ACCEPT and the operator API)


def parse_reserve(raw: Any, *, roles: Collection[str] | None, principal: str | None
                  ) -> tuple[res.Resources, res.Resources]:
    """RESERVE ``resources`` -> ``(consumed unreserved-ish source, converted)``."""
    target = _dynamically_reserved(raw, what="Invalid reservation resources")
    for r in target:
        role = r.reservations[-1].role
        if validate_role(role) is not None or role == "*":
            raise ValueError(f"Invalid reservation resources: invalid role '{role}'")
        if roles is not None and role not in roles:
            raise ValueError(
                f"A reserve operation was attempted for a role '{role}' the framework is not "
                "subscribed to"
            )
        top = r.reservations[-1]
        if principal is not None and top.principal not in (None, principal):
            raise ValueError(
                f"A reserve operation was attempted by authenticated principal '{principal}', "
                f"which does not match a reserved resource in the request with principal "
                f"'{top.principal}'"
            )
    consumed = target.pop_reservation()
    return consumed, target


def parse_unreserve(raw: Any) -> tuple[res.Resources, res.Resources]:
    """UNRESERVE ``resources`` -> ``(consumed reserved, converted)``."""
    target = _dynamically_reserved(raw, what="Invalid resources")
    return target, target.pop_reservation()


def _dynamically_reserved(raw: Any, *, what: str) -> res.Resources:
    """The resources of a RESERVE/UNRESERVE: parsed, not empty, each dynamically reserved
    (``what`` starts the message, as Mesos words the two operations' errors)."""
    try:
        target = res.Resources.parse(raw if raw is not None else []).unallocated()
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise ValueError(f"Invalid resources: {e}") from e
    if target.is_empty():
        raise ValueError("Invalid resources: Resource cannot be empty")
    for r in target:
        if not r.reservations or r.reservations[-1].type != "DYNAMIC":
            raise ValueError(f"{what}: resource {r.name} is not dynamically reserved")
    return target
