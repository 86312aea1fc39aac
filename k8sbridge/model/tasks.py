"""The one parsed Mesos ``TaskStatus`` of the code base, from the scheduler stream to pod status.

Why here and not in ``k8sbridge.mesos``: the pod-status map is pure and may import only
``model``, and the scheduler, the status writer and the Mesos client must agree on one record
(two types meant two parsers that disagreed on empty uuids, missing messages and timestamps).
``TaskStatus.from_raw`` reads v1 ``TaskStatus`` JSON and raises ``TaskStatusError`` on anything
malformed; the Mesos client turns that into its ``ProtocolError``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import Any, TypedDict

from k8sbridge.model import ids

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "CheckResult",
    "RawTaskStatus",
    "TaskStatus",
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


class RawTaskStatus(TypedDict, total=False):
    """v1 ``TaskStatus`` as on the wire (mesos.proto); only the fields the bridge reads."""

    task_id: dict[str, str]
    state: str
    message: str
    source: str
    reason: str
    data: str  # base64
    agent_id: dict[str, str]
    executor_id: dict[str, str]
    timestamp: float
    uuid: str  # base64 of 16 bytes
    healthy: bool
    labels: dict[str, Any]
    check_status: dict[str, Any]
    container_status: dict[str, Any]
    unreachable_time: dict[str, int]
    limitation: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStatus:
    """One Mesos task status, parsed once: the scheduler stream, reconciliation and the
    pod-status map all use this type (``mesos.types.TaskStatus`` and ``TaskStatusView`` are
    the same class under older names)."""

    task_id: ids.TaskId
    state: str
    timestamp: float = 0.0  # epoch seconds; 0 when the master sent none
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
    data: bytes | None = None
    labels: tuple[tuple[str, str], ...] = ()
    unreachable_time: float | None = None  # epoch seconds

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def needs_ack(self) -> bool:
        """Only reliably delivered updates (those with a uuid) are acknowledged."""
        return bool(self.uuid)

    @property
    def check_status(self) -> dict[str, Any] | None:
        """The check result as v1 ``CheckStatusInfo`` JSON (for code that reads the wire shape)."""
        if self.check is None:
            return None
        raw: dict[str, Any] = {"type": self.check.type}
        if self.check.exit_code is not None:
            raw["command"] = {"exit_code": self.check.exit_code}
        if self.check.http_status is not None:
            raw["http"] = {"status_code": self.check.http_status}
        if self.check.tcp_succeeded is not None:
            raw["tcp"] = {"succeeded": self.check.tcp_succeeded}
        return raw

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> TaskStatus:
        """Parse v1 ``TaskStatus`` JSON; anything malformed raises ``TaskStatusError``."""
        try:
            return cls._from_raw(raw)
        except TaskStatusError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise TaskStatusError(f"malformed TaskStatus: {e!r}") from e

    @classmethod
    def parse(cls, raw: Any) -> TaskStatus:
        """``from_raw`` for any JSON value (a non-object is a ``TaskStatusError`` too)."""
        if not isinstance(raw, Mapping):
            raise TaskStatusError(f"TaskStatus is a {type(raw).__name__}, not an object")
        return cls.from_raw(raw)

    @classmethod
    def _from_raw(cls, raw: Mapping[str, Any]) -> TaskStatus:
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
            for net in _listed(cstatus.get("network_infos"))
            for ip in _listed(net.get("ip_addresses"))
            if ip.get("ip_address")
        )
        container = (cstatus.get("container_id") or {}).get("value")
        agent = (raw.get("agent_id") or {}).get("value")
        executor = (raw.get("executor_id") or {}).get("value")
        healthy = raw.get("healthy")
        reason = raw.get("reason")
        source = raw.get("source")
        uuid = raw.get("uuid")
        if uuid is not None and not _base64(uuid, what="uuid"):
            uuid = None  # an empty uuid: nothing to acknowledge
        timestamp = float(raw.get("timestamp") or 0.0)
        if not 0.0 <= timestamp < _YEAR_10000:  # also rejects NaN and infinities
            raise TaskStatusError(f"TaskStatus timestamp {timestamp!r} is out of range")
        message = raw.get("message")
        return cls(
            task_id=ids.TaskId(str(task_id)),
            state=state,
            timestamp=timestamp,
            reason=reason if isinstance(reason, str) else None,
            message=message if isinstance(message, str) else "",
            source=source if isinstance(source, str) else None,
            healthy=healthy if isinstance(healthy, bool) else None,
            check=check,
            uuid=uuid if isinstance(uuid, str) else None,
            agent_id=ids.AgentId(str(agent)) if agent else None,
            executor_id=ids.ExecutorId(str(executor)) if executor else None,
            container_id=ids.ContainerId(str(container)) if container else None,
            ip_addresses=ips,
            data=_base64(raw["data"], what="data") if "data" in raw else None,
            labels=_labels(raw.get("labels")),
            unreachable_time=_unreachable_time(raw.get("unreachable_time")),
        )


#: The older names of ``TaskStatus`` (the pod-status map and its tests use this one).
TaskStatusView = TaskStatus


def _listed(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):  # stout's parser accepts one object for a repeated field
        return [raw]
    if not isinstance(raw, list):
        raise TaskStatusError(f"expected a list, got {type(raw).__name__}")
    return raw


def _base64(text: Any, *, what: str) -> bytes:
    if not isinstance(text, str):
        raise TaskStatusError(f"TaskStatus.{what}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise TaskStatusError(f"TaskStatus.{what}: invalid base64") from e


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        raise TaskStatusError("TaskStatus.labels: expected an object")
    return tuple((str(i.get("key", "")), str(i.get("value", "")))
                 for i in _listed(raw.get("labels")))


def _unreachable_time(raw: Any) -> float | None:
    if not raw:
        return None
    nanos = raw.get("nanoseconds", 0) if isinstance(raw, Mapping) else None
    if isinstance(nanos, bool) or not isinstance(nanos, int | float):
        raise TaskStatusError("TaskStatus.unreachable_time.nanoseconds: expected an integer")
    return nanos / 1e9
