"""Mesos protocol constants the kernel needs everywhere: id types and the task states.

Why a module: the master, the allocator and the agents agree on these, and the kernel must not
borrow them from the bridge it stands in for (``mesos.proto``'s ``TaskState`` and
``protobuf::isTerminalState`` are the source).
"""

from __future__ import annotations

from typing import NewType

__all__ = ["AgentId", "FrameworkId", "TASK_STATES", "TERMINAL_STATES"]

FrameworkId = NewType("FrameworkId", str)
AgentId = NewType("AgentId", str)

# mesos.proto ``TaskState``, in the proto's order.
TASK_STATES = (
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
    "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
    "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
)

# ``protobuf::isTerminalState``.
TERMINAL_STATES = frozenset({
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
    "TASK_GONE", "TASK_GONE_BY_OPERATOR",
})
