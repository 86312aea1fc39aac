"""Parsing the scheduling constraints of a pod spec: affinity terms and topology spread.

Why apart from ``pods.py``: these fields are placement's alone and follow kube-scheduler's
reading, defaults included (a null labelSelector in a pod affinity term selects nothing; an
empty ``namespaces`` and no ``namespaceSelector`` mean the pod's own namespace;
``matchLabelKeys`` / ``mismatchLabelKeys`` merge the pod's own label values into the
selector; a spread constraint's ``minDomains`` defaults to 1, ``nodeAffinityPolicy`` to Honor
and ``nodeTaintsPolicy`` to Ignore). Invalid values raise ``PodSpecError`` naming the field,
as the API server's validation would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge.model.podspec import (
    LabelSelector,
    LabelSelectorRequirement,
    NodeSelectorTerm,
    PodAffinityTerm,
    SpreadConstraint,
    WeightedNodeTerm,
)
from k8sbridge.model.quantity import PodSpecError

__all__ = [
    "parse_label_selector",
    "parse_pod_terms",
    "parse_preferred_node_affinity",
    "parse_spread",
]


def _mapping(value: Any, *, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodSpecError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, *, what: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise PodSpecError(f"{what} must be a list, not {type(value).__name__}")
    return value


def _weight(raw: Any, *, what: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= 100:
        raise PodSpecError(f"{what}.weight must be an integer from 1 to 100")
    return raw


def parse_label_selector(raw: Any, *, what: str, null_selects_nothing: bool) -> LabelSelector:
    if raw is None and null_selects_nothing:
        return LabelSelector(nothing=True)
    sel = _mapping(raw, what=what)
    exprs: list[LabelSelectorRequirement] = []
    for i, e in enumerate(_list(sel.get("matchExpressions"), what=f"{what}.matchExpressions")):
        where = f"{what}.matchExpressions[{i}]"
        r = _mapping(e, what=where)
        op = r.get("operator")
        key = r.get("key")
        values = tuple(str(v) for v in _list(r.get("values"), what=f"{where}.values"))
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise PodSpecError(f"{where}.operator {op!r} is not valid")
        if not isinstance(key, str) or not key:
            raise PodSpecError(f"{where}.key is required")
        if op in ("In", "NotIn") and not values:
            raise PodSpecError(f"{where}: operator {op} needs values")
        if op in ("Exists", "DoesNotExist") and values:
            raise PodSpecError(f"{where}: operator {op} takes no values")
        exprs.append(LabelSelectorRequirement(key=key, operator=op, values=values))
    labels = _mapping(sel.get("matchLabels"), what=f"{what}.matchLabels")
    return LabelSelector(
        match_labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        match_expressions=tuple(exprs),
    )


def _with_label_keys(
    selector: LabelSelector,
    *,
    match: Sequence[str],
    mismatch: Sequence[str],
    labels: Mapping[str, str],
) -> LabelSelector:
    """``matchLabelKeys``: ``key In (pod's value)``; ``mismatchLabelKeys``: ``NotIn``; keys
    the pod does not carry are ignored (kube-scheduler's rule)."""
    extra = [LabelSelectorRequirement(key=k, operator="In", values=(labels[k],))
             for k in match if k in labels]
    extra += [LabelSelectorRequirement(key=k, operator="NotIn", values=(labels[k],))
              for k in mismatch if k in labels]
    if not extra or selector.nothing:
        return selector
    return LabelSelector(match_labels=selector.match_labels,
                         match_expressions=(*selector.match_expressions, *extra))


def _keys(raw: Any, *, what: str) -> tuple[str, ...]:
    return tuple(str(k) for k in _list(raw, what=what))


def _pod_term(
    raw: Any, *, what: str, namespace: str, labels: Mapping[str, str], weight: int = 0
) -> PodAffinityTerm:
    term = _mapping(raw, what=what)
    topology_key = term.get("topologyKey")
    if not isinstance(topology_key, str) or not topology_key:
        raise PodSpecError(f"{what}.topologyKey is required")
    namespaces = tuple(str(n) for n in _list(term.get("namespaces"), what=f"{what}.namespaces"))
    raw_ns_selector = term.get("namespaceSelector")
    ns_selector: LabelSelector | None = None
    all_namespaces = False
    if raw_ns_selector is not None:
        parsed = parse_label_selector(raw_ns_selector, what=f"{what}.namespaceSelector",
                                      null_selects_nothing=False)
        if not parsed.match_labels and not parsed.match_expressions:
            all_namespaces = True  # {} selects every namespace
        else:
            ns_selector = parsed
    if not namespaces and raw_ns_selector is None:
        namespaces = (namespace,)
    selector = parse_label_selector(term.get("labelSelector"), what=f"{what}.labelSelector",
                                    null_selects_nothing=True)
    selector = _with_label_keys(
        selector,
        match=_keys(term.get("matchLabelKeys"), what=f"{what}.matchLabelKeys"),
        mismatch=_keys(term.get("mismatchLabelKeys"), what=f"{what}.mismatchLabelKeys"),
        labels=labels,
    )
    return PodAffinityTerm(
        selector=selector,
        topology_key=topology_key,
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        namespace_selector=ns_selector,
        weight=weight,
    )


def parse_pod_terms(
    raw_affinity: Mapping[str, Any], *, kind: str, namespace: str, labels: Mapping[str, str]
) -> tuple[tuple[PodAffinityTerm, ...], tuple[PodAffinityTerm, ...]]:
    """(required, preferred) terms of ``podAffinity`` or ``podAntiAffinity``."""
    section = _mapping(raw_affinity.get(kind), what=f"spec.affinity.{kind}")
    where = f"spec.affinity.{kind}.requiredDuringSchedulingIgnoredDuringExecution"
    required = tuple(
        _pod_term(t, what=f"{where}[{i}]", namespace=namespace, labels=labels)
        for i, t in enumerate(
            _list(section.get("requiredDuringSchedulingIgnoredDuringExecution"), what=where)
        )
    )
    where = f"spec.affinity.{kind}.preferredDuringSchedulingIgnoredDuringExecution"
    preferred: list[PodAffinityTerm] = []
    for i, t in enumerate(
        _list(section.get("preferredDuringSchedulingIgnoredDuringExecution"), what=where)
    ):
        entry = _mapping(t, what=f"{where}[{i}]")
        preferred.append(
            _pod_term(entry.get("podAffinityTerm"), what=f"{where}[{i}].podAffinityTerm",
                      namespace=namespace, labels=labels,
                      weight=_weight(entry.get("weight"), what=f"{where}[{i}]"))
        )
    return required, tuple(preferred)


def parse_preferred_node_affinity(
    raw_affinity: Mapping[str, Any], *, parse_term: Any
) -> tuple[WeightedNodeTerm, ...]:
    """``nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution``; ``parse_term`` reads
    one NodeSelectorTerm (the parser of the required terms, ``pods._parse_node_term``)."""
    node_aff = _mapping(raw_affinity.get("nodeAffinity"), what="spec.affinity.nodeAffinity")
    where = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
    out: list[WeightedNodeTerm] = []
    for i, t in enumerate(
        _list(node_aff.get("preferredDuringSchedulingIgnoredDuringExecution"), what=where)
    ):
        entry = _mapping(t, what=f"{where}[{i}]")
        term: NodeSelectorTerm = parse_term(entry.get("preference"),
                                            where=f"{where}[{i}].preference")
        out.append(WeightedNodeTerm(weight=_weight(entry.get("weight"), what=f"{where}[{i}]"),
                                    term=term))
    return tuple(out)


_POLICIES = {None: None, "Honor": True, "Ignore": False}


def parse_spread(raw: Any, *, labels: Mapping[str, str]) -> tuple[SpreadConstraint, ...]:
    """``spec.topologySpreadConstraints``."""
    out: list[SpreadConstraint] = []
    seen: set[tuple[str, bool]] = set()
    for i, c in enumerate(_list(raw, what="spec.topologySpreadConstraints")):
        where = f"spec.topologySpreadConstraints[{i}]"
        item = _mapping(c, what=where)
        skew = item.get("maxSkew")
        if not isinstance(skew, int) or isinstance(skew, bool) or skew < 1:
            raise PodSpecError(f"{where}.maxSkew must be an integer of at least 1")
        key = item.get("topologyKey")
        if not isinstance(key, str) or not key:
            raise PodSpecError(f"{where}.topologyKey is required")
        when = item.get("whenUnsatisfiable")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            raise PodSpecError(
                f"{where}.whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway")
        hard = when == "DoNotSchedule"
        if (key, hard) in seen:
            raise PodSpecError(f"{where}: topologyKey {key} and whenUnsatisfiable {when} "
                               "are used twice")
        seen.add((key, hard))
        min_domains = item.get("minDomains")
        if min_domains is not None:
            if not isinstance(min_domains, int) or isinstance(min_domains, bool) \
                    or min_domains < 1:
                raise PodSpecError(f"{where}.minDomains must be an integer of at least 1")
            if not hard:
                raise PodSpecError(f"{where}.minDomains can only be set with "
                                   "whenUnsatisfiable DoNotSchedule")
        policies: list[bool] = []
        for field, default in (("nodeAffinityPolicy", True), ("nodeTaintsPolicy", False)):
            value = item.get(field)
            if value not in _POLICIES:
                raise PodSpecError(f"{where}.{field} must be Honor or Ignore")
            honour = _POLICIES[value]
            policies.append(default if honour is None else honour)
        selector = parse_label_selector(item.get("labelSelector"),
                                        what=f"{where}.labelSelector",
                                        null_selects_nothing=True)
        selector = _with_label_keys(
            selector, match=_keys(item.get("matchLabelKeys"), what=f"{where}.matchLabelKeys"),
            mismatch=(), labels=labels,
        )
        out.append(SpreadConstraint(
            max_skew=skew, topology_key=key, hard=hard, selector=selector,
            min_domains=min_domains or 1, honour_node_affinity=policies[0],
            honour_node_taints=policies[1],
        ))
    return tuple(out)
