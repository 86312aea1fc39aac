"""What a pending pod asks of the cluster, parsed once from the raw pod JSON.

Why here: placement (feasible/rank/select), the launcher and the status map all need the same
reading of a pod spec (which quantities, which host ports, which constraints). Parsing it once
into frozen values keeps the hot placement path free of dict walking and gives malformed specs a
single, clear error (``PodSpecError``) instead of a crash deep inside the scheduler.

Units follow Mesos: cpu in cores, memory and ephemeral storage in MiB, ``nvidia.com/gpu`` as the
``gpus`` scalar. Containers without a request get a documented default (``ContainerDefaults``):
Kubernetes would schedule them as 0, but a Mesos task must hold some resources. As in the API
server's defaulting, a container with a limit but no request requests its limit.

Layout: ``quantity.py`` (quantities, ``PodSpecError``) < ``podspec.py`` (the parsed values) <
this module (the parser). Every name is importable from here, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from k8sbridge.model import affinity as affinity_parsing
from k8sbridge.model import ids, quantity
from k8sbridge.model.podspec import (
    DEFAULT_CONTAINER_DEFAULTS,
    ContainerDefaults,
    ContainerRequest,
    HostPort,
    LabelSelector,
    LabelSelectorRequirement,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodAffinityTerm,
    PodRequest,
    QosClass,
    RawPod,
    RestartPolicy,
    SelectorOperator,
    SpreadConstraint,
    Toleration,
    WeightedNodeTerm,
)
from k8sbridge.model.quantity import (
    SCALAR_NAMES,
    PodSpecError,
    QuantityError,
    parse_cpu,
    parse_memory_mib,
    parse_quantity,
)

__all__ = [
    "DEFAULT_CONTAINER_DEFAULTS",
    "SCALAR_NAMES",
    "ContainerDefaults",
    "ContainerRequest",
    "HostPort",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PodAffinityTerm",
    "PodRequest",
    "PodSpecError",
    "QosClass",
    "QuantityError",
    "RawPod",
    "RestartPolicy",
    "SelectorOperator",
    "SpreadConstraint",
    "Toleration",
    "WeightedNodeTerm",
    "parse_cpu",
    "parse_memory_mib",
    "parse_pod",
    "parse_quantity",
    "qos_class",
]


# --------------------------------------------------------------------------------------------
# Parsing


def _mapping(value: Any, *, what: str) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case, without the ABC check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodSpecError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, *, what: str) -> Sequence[Any]:
    if type(value) is list:
        return value
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise PodSpecError(f"{what} must be a list, not {type(value).__name__}")
    return value


def _str_pairs(value: Any, *, what: str) -> tuple[tuple[str, str], ...]:
    raw = _mapping(value, what=what)
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def _parse_resources(
    raw: Any, *, what: str
) -> dict[str, float]:
    out: dict[str, float] = {}
    for k8s_name, value in _mapping(raw, what=what).items():
        mesos_name = quantity.K8S_TO_MESOS.get(str(k8s_name))
        if mesos_name is None:
            continue  # hugepages, extended resources: not offered by Mesos agents
        out[mesos_name] = quantity.to_mesos(mesos_name, value, what=f"{what}.{k8s_name}")
    return out


def _parse_container(
    raw: Any, *, index: int, init: bool, defaults: ContainerDefaults
) -> ContainerRequest:
    kind = "initContainers" if init else "containers"
    c = _mapping(raw, what=f"spec.{kind}[{index}]")
    name = c.get("name")
    if not isinstance(name, str) or not name:
        raise PodSpecError(f"spec.{kind}[{index}].name is required")
    where = f"spec.{kind}[{name}]"
    res = _mapping(c.get("resources"), what=f"{where}.resources")
    requests = _parse_resources(res.get("requests"), what=f"{where}.resources.requests")
    limits = _parse_resources(res.get("limits"), what=f"{where}.resources.limits")
    explicit = bool(requests or limits)
    effective = dict(limits)  # the API server's defaulting: no request → request = limit
    effective.update(requests)
    for name_, limit in limits.items():
        if effective[name_] > limit:
            raise PodSpecError(
                f"{where}.resources: {name_} request {effective[name_]:g} exceeds its limit "
                f"{limit:g}"
            )
    if "gpus" in limits and "gpus" in requests and requests["gpus"] != limits["gpus"]:
        raise PodSpecError(f"{where}.resources: nvidia.com/gpu request must equal its limit")
    if effective.get("cpus", 0.0) <= 0:
        effective["cpus"] = defaults.cpus
    if effective.get("mem", 0.0) <= 0:
        effective["mem"] = defaults.mem
    ports: list[HostPort] = []
    for i, rp in enumerate(_list(c.get("ports"), what=f"{where}.ports")):
        p = _mapping(rp, what=f"{where}.ports[{i}]")
        host_port = p.get("hostPort", 0) or 0
        container_port = p.get("containerPort")
        if not isinstance(container_port, int) or isinstance(container_port, bool):
            raise PodSpecError(f"{where}.ports[{i}].containerPort must be an integer")
        if not isinstance(host_port, int) or isinstance(host_port, bool):
            raise PodSpecError(f"{where}.ports[{i}].hostPort must be an integer")
        if not 0 <= host_port <= 65535 or not 0 < container_port <= 65535:
            raise PodSpecError(f"{where}.ports[{i}]: port out of range")
        if host_port:
            ports.append(
                HostPort(
                    container_port=container_port,
                    host_port=host_port,
                    protocol=str(p.get("protocol") or "TCP"),
                    name=str(p.get("name") or ""),
                    host_ip=str(p.get("hostIP") or ""),
                )
            )
    image = c.get("image") or ""
    if not isinstance(image, str):
        raise PodSpecError(f"{where}.image must be a string")
    return ContainerRequest(
        name=name,
        image=image,
        requests=tuple(sorted(effective.items())),
        limits=tuple(sorted(limits.items())),
        host_ports=tuple(ports),
        init=init,
        sidecar=init and c.get("restartPolicy") == "Always",
        explicit_requests=explicit,
    )


def _effective_scalars(
    containers: Sequence[ContainerRequest], init_containers: Sequence[ContainerRequest]
) -> dict[str, float]:
    """Kubernetes' effective pod request, sidecars included (KEP-753)."""
    names = {n for c in (*containers, *init_containers) for n, _ in c.requests}
    out: dict[str, float] = {}
    for name in names:
        app = sum(c.request(name) for c in containers)
        sidecars = 0.0
        init_peak = 0.0
        for c in init_containers:
            if c.sidecar:
                sidecars += c.request(name)
                init_peak = max(init_peak, sidecars)
            else:
                init_peak = max(init_peak, sidecars + c.request(name))
        out[name] = round(max(app + sidecars, init_peak), 3)
    return out


