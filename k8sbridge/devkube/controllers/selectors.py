"""Label selectors (``matchLabels`` + ``matchExpressions``), parsed once and matched purely.

ReplicaSets and Deployments select their pods and replica sets with these; the semantics
follow ``metav1.LabelSelectorAsSelector``: an empty selector selects everything, a missing one
nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


class SelectorError(ValueError):
    """A label selector that cannot be interpreted."""


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]
    nothing: bool = False  # a nil selector selects nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        actual = labels or {}
        return all(r.matches(actual) for r in self.requirements)


NOTHING = LabelSelector(requirements=(), nothing=True)


def parse_selector(raw: Any) -> LabelSelector:
    """Parse a ``metav1.LabelSelector`` JSON value; ``None`` selects nothing."""
    if raw is None:
        return NOTHING
    if not isinstance(raw, dict):
        raise SelectorError(f"selector must be an object, not {type(raw).__name__}")
    reqs: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise SelectorError("matchLabels must be an object")
    for k, v in sorted(match_labels.items()):
        reqs.append(Requirement(key=str(k), operator="In", values=frozenset([str(v)])))
    for expr in raw.get("matchExpressions") or []:
        if not isinstance(expr, dict) or not expr.get("key"):
            raise SelectorError(f"invalid matchExpression: {expr!r}")
        op = expr.get("operator")
        values = frozenset(str(v) for v in (expr.get("values") or []))
        if op in ("In", "NotIn"):
            if not values:
                raise SelectorError(f"operator {op} needs values (key {expr['key']!r})")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(f"operator {op} takes no values (key {expr['key']!r})")
        else:
            raise SelectorError(f"unknown selector operator {op!r}")
        reqs.append(Requirement(key=str(expr["key"]), operator=str(op), values=values))
    return LabelSelector(requirements=tuple(reqs))
