"""Offer constraints (``FrameworkInfo.offer_constraints``): parsing and matching agents.

Why a module: Mesos' ``OfferConstraintsFilter`` is self-contained: attribute selectors
(a name or a pseudo-attribute), predicates (exists, text equality, regex match) and their
semantics on non-TEXT attributes, validated with Mesos' messages.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from k8sbridge.kernel.allocation import AllocatorError
from k8sbridge.kernel.resources import Attribute

# --------------------------------------------------------------------------------------------
# Offer constraints (scheduler.proto ``OfferConstraints``)

PredicateKind = Literal[
    "exists", "not_exists", "text_equals", "text_not_equals", "text_matches", "text_not_matches"
]
SelectorKind = Literal["attribute", "HOSTNAME", "REGION", "ZONE"]
_PREDICATES: tuple[PredicateKind, ...] = (
    "exists",
    "not_exists",
    "text_equals",
    "text_not_equals",
    "text_matches",
    "text_not_matches",
)


@dataclasses.dataclass(frozen=True, slots=True)
class AttributeConstraint:
    """One ``AttributeConstraint``: a selector (attribute name or pseudo-attribute) + predicate."""

    selector: SelectorKind
    attribute_name: str
    predicate: PredicateKind
    value: str = ""  # text_equals / text_not_equals
    pattern: re.Pattern[str] | None = None  # text_matches / text_not_matches


# role -> groups (OR-ed) of constraints (AND-ed)
OfferConstraints = dict[str, tuple[tuple[AttributeConstraint, ...], ...]]


def _parse_constraint(raw: Any, *, role: str) -> AttributeConstraint:
    if not isinstance(raw, Mapping):
        raise AllocatorError(f"A role {role} has an invalid 'AttributeConstraint': not an object")
    selector_raw = raw.get("selector")
    if not isinstance(selector_raw, Mapping):
        selector_raw = {}
    selector: SelectorKind
    name = ""
    if "attribute_name" in selector_raw:
        selector = "attribute"
        name = str(selector_raw["attribute_name"])
    elif "pseudoattribute_type" in selector_raw:
        kind = selector_raw["pseudoattribute_type"]
        if kind not in ("HOSTNAME", "REGION", "ZONE"):
            raise AllocatorError(
                f"A role {role} has an invalid 'AttributeConstraint': "
                f"Unknown pseudoattribute type {kind!r}"
            )
        selector = kind
    else:
        raise AllocatorError(
            f"A role {role} has an invalid 'AttributeConstraint': Exactly one of "
            "'AttributeConstraint::Selector::name' or "
            "'AttributeConstraint::Selector::pseudoattribute_type' must be set"
        )
    predicate_raw = raw.get("predicate")
    if not isinstance(predicate_raw, Mapping):
        predicate_raw = {}
    kinds = [k for k in _PREDICATES if k in predicate_raw]
    if len(kinds) != 1:
        raise AllocatorError(
            f"A role {role} has an invalid 'AttributeConstraint': Unknown predicate type"
        )
    kind_ = kinds[0]
    body = predicate_raw[kind_]
    if not isinstance(body, Mapping):
        body = {}
    if kind_ in ("text_equals", "text_not_equals"):
        return AttributeConstraint(
            selector=selector,
            attribute_name=name,
            predicate=kind_,
            value=str(body.get("value", "")),
        )
    if kind_ in ("text_matches", "text_not_matches"):
        regex = str(body.get("regex", ""))
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise AllocatorError(
                f"A role {role} has an invalid 'AttributeConstraint': "
                f"Failed to construct regex from pattern '{regex}': {e}"
            ) from e
        return AttributeConstraint(
            selector=selector, attribute_name=name, predicate=kind_, pattern=pattern
        )
    return AttributeConstraint(selector=selector, attribute_name=name, predicate=kind_)


def parse_offer_constraints(raw: Mapping[str, Any] | None) -> OfferConstraints:
    """Parse ``{"role_constraints": {role: {"groups": [...]}}}`` as Mesos validates it."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise AllocatorError("'offer_constraints' must be an object")
    roles_raw = raw.get("role_constraints") or {}
    if not isinstance(roles_raw, Mapping):
        raise AllocatorError("'OfferConstraints::role_constraints' must be an object")
    out: OfferConstraints = {}
    for role, role_raw in roles_raw.items():
        groups_raw = role_raw.get("groups") if isinstance(role_raw, Mapping) else None
        if not groups_raw:
            raise AllocatorError(
                "'OfferConstraints::role_constraints' has an empty "
                f"'RoleConstraints::groups' for role {role}"
            )
        groups: list[tuple[AttributeConstraint, ...]] = []
        for group_raw in groups_raw:
            items = (
                group_raw.get("attribute_constraints") if isinstance(group_raw, Mapping) else None
            )
            if not items:
                raise AllocatorError(
                    f"'OfferConstraints::RoleConstraints::groups' for role {role} "
                    "contains an empty RoleConstraints::Group"
                )
            groups.append(tuple(_parse_constraint(item, role=str(role)) for item in items))
        out[str(role)] = tuple(groups)
    return out


def _apply_predicate(constraint: AttributeConstraint, value: str | Attribute | None) -> bool:
    """Mesos' predicate semantics: absent, a string (pseudo-attribute) or an attribute."""
    kind = constraint.predicate
    if kind == "exists":
        return value is not None
    if kind == "not_exists":
        return value is None
    if value is None:
        return kind in ("text_not_equals", "text_not_matches")
    if isinstance(value, Attribute):
        if value.type != "TEXT":
            return True  # text predicates hold for non-TEXT attributes, as in Mesos
        text = value.text
    else:
        text = value
    if kind == "text_equals":
        return text == constraint.value
    if kind == "text_not_equals":
        return text != constraint.value
    assert constraint.pattern is not None
    matched = constraint.pattern.fullmatch(text) is not None
    return matched if kind == "text_matches" else not matched


def _constraint_holds(
    constraint: AttributeConstraint,
    *,
    attributes: Mapping[str, Attribute],
    hostname: str,
    region: str | None,
    zone: str | None,
) -> bool:
    value: str | Attribute | None
    if constraint.selector == "attribute":
        value = attributes.get(constraint.attribute_name)
    elif constraint.selector == "HOSTNAME":
        value = hostname
    else:
        has_domain = region is not None or zone is not None
        if not has_domain:
            value = None
        elif constraint.selector == "REGION":
            value = region or ""
        else:
            value = zone or ""
    return _apply_predicate(constraint, value)


def agent_matches(
    groups: Sequence[Sequence[AttributeConstraint]],
    *,
    attributes: Sequence[Attribute],
    hostname: str = "",
    region: str | None = None,
    zone: str | None = None,
) -> bool:
    """True when some group has all its constraints satisfied by the agent."""
    by_name = {a.name: a for a in attributes}
    return any(
        all(
            _constraint_holds(c, attributes=by_name, hostname=hostname, region=region, zone=zone)
            for c in group
        )
        for group in groups
    )
