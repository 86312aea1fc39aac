"""What the apiserver's decoder refuses before anything else looks at an object.

Why: a body of the wrong JSON types (a string where a list is read, a list where a map is) must
become a 422 naming the field rather than crash the server, and a resource quantity that does not
decode is a 400 in the apiserver's words. Decoding also turns every quantity into the canonical
form the apiserver stores ("1000m" becomes "1"). Checked before defaulting, so bad input can never
reach code that trusts the shape.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors, jsontree, kinds, quantity

Cause = errors.Cause

Shape = tuple[tuple[str, ...], type | tuple[type, ...]]

_META_SHAPES: list[Shape] = [
    (("metadata",), dict),
    (("metadata", "name"), str), (("metadata", "generateName"), str),
    (("metadata", "namespace"), str), (("metadata", "uid"), str),
    (("metadata", "resourceVersion"), str), (("metadata", "labels"), dict),
    (("metadata", "annotations"), dict), (("metadata", "finalizers"), list),
    (("metadata", "finalizers", "*"), str), (("metadata", "ownerReferences"), list),
    (("metadata", "ownerReferences", "*"), dict),
    (("metadata", "ownerReferences", "*", "uid"), str),
    (("metadata", "ownerReferences", "*", "name"), str),
    (("metadata", "ownerReferences", "*", "kind"), str),
]


def _pod_spec_shapes(prefix: tuple[str, ...]) -> list[Shape]:
    shapes: list[Shape] = [
        (prefix, dict), ((*prefix, "nodeName"), str), ((*prefix, "schedulerName"), str),
        ((*prefix, "restartPolicy"), str), ((*prefix, "serviceAccountName"), str),
        ((*prefix, "serviceAccount"), str), ((*prefix, "priority"), int),
        ((*prefix, "terminationGracePeriodSeconds"), int),
        ((*prefix, "activeDeadlineSeconds"), int), ((*prefix, "hostNetwork"), bool),
        ((*prefix, "nodeSelector"), dict), ((*prefix, "securityContext"), dict),
        ((*prefix, "readinessGates"), list), ((*prefix, "readinessGates", "*"), dict),
    ]
    for group in ("tolerations", "volumes", "schedulingGates", "imagePullSecrets"):
        shapes += [((*prefix, group), list), ((*prefix, group, "*"), dict)]
    for group in ("containers", "initContainers", "ephemeralContainers"):
        item = (*prefix, group, "*")
        shapes += [
            ((*prefix, group), list), (item, dict), ((*item, "name"), str),
            ((*item, "image"), str), ((*item, "ports"), list), ((*item, "ports", "*"), dict),
            ((*item, "env"), list), ((*item, "env", "*"), dict),
            ((*item, "resources"), dict), ((*item, "resources", "requests"), dict),
            ((*item, "resources", "limits"), dict), ((*item, "command"), list),
            ((*item, "args"), list), ((*item, "volumeMounts"), list),
            ((*item, "volumeMounts", "*"), dict),
        ]
    return shapes


_STATUS_SHAPES: list[Shape] = [
    (("status",), dict), (("status", "phase"), str), (("status", "reason"), str),
    (("status", "conditions"), list), (("status", "conditions", "*"), dict),
    (("status", "addresses"), list), (("status", "addresses", "*"), dict),
    (("status", "nodeInfo"), dict), (("status", "daemonEndpoints"), dict),
    (("status", "daemonEndpoints", "kubeletEndpoint"), dict),
    (("status", "podIPs"), list), (("status", "podIPs", "*"), dict),
]
for _group in ("containerStatuses", "initContainerStatuses"):
    _STATUS_SHAPES += [
        (("status", _group), list), (("status", _group, "*"), dict),
        (("status", _group, "*", "state"), dict), (("status", _group, "*", "lastState"), dict),
        (("status", _group, "*", "restartCount"), int),
    ]
for _state in ("waiting", "running", "terminated"):
    for _group in ("containerStatuses", "initContainerStatuses"):
        _STATUS_SHAPES.append((("status", _group, "*", "state", _state), dict))

_WORKLOAD_SHAPES: list[Shape] = [
    (("spec", "replicas"), int), (("spec", "selector"), dict),
    (("spec", "selector", "matchLabels"), dict), (("spec", "selector", "matchExpressions"), list),
    (("spec", "selector", "matchExpressions", "*"), dict),
    (("spec", "selector", "matchExpressions", "*", "values"), list),
    (("spec", "template"), dict), (("spec", "template", "metadata"), dict),
    (("spec", "template", "metadata", "labels"), dict), (("spec", "strategy"), dict),
    (("spec", "strategy", "rollingUpdate"), dict),
]

_JOB_INTS = ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
             "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes")


def _job_spec_shapes(prefix: tuple[str, ...]) -> list[Shape]:
    shapes: list[Shape] = [(prefix, dict), ((*prefix, "suspend"), bool),
                           ((*prefix, "manualSelector"), bool),
                           ((*prefix, "completionMode"), str), ((*prefix, "selector"), dict),
                           ((*prefix, "selector", "matchLabels"), dict),
                           ((*prefix, "selector", "matchExpressions"), list),
                           ((*prefix, "template"), dict), ((*prefix, "template", "metadata"), dict),
                           ((*prefix, "template", "metadata", "labels"), dict),
                           ((*prefix, "template", "metadata", "annotations"), dict),
                           ((*prefix, "podFailurePolicy"), dict),
                           ((*prefix, "podFailurePolicy", "rules"), list),
                           ((*prefix, "podFailurePolicy", "rules", "*"), dict),
                           ((*prefix, "podFailurePolicy", "rules", "*", "onExitCodes"), dict),
                           ((*prefix, "podFailurePolicy", "rules", "*", "onExitCodes",
                             "values"), list),
                           ((*prefix, "podFailurePolicy", "rules", "*", "onExitCodes", "values",
                             "*"), int),
                           ((*prefix, "podFailurePolicy", "rules", "*", "onPodConditions"),
                            list),
                           ((*prefix, "podFailurePolicy", "rules", "*", "onPodConditions", "*"),
                            dict)]
    shapes += [((*prefix, field), int) for field in _JOB_INTS]
    return shapes + _pod_spec_shapes((*prefix, "template", "spec"))


_RULE_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
_RBAC_SHAPES: list[Shape] = [
    (("rules",), list), (("rules", "*"), dict),
    *(s for f in _RULE_FIELDS for s in ((("rules", "*", f), list), (("rules", "*", f, "*"), str))),
    (("aggregationRule",), dict), (("aggregationRule", "clusterRoleSelectors"), list),
    (("aggregationRule", "clusterRoleSelectors", "*"), dict),
    (("aggregationRule", "clusterRoleSelectors", "*", "matchLabels"), dict),
    (("aggregationRule", "clusterRoleSelectors", "*", "matchExpressions"), list),
]
_BINDING_SHAPES: list[Shape] = [
    (("roleRef",), dict), *((("roleRef", f), str) for f in ("apiGroup", "kind", "name")),
    (("subjects",), list), (("subjects", "*"), dict),
    *((("subjects", "*", f), str) for f in ("apiGroup", "kind", "name", "namespace")),
]

_SHAPES: dict[str, list[Shape]] = {
    "jobs": _META_SHAPES + _job_spec_shapes(("spec",)) + [
        (("status",), dict), (("status", "conditions"), list),
        (("status", "conditions", "*"), dict), (("status", "active"), int),
        (("status", "succeeded"), int), (("status", "failed"), int)],
    "cronjobs": _META_SHAPES + [
        (("spec",), dict), (("spec", "schedule"), str), (("spec", "timeZone"), str),
        (("spec", "concurrencyPolicy"), str), (("spec", "suspend"), bool),
        (("spec", "startingDeadlineSeconds"), int), (("spec", "successfulJobsHistoryLimit"), int),
        (("spec", "failedJobsHistoryLimit"), int), (("spec", "jobTemplate"), dict),
        (("spec", "jobTemplate", "metadata"), dict),
        (("spec", "jobTemplate", "metadata", "labels"), dict),
        (("spec", "jobTemplate", "metadata", "annotations"), dict),
        (("status",), dict), (("status", "active"), list), (("status", "active", "*"), dict),
    ] + _job_spec_shapes(("spec", "jobTemplate", "spec")),
    "pods": _META_SHAPES + _pod_spec_shapes(("spec",)) + _STATUS_SHAPES,
    "poddisruptionbudgets": _META_SHAPES + [
        (("spec",), dict), (("spec", "selector"), dict),
        (("spec", "selector", "matchLabels"), dict),
        (("spec", "selector", "matchExpressions"), list),
        (("spec", "unhealthyPodEvictionPolicy"), str), (("status",), dict),
        (("status", "disruptedPods"), dict), (("status", "conditions"), list)],
    "horizontalpodautoscalers": _META_SHAPES + [
        (("spec",), dict), (("spec", "scaleTargetRef"), dict), (("spec", "minReplicas"), int),
        (("spec", "maxReplicas"), int), (("spec", "metrics"), list),
        (("spec", "metrics", "*"), dict), (("spec", "behavior"), dict), (("status",), dict)],
    "deployments": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [(("status",), dict)],
    "replicasets": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [(("status",), dict)],
    "statefulsets": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [
        (("status",), dict), (("spec", "updateStrategy"), dict),
        (("spec", "updateStrategy", "rollingUpdate"), dict), (("spec", "ordinals"), dict),
        (("spec", "volumeClaimTemplates"), list), (("spec", "serviceName"), str),
        (("spec", "podManagementPolicy"), str), (("spec", "minReadySeconds"), int)],
    "daemonsets": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [
        (("status",), dict), (("spec", "updateStrategy"), dict),
        (("spec", "updateStrategy", "rollingUpdate"), dict), (("spec", "minReadySeconds"), int)],
    "replicationcontrollers": _META_SHAPES + [
        (("spec",), dict), (("spec", "replicas"), int), (("spec", "selector"), dict),
        (("spec", "template"), dict), (("spec", "template", "metadata"), dict),
        (("spec", "template", "metadata", "labels"), dict), (("status",), dict)]
    + _pod_spec_shapes(("spec", "template", "spec")),
    "nodes": _META_SHAPES + [(("spec",), dict), (("spec", "taints"), list),
                             (("spec", "taints", "*"), dict)] + _STATUS_SHAPES,
    "services": _META_SHAPES + [(("spec",), dict), (("spec", "ports"), list),
                                (("spec", "ports", "*"), dict), (("spec", "selector"), dict),
                                (("spec", "ports", "*", "port"), int),
                                (("spec", "ports", "*", "nodePort"), int),
                                (("spec", "ports", "*", "name"), str),
                                (("spec", "ports", "*", "protocol"), str),
                                (("spec", "ports", "*", "targetPort"), (int, str)),
                                (("spec", "type"), str), (("spec", "clusterIP"), str),
                                (("spec", "clusterIPs"), list), (("spec", "clusterIPs", "*"), str),
                                (("spec", "ipFamilies"), list), (("spec", "externalIPs"), list),
                                (("spec", "externalIPs", "*"), str),
                                (("spec", "publishNotReadyAddresses"), bool),
                                (("status",), dict)],
    "endpoints": _META_SHAPES + [(("subsets",), list), (("subsets", "*"), dict)] + [
        (("subsets", "*", group), list) for group in ("addresses", "notReadyAddresses", "ports")
    ] + [(("subsets", "*", group, "*"), dict)
         for group in ("addresses", "notReadyAddresses", "ports")] + [
        (("subsets", "*", "ports", "*", "port"), int)],
    "endpointslices": _META_SHAPES + [
        (("addressType",), str), (("endpoints",), list), (("endpoints", "*"), dict),
        (("endpoints", "*", "addresses"), list), (("endpoints", "*", "addresses", "*"), str),
        (("endpoints", "*", "conditions"), dict), (("ports",), list), (("ports", "*"), dict),
        (("ports", "*", "port"), int)],
    "configmaps": _META_SHAPES + [(("data",), dict), (("binaryData",), dict)],
    "secrets": _META_SHAPES + [(("data",), dict), (("stringData",), dict), (("type",), str)],
    "namespaces": _META_SHAPES + [(("spec",), dict), (("status",), dict)],
    "events": _META_SHAPES + [(("involvedObject",), dict), (("regarding",), dict),
                              (("source",), dict), (("series",), dict)],
    "leases": _META_SHAPES + [(("spec",), dict)],
    "apiservices": _META_SHAPES + [(("spec",), dict), (("status",), dict)],
    "priorityclasses": _META_SHAPES + [(("value",), int), (("globalDefault",), bool),
                                       (("description",), str), (("preemptionPolicy",), str)],
    **{plural: _META_SHAPES + _RBAC_SHAPES for plural in ("roles", "clusterroles")},
    **{plural: _META_SHAPES + _BINDING_SHAPES
       for plural in ("rolebindings", "clusterrolebindings")},
}

_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", bool: "boolean"}


def _values(obj: Any, path: tuple[str, ...], where: str) -> list[tuple[str, Any]]:
    if not path:
        return [(where, obj)]
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(obj, list):
            return []
        out: list[tuple[str, Any]] = []
        for i, item in enumerate(obj):
            out += _values(item, rest, f"{where}[{i}]")
        return out
    if not isinstance(obj, dict) or head not in obj or obj[head] is None:
        return []
    return _values(obj[head], rest, f"{where}.{head}" if where else head)


def shape_causes(kind: kinds.Kind, obj: dict[str, Any]) -> list[Cause]:
    """Type errors at the paths the server reads (wrong JSON types become 422, not crashes)."""
    causes: list[Cause] = []
    for path, expected in _SHAPES.get(kind.plural, _META_SHAPES):
        for where, value in _values(obj, path, ""):
            types = expected if isinstance(expected, tuple) else (expected,)
            ok = isinstance(value, types) and not (
                isinstance(value, bool) and bool not in types
            )
            if not ok:
                names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
                causes.append(("FieldValueTypeInvalid", where,
                               f"Invalid value: {type(value).__name__}: expected {names}"))
    return causes


class _ShapeNode:
    """One path segment of a kind's shape table, merged into a tree walked once per object."""

    __slots__ = ("checks", "children", "each")

    def __init__(self) -> None:
        self.checks: list[tuple[tuple[type, ...], bool]] = []  # (types, bool is allowed)
        self.children: dict[str, _ShapeNode] = {}
        self.each: _ShapeNode | None = None  # the "*" child: every item of a list


