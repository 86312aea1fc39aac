"""A small parsed view of a Mesos ``TaskStatus``: what the pod-status map needs, nothing more.

Why here and not in ``k8sbridge.mesos``: the status map is pure and may import only ``model``;
the Mesos client's own types are richer and may change with the wire. ``TaskStatusView.from_raw``
reads v1 ``TaskStatus`` JSON directly, so either side can produce it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from k8sbridge.model import ids

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "CheckResult",
    "TaskStatusError",
    "TaskStatusView",
    "parse_check",
    "state_rank",
]

STATES = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)
TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)
ACTIVE_STATES = frozenset({"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})

# How far along its life a task is: an update of lower rank than one already applied is stale.
# UNREACHABLE/UNKNOWN sit beside RUNNING (a partition can heal back to RUNNING).
_RANK = {
    "TASK_STAGING": 0,
    "TASK_STARTING": 1,
    "TASK_RUNNING": 2,
    "TASK_UNREACHABLE": 2,
    "TASK_UNKNOWN": 2,
    "TASK_KILLING": 3,
}


_YEAR_10000 = 253402300800.0  # epoch seconds: beyond this no calendar time can render


def state_rank(state: str) -> int:
    return _RANK.get(state, 4)


class TaskStatusError(ValueError):
    """TaskStatus JSON without the required fields."""


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """A Mesos check result (``check_status``); ``passed`` uses Kubernetes' probe rules."""

    type: str  # COMMAND | HTTP | TCP
    exit_code: int | None = None
    http_status: int | None = None
    tcp_succeeded: bool | None = None

    @property
    def passed(self) -> bool | None:
        """None while the check has no result yet (Mesos sends an empty result first)."""
        if self.type == "COMMAND":
            return None if self.exit_code is None else self.exit_code == 0
        if self.type == "HTTP":
            return None if self.http_status is None else 200 <= self.http_status < 400
        if self.type == "TCP":
            return self.tcp_succeeded
        return None


def parse_check(raw: Any) -> CheckResult | None:
    """A v1 ``CheckStatusInfo`` (``TaskStatus.check_status``) as a ``CheckResult``."""
    if not isinstance(raw, Mapping) or not raw.get("type"):
        return None
    exit_code = _field(raw, "command", "exit_code")
    status_code = _field(raw, "http", "status_code")
    succeeded = _field(raw, "tcp", "succeeded")
    return CheckResult(
        type=str(raw["type"]),
        exit_code=exit_code if type(exit_code) is int else None,
        http_status=status_code if type(status_code) is int else None,
        tcp_succeeded=succeeded if isinstance(succeeded, bool) else None,
    )


def _field(raw: Mapping[str, Any], section: str, name: str) -> Any:
    inner = raw.get(section)
    return inner.get(name) if isinstance(inner, Mapping) else None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStatusView:
    task_id: ids.TaskId
    state: str
    timestamp: float = 0.0
    reason: str | None = None
    message: str = ""
    source: str | None = None
    healthy: bool | None = None
    check: CheckResult | None = None
    uuid: str | None = None  # base64 as on the wire; None for master-generated updates
    agent_id: ids.AgentId | None = None
    executor_id: ids.ExecutorId | None = None
    container_id: ids.ContainerId | None = None
    ip_addresses: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> TaskStatusView:
        """Parse v1 ``TaskStatus`` JSON; anything malformed raises ``TaskStatusError``."""
        try:
            return cls._from_raw(raw)
        except TaskStatusError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise TaskStatusError(f"malformed TaskStatus: {e!r}") from e

    @classmethod
    def _from_raw(cls, raw: Mapping[str, Any]) -> TaskStatusView:
        try:
            task_id = raw["task_id"]["value"]
            state = raw["state"]
        except (KeyError, TypeError) as e:
            raise TaskStatusError(f"TaskStatus without task_id or state: {e}") from e
        if not isinstance(state, str) or state not in STATES:
            raise TaskStatusError(f"unknown task state {state!r}")
        check = parse_check(raw.get("check_status"))
        cstatus = raw.get("container_status") or {}
        ips = tuple(
            str(ip["ip_address"])
            for net in cstatus.get("network_infos") or ()
            for ip in net.get("ip_addresses") or ()
            if ip.get("ip_address")
        )
        container = (cstatus.get("container_id") or {}).get("value")
        agent = (raw.get("agent_id") or {}).get("value")
        executor = (raw.get("executor_id") or {}).get("value")
        healthy = raw.get("healthy")
        reason = raw.get("reason")
        source = raw.get("source")
        uuid = raw.get("uuid")
        timestamp = float(raw.get("timestamp") or 0.0)
        if not 0.0 <= timestamp < _YEAR_10000:  # also rejects NaN and infinities
            raise TaskStatusError(f"TaskStatus timestamp {timestamp!r} is out of range")
        return cls(
            task_id=ids.TaskId(str(task_id)),
            state=state,
            timestamp=timestamp,
            reason=reason if isinstance(reason, str) else None,
            message=str(raw.get("message") or ""),
            source=source if isinstance(source, str) else None,
            healthy=healthy if isinstance(healthy, bool) else None,
            check=check,
            uuid=uuid if isinstance(uuid, str) else None,
            agent_id=ids.AgentId(str(agent)) if agent else None,
            executor_id=ids.ExecutorId(str(executor)) if executor else None,
            container_id=ids.ContainerId(str(container)) if container else None,
            ip_addresses=ips,
        )