def qos_class(raw_containers: Sequence[Any]) -> QosClass:
    """Kubernetes' qosClass from raw containers (app and init), cpu and memory only."""
    any_set = False
    guaranteed = True
    for raw in raw_containers:
        res = raw.get("resources") or {}
        requests = res.get("requests") or {}
        limits = res.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits:
                guaranteed = False
            elif name in requests and parse_quantity(requests[name]) != parse_quantity(
                limits[name]
            ):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def _parse_node_requirement(
    raw: Any, *, what: str, field: bool
) -> NodeSelectorRequirement:
    r = _mapping(raw, what=what)
    key = r.get("key")
    op = r.get("operator")
    values = tuple(str(v) for v in _list(r.get("values"), what=f"{what}.values"))
    if not isinstance(key, str) or not key:
        raise PodSpecError(f"{what}.key is required")
    if op not in _OPERATORS:
        raise PodSpecError(f"{what}.operator {op!r} is not one of {', '.join(_OPERATORS)}")
    if op in ("In", "NotIn") and not values:
        raise PodSpecError(f"{what}: operator {op} needs values")
    if op in ("Exists", "DoesNotExist") and values:
        raise PodSpecError(f"{what}: operator {op} takes no values")
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            raise PodSpecError(f"{what}: operator {op} needs exactly one value")
        try:
            int(values[0])
        except ValueError as e:
            raise PodSpecError(f"{what}: operator {op} needs an integer value") from e
    if field and (key != "metadata.name" or op not in ("In", "NotIn")):
        raise PodSpecError(f"{what}: matchFields supports only metadata.name with In/NotIn")
    return NodeSelectorRequirement(key=key, operator=op, values=values, field=field)