def _shape_tree(shapes: list[Shape]) -> _ShapeNode:
    root = _ShapeNode()
    for path, expected in shapes:
        node = root
        for head in path:
            if head == "*":
                if node.each is None:
                    node.each = _ShapeNode()
                node = node.each
            else:
                node = node.children.setdefault(head, _ShapeNode())
        types = expected if isinstance(expected, tuple) else (expected,)
        node.checks.append((types, bool in types))
    return root


def _well_shaped(node: _ShapeNode, value: Any, old: Any = None) -> bool:
    """True if no check of ``node``'s subtree fails for ``value`` (what ``shape_causes`` walks,
    in one pass over the object instead of one walk from the root per path). ``old``: the
    value at the same place of an object that passed (stored); what is still its is not
    walked again."""
    if value is old and old is not None:
        return True
    for types, bool_ok in node.checks:
        if not isinstance(value, types) or (not bool_ok and isinstance(value, bool)):
            return False
    if node.children and isinstance(value, dict):
        olds = old if isinstance(old, dict) else {}
        for key, child in node.children.items():
            item = value.get(key)
            if item is not None and not _well_shaped(child, item, olds.get(key)):
                return False
    if node.each is not None and isinstance(value, list):
        each = node.each
        olds_list = old if isinstance(old, list) else []
        for index, item in enumerate(value):
            if not _well_shaped(each, item,
                                olds_list[index] if index < len(olds_list) else None):
                return False
    return True


