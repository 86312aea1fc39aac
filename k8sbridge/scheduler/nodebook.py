"""What users change on the bridge's Nodes, as placement reads it: labels, taints, cordon.

Why the Node and not the agent: the Node is where users say what they want (``kubectl label
node``, ``kubectl taint node``, ``kubectl cordon``/``drain``), and where the node lifecycle
controller puts its taints. The bridge publishes each agent's attributes and fault domain as
labels there (``kubelet.nodes``, a merge patch that keeps every other label), so the Node's
labels are the agent's plus the users'. The loop keeps this book current from the Node watch
and builds each pass's ``AgentView`` from it; an agent whose Node was not seen yet is placed
by the labels derived from the agent and the bridge's own taint, as before.

Pure: ``NodeBook.observe`` takes a watch event and answers whether anything placement reads
changed (then the loop runs a pass: a pod a cordon or a missing label kept pending may fit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from k8sbridge.model import cluster

__all__ = ["NodeBook", "NodeFacts", "facts_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeFacts:
    labels: Mapping[str, str]
    taints: tuple[cluster.Taint, ...]
    unschedulable: bool


def facts_of(raw: Mapping[str, Any]) -> NodeFacts:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    labels = meta.get("labels") or {}
    taints = []
    for t in spec.get("taints") or []:
        if isinstance(t, dict) and t.get("key"):
            taints.append(cluster.Taint(key=str(t["key"]), value=str(t.get("value") or ""),
                                        effect=str(t.get("effect") or "")))
    return NodeFacts(
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        taints=tuple(taints),
        unschedulable=bool(spec.get("unschedulable")),
    )


class NodeBook:
    """Node name → the facts placement reads (owned by the loop task)."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[str, NodeFacts] = {}

    def get(self, name: str) -> NodeFacts | None:
        return self._nodes.get(name)

    def __len__(self) -> int:
        return len(self._nodes)

    def observe(self, etype: str | None, raw: Mapping[str, Any]) -> bool:
        """Apply one watch event; True when labels, taints or the cordon changed."""
        name = str((raw.get("metadata") or {}).get("name") or "")
        if not name:
            return False
        if etype == "DELETED":
            return self._nodes.pop(name, None) is not None
        facts = facts_of(raw)
        if self._nodes.get(name) == facts:
            return False
        self._nodes[name] = facts
        return True