def _parse_node_term(raw: Any, *, where: str) -> NodeSelectorTerm:
    term = _mapping(raw, what=where)
    reqs = [
        _parse_node_requirement(r, what=f"{where}.matchExpressions[{j}]", field=False)
        for j, r in enumerate(_list(term.get("matchExpressions"), what="matchExpressions"))
    ]
    reqs += [
        _parse_node_requirement(r, what=f"{where}.matchFields[{j}]", field=True)
        for j, r in enumerate(_list(term.get("matchFields"), what="matchFields"))
    ]
    return NodeSelectorTerm(requirements=tuple(reqs))


def _parse_node_affinity(raw_affinity: Mapping[str, Any]) -> tuple[NodeSelectorTerm, ...]:
    node_aff = _mapping(raw_affinity.get("nodeAffinity"), what="spec.affinity.nodeAffinity")
    required = _mapping(
        node_aff.get("requiredDuringSchedulingIgnoredDuringExecution"),
        what="spec.affinity.nodeAffinity.required",
    )
    if not required:
        return ()
    where = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    terms_raw = _list(required.get("nodeSelectorTerms"), what=f"{where}.nodeSelectorTerms")
    if not terms_raw:
        raise PodSpecError(f"{where}.nodeSelectorTerms must not be empty")
    return tuple(
        _parse_node_term(t, where=f"{where}.nodeSelectorTerms[{i}]")
        for i, t in enumerate(terms_raw)
    )


