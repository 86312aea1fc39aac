"""Label and field selectors: parsed once per request into pure predicates over stored objects.

Why: list, watch (with the selector-boundary rule), deletecollection and the controllers'
ownership checks all need the same matching; a parsed, immutable selector keeps it in one place.
Unsupported field labels are a 400, as on the real apiserver.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

from k8sbridge.devkube import errors

Op = Literal["=", "!=", "in", "notin", "exists", "!"]

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Op
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "=":
            return present and labels[self.key] in self.values
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "!=":
            return not present or labels[self.key] not in self.values
        return not present or labels[self.key] not in self.values  # notin


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_SET = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$")


def _check_key(key: str, text: str) -> None:
    if not _KEY.match(key):
        raise errors.bad_request(
            f"unable to parse requirement: invalid label key {key!r} in {text!r}"
        )


def parse_labels(text: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,e in (f,g),!h,i`` (the labelSelector query parameter)."""
    if not text:
        return LabelSelector()
    requirements: list[Requirement] = []
    for part in _split_top(text):
        m = _SET.match(part)
        if m:
            key = m.group("key")
            _check_key(key, text)
            values = frozenset(v.strip() for v in m.group("values").split(",") if v.strip())
            op: Op = "in" if m.group("op") == "in" else "notin"
            requirements.append(Requirement(key=key, op=op, values=values))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            requirements.append(Requirement(key=key, op="!", values=frozenset()))
            continue
        for token, eop in (("!=", "!="), ("==", "="), ("=", "=")):
            if token in part:
                key, _, value = part.partition(token)
                key, value = key.strip(), value.strip()
                _check_key(key, text)
                requirements.append(
                    Requirement(key=key, op="=" if eop == "=" else "!=", values=frozenset({value}))
                )
                break
        else:
            _check_key(part, text)
            requirements.append(Requirement(key=part, op="exists", values=frozenset()))
    return LabelSelector(requirements=tuple(requirements))


def from_label_selector_object(raw: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as a predicate.

    Raises ValueError on malformed expressions (the caller turns it into a validation cause).
    """
    if not raw:
        return LabelSelector()
    requirements: list[Requirement] = []
    for key, value in sorted((raw.get("matchLabels") or {}).items()):
        requirements.append(Requirement(key=str(key), op="=", values=frozenset({str(value)})))
    for expr in raw.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        operator = expr.get("operator")
        values = frozenset(str(v) for v in expr.get("values") or [])
        if operator == "In":
            requirements.append(Requirement(key=key, op="in", values=values))
        elif operator == "NotIn":
            requirements.append(Requirement(key=key, op="notin", values=values))
        elif operator == "Exists":
            requirements.append(Requirement(key=key, op="exists", values=frozenset()))
        elif operator == "DoesNotExist":
            requirements.append(Requirement(key=key, op="!", values=frozenset()))
        else:
            raise ValueError(f"{operator!r} is not a valid label selector operator")
    return LabelSelector(requirements=tuple(requirements))


@dataclasses.dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            actual = field_value(obj, r.field)
            if (actual == r.value) == r.negate:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    def exact(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and not r.negate:
                return r.value
        return None


_ALIASES = {
    "spec.host": "spec.nodeName",
    # events.k8s.io/v1 names of the stored core/v1 event fields
    "reportingController": "reportingComponent",
    **{f"regarding.{f}": f"involvedObject.{f}" for f in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
}
_BOOLEAN_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})


def parse_fields(text: str | None, *, supported: frozenset[str]) -> FieldSelector:
    if not text:
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        for token, negated in (("!=", True), ("==", False), ("=", False)):
            if token in part:
                field, _, value = part.partition(token)
                field = field.strip()
                negate = negated
                break
        else:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        if field not in supported:
            raise errors.bad_request(f'field label not supported: {field}')
        requirements.append(
            FieldRequirement(field=_ALIASES.get(field, field), negate=negate, value=value.strip())
        )
    return FieldSelector(requirements=tuple(requirements))


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string form of a selectable field (missing → "", booleans lower-case)."""
    if field == "status.podIPs":
        ips = (obj.get("status") or {}).get("podIPs") or []
        return str(ips[0].get("ip", "")) if ips else ""
    if field == "source":
        return str((obj.get("source") or {}).get("component", ""))
    if field == "status.successful":  # a Job's succeeded count, 0 when unset
        return str((obj.get("status") or {}).get("succeeded") or 0)
    current: Any = obj
    for part in field.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return "false" if field in _BOOLEAN_FIELDS else ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