_SHAPE_TREES: dict[str, _ShapeNode] = {}


def check_shapes(kind: kinds.Kind, obj: dict[str, Any],
                 old: dict[str, Any] | None = None) -> None:
    """Refuse what the decoder would: nesting deeper than any object (a patch can deepen an
    object the body check saw), wrong JSON types (422), quantities that do not decode (400).
    ``old``: the stored object ``obj`` was patched from; the subtrees ``obj`` still shares
    with it (``patch.merge_patch_shared``) passed these checks and are not walked again."""
    if jsontree.depth_exceeds_besides(obj, old) if old is not None \
            else jsontree.depth_exceeds(obj):
        raise errors.bad_request(
            f"{kind.kind} in version \"{kind.version}\" cannot be handled as a {kind.kind}: "
            f"exceeded max depth of {jsontree.MAX_DEPTH}")
    tree = _SHAPE_TREES.get(kind.plural)
    if tree is None:
        tree = _SHAPE_TREES[kind.plural] = _shape_tree(_SHAPES.get(kind.plural, _META_SHAPES))
    if not _well_shaped(tree, obj, old):
        causes = shape_causes(kind, obj)  # the slow walk names every bad path, in table order
        if causes:
            name = (obj.get("metadata") or {}).get("name") if isinstance(
                obj.get("metadata"), dict) else ""
            raise errors.invalid(kind=kind.kind, group=kind.group, name=str(name or ""),
                                 causes=causes)
    decode_quantities(kind, obj, old)