def _parse_tolerations(raw: Any) -> tuple[Toleration, ...]:
    out: list[Toleration] = []
    for i, t in enumerate(_list(raw, what="spec.tolerations")):
        tol = _mapping(t, what=f"spec.tolerations[{i}]")
        raw_op = tol.get("operator") or "Equal"
        if raw_op == "Equal":
            op: Literal["Equal", "Exists"] = "Equal"
        elif raw_op == "Exists":
            op = "Exists"
        else:
            raise PodSpecError(f"spec.tolerations[{i}].operator {raw_op!r} is not Equal or Exists")
        seconds = tol.get("tolerationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
            raise PodSpecError(f"spec.tolerations[{i}].tolerationSeconds must be an integer")
        out.append(
            Toleration(
                key=str(tol.get("key") or ""),
                operator=op,
                value=str(tol.get("value") or ""),
                effect=str(tol.get("effect") or ""),
                toleration_seconds=int(seconds) if seconds is not None else None,
            )
        )
    return tuple(out)


def _controller_uid(meta: Mapping[str, Any]) -> str:
    """The uid of the pod's controller (``ownerReferences`` with ``controller: true``)."""
    for ref in _list(meta.get("ownerReferences"), what="metadata.ownerReferences"):
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return ""


def parse_pod(
    raw: RawPod, *, defaults: ContainerDefaults = DEFAULT_CONTAINER_DEFAULTS
) -> PodRequest:
    """Parse a raw pod (as the Kubernetes API returns it) into a ``PodRequest``.

    Raises ``PodSpecError`` (or its ``QuantityError``) naming the offending field.
    """
    if not isinstance(raw, Mapping):
        raise PodSpecError("a pod must be a JSON object")
    meta = _mapping(raw.get("metadata"), what="metadata")
    spec = _mapping(raw.get("spec"), what="spec")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise PodSpecError("metadata.name is required")
    namespace = str(meta.get("namespace") or "default")
    raw_containers = _list(spec.get("containers"), what="spec.containers")
    if not raw_containers:
        raise PodSpecError("spec.containers must name at least one container")
    raw_inits = _list(spec.get("initContainers"), what="spec.initContainers")
    containers = tuple(
        _parse_container(c, index=i, init=False, defaults=defaults)
        for i, c in enumerate(raw_containers)
    )
    inits = tuple(
        _parse_container(c, index=i, init=True, defaults=defaults)
        for i, c in enumerate(raw_inits)
    )
    seen: set[str] = set()
    for c in (*containers, *inits):
        if c.name in seen:
            raise PodSpecError(f"container name {c.name!r} is used twice")
        seen.add(c.name)
    ports: list[HostPort] = []
    taken: set[tuple[int, str]] = set()
    for c in (*containers, *(i for i in inits if i.sidecar)):
        for p in c.host_ports:
            if (p.host_port, p.protocol) in taken:
                raise PodSpecError(f"hostPort {p.host_port}/{p.protocol} is used twice")
            taken.add((p.host_port, p.protocol))
            ports.append(p)
    raw_policy = spec.get("restartPolicy") or "Always"
    if not isinstance(raw_policy, str):
        raise PodSpecError("spec.restartPolicy must be a string")
    policies: dict[str, RestartPolicy] = {
        "Always": "Always",
        "OnFailure": "OnFailure",
        "Never": "Never",
    }
    if raw_policy not in policies:
        raise PodSpecError(f"spec.restartPolicy {raw_policy!r} is not valid")
    restart_policy = policies[raw_policy]
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace is None:
        grace = 30
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
        raise PodSpecError("spec.terminationGracePeriodSeconds must be a non-negative integer")
    affinity = _mapping(spec.get("affinity"), what="spec.affinity")
    priority = spec.get("priority") or 0
    if not isinstance(priority, int):
        raise PodSpecError("spec.priority must be an integer")
    scalars = _effective_scalars(containers, inits)
    labels = dict(_str_pairs(meta.get("labels"), what="metadata.labels"))
    pod_aff = affinity_parsing.parse_pod_terms(affinity, kind="podAffinity",
                                               namespace=namespace, labels=labels)
    anti = affinity_parsing.parse_pod_terms(affinity, kind="podAntiAffinity",
                                            namespace=namespace, labels=labels)
    return PodRequest(
        key=ids.PodKey(f"{namespace}/{name}"),
        uid=ids.PodUid(str(meta.get("uid") or "")),
        namespace=namespace,
        name=name,
        labels=_str_pairs(meta.get("labels"), what="metadata.labels"),
        containers=containers,
        init_containers=inits,
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        node_name=str(spec.get("nodeName") or ""),
        restart_policy=restart_policy,
        termination_grace_period_seconds=grace,
        node_selector=_str_pairs(spec.get("nodeSelector"), what="spec.nodeSelector"),
        required_node_affinity=_parse_node_affinity(affinity),
        tolerations=_parse_tolerations(spec.get("tolerations")),
        anti_affinity=anti[0],
        pod_affinity=pod_aff[0],
        priority=priority,
        qos_class=qos_class([*raw_containers, *raw_inits]),
        scalars=tuple(sorted((n, v) for n, v in scalars.items() if v > 0)),
        host_ports=tuple(ports),
        preferred_node_affinity=affinity_parsing.parse_preferred_node_affinity(
            affinity, parse_term=_parse_node_term
        ),
        preferred_pod_affinity=pod_aff[1],
        preferred_anti_affinity=anti[1],
        spread=affinity_parsing.parse_spread(spec.get("topologySpreadConstraints"),
                                             labels=labels),
        owner_uid=_controller_uid(meta),
        preempt_never=spec.get("preemptionPolicy") == "Never",
        nominated_node=_nominated_node(raw.get("status")),
    )


def _nominated_node(status: Any) -> str:
    found = status.get("nominatedNodeName") if isinstance(status, Mapping) else None
    return found if isinstance(found, str) else ""
