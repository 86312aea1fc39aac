"""A Mesos agent as the bridge knows it: parsed once from the operator API's GET_AGENTS.

Why in ``model``: the node controller, the kubelet API and the scheduler all look agents up,
and none of them should depend on the Mesos client to name the record. The raw reply stays a
``TypedDict`` (exactly the v1 JSON); ``parse_agents`` turns it into frozen values and skips
malformed entries (a master answering garbage for one agent must not hide the others).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, TypedDict

from k8sbridge.model import ids
from k8sbridge.model.resources import Attribute, ResourceError, Resources

__all__ = ["AgentInfo", "RawAgent", "RawGetAgents", "parse_agents"]

log = logging.getLogger(__name__)


class RawAgent(TypedDict, total=False):
    """One entry of ``get_agents.agents`` (master.proto ``Response.GetAgents.Agent``)."""

    agent_info: dict[str, Any]
    active: bool
    deactivated: bool
    version: str
    pid: str
    total_resources: list[dict[str, Any]]


class RawGetAgents(TypedDict, total=False):
    agents: list[RawAgent]
    recovered_agents: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: ids.AgentId
    hostname: str
    address: str  # "host:port" of the agent's HTTP API
    active: bool
    total: Resources
    attributes: tuple[Attribute, ...]
    region: str | None
    zone: str | None
    version: str = ""
    removed: bool = False  # the master no longer lists the agent


_PID = re.compile(r"^[^@]+@(?P<addr>[^:]+:\d+)$")


def parse_agents(reply: Any) -> list[AgentInfo]:
    """Parse a GET_AGENTS reply (the whole v1 response); malformed entries are skipped."""
    body = reply.get("get_agents") if isinstance(reply, dict) else None
    entries = body.get("agents") if isinstance(body, dict) else None
    out: list[AgentInfo] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            out.append(_parse_agent(entry))
        except (KeyError, TypeError, ValueError, AttributeError, ResourceError) as e:
            log.warning("skipping a malformed agent in GET_AGENTS: %r", e)
    return out


def _parse_agent(entry: RawAgent) -> AgentInfo:
    info = entry["agent_info"]
    agent_id = ids.AgentId(str(info["id"]["value"]))
    hostname = str(info.get("hostname") or "")
    port = int(info.get("port") or 5051)
    pid_match = _PID.match(str(entry.get("pid") or ""))
    address = pid_match.group("addr") if pid_match else f"{hostname}:{port}"
    total = Resources.parse(entry.get("total_resources") or info.get("resources") or [])
    attributes = tuple(Attribute.parse(a) for a in info.get("attributes") or [])
    fault = (info.get("domain") or {}).get("fault_domain") or {}
    region = (fault.get("region") or {}).get("name")
    zone = (fault.get("zone") or {}).get("name")
    active = bool(entry.get("active", True)) and not entry.get("deactivated", False)
    return AgentInfo(
        agent_id=agent_id,
        hostname=hostname,
        address=address,
        active=active,
        total=total,
        attributes=attributes,
        region=region,
        zone=zone,
        version=str(entry.get("version") or ""),
    )