def resource_lists(kind: kinds.Kind, obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field path, ResourceList) of every requests/limits map in the object's pod spec: each
    container's and init container's, and the pod-level ones."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind.plural == "cronjobs":
        job_template = spec.get("jobTemplate")
        spec = job_template.get("spec") if isinstance(job_template, dict) else None
        if not isinstance(spec, dict):
            return []
        template = spec.get("template")
        spec = template.get("spec") if isinstance(template, dict) else None
        field = "spec.jobTemplate.spec.template.spec"
    elif kind.plural in ("deployments", "replicasets", "jobs", "statefulsets", "daemonsets",
                         "replicationcontrollers"):
        template = spec.get("template")
        spec = template.get("spec") if isinstance(template, dict) else None
        field = "spec.template.spec"
    elif kind.plural == "pods":
        field = "spec"
    else:
        return []
    if not isinstance(spec, dict):
        return []
    holders: list[tuple[str, Any]] = [(f"{field}.resources", spec.get("resources"))]
    for group in ("initContainers", "containers"):
        items = spec.get(group)
        for i, c in enumerate(items if isinstance(items, list) else ()):
            if isinstance(c, dict):
                holders.append((f"{field}.{group}[{i}].resources", c.get("resources")))
    out: list[tuple[str, dict[str, Any]]] = []
    for where, resources in holders:
        for section in ("requests", "limits"):
            values = resources.get(section) if isinstance(resources, dict) else None
            if isinstance(values, dict):
                out.append((f"{where}.{section}", values))
    return out


def decode_quantities(kind: kinds.Kind, obj: dict[str, Any],
                      old: dict[str, Any] | None = None) -> None:
    """Every resource quantity decodes, or the request is a 400 in the decoder's words; each one
    is replaced by the canonical form the apiserver stores and returns. The lists ``obj``
    shares with the stored ``old`` are canonical already (and not to be written to)."""
    stored = {id(v) for _, v in resource_lists(kind, old)} if old is not None else set()
    for _, values in resource_lists(kind, obj):
        if id(values) in stored:
            continue
        for name, raw in values.items():
            try:
                values[name] = quantity.parse_json(raw).canonical()
            except quantity.QuantityError as e:
                raise errors.bad_request(
                    f'{kind.kind} in version "{kind.version}" cannot be handled as a '
                    f"{kind.kind}: {e}"
                ) from None
