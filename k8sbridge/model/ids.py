"""Typed identifiers shared by the kernel, the Mesos client and the bridge.

Why NewType: ids of different kinds are all strings on the wire; mixing up an agent id and an
offer id is a bug the type checker should catch, at no run-time cost.
"""

from __future__ import annotations

from typing import NewType

FrameworkId = NewType("FrameworkId", str)
AgentId = NewType("AgentId", str)
OfferId = NewType("OfferId", str)
TaskId = NewType("TaskId", str)
ExecutorId = NewType("ExecutorId", str)
ContainerId = NewType("ContainerId", str)
PodKey = NewType("PodKey", str)  # "namespace/name"
PodUid = NewType("PodUid", str)
