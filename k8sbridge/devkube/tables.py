"""Server-side ``Table`` rendering so that ``kubectl get`` prints the usual columns.

Why: kubectl asks for ``as=Table`` and, for a plain list, prints only NAME and AGE; the real
columns (READY, STATUS, RESTARTS, NODE, ...) are computed by the server. These are the printers of
the apiserver (pkg/printers/internalversion) for the kinds devkube serves, as pure functions.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable
from typing import Any

from k8sbridge.devkube import (
    apiservices,
    events,
    podgroups,
    priorityclasses,
    tablecells,
    tables_apps,
    tables_policy,
)
from k8sbridge.devkube.tablecells import Column, Obj, Row

human_duration = tablecells.human_duration
_since = tablecells.since
_age = tablecells.age
_name = tablecells.name
_none = tablecells.none
_selector = tablecells.selector
_template_containers = tablecells.template_containers


# --- pods ------------------------------------------------------------------------------------

def pod_status_reason(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_statuses = status.get("initContainerStatuses") or []
    init_count = len((pod.get("spec") or {}).get("initContainers") or [])
    initializing = False
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal")
                else f"ExitCode:{term.get('exitCode')}"))
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{init_count}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("terminated"):
                term = state["terminated"]
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode')}")
            elif state.get("running") and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def _pod_row(pod: Obj) -> Row:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    total = len(spec.get("containers") or [])
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    gates = spec.get("readinessGates") or []
    return [
        _name(pod), f"{ready}/{total}", pod_status_reason(pod), str(restarts), _age(pod),
        _none(status.get("podIP")), _none(spec.get("nodeName")),
        _none(status.get("nominatedNodeName")),
        "<none>" if not gates else f"0/{len(gates)}",
    ]


POD_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Ready", "string", 0, ""), ("Status", "string", 0, ""),
    ("Restarts", "string", 0, ""), ("Age", "string", 0, ""), ("IP", "string", 1, ""),
    ("Node", "string", 1, ""), ("Nominated Node", "string", 1, ""),
    ("Readiness Gates", "string", 1, ""),
]


# --- nodes -----------------------------------------------------------------------------------

def _node_row(node: Obj) -> Row:
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    state = "Unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            state = {"True": "Ready", "False": "NotReady"}.get(cond.get("status"), "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (node.get("metadata") or {}).get("labels") or {}
    found = {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
    if labels.get("kubernetes.io/role"):
        found.add(labels["kubernetes.io/role"])
    roles = sorted(r for r in found if r)
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in addresses if a.get("type") == kind), "<none>")

    info = status.get("nodeInfo") or {}
    return [
        _name(node), state, ",".join(roles) or "<none>", _age(node),
        info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
        _none(info.get("osImage")), _none(info.get("kernelVersion")),
        _none(info.get("containerRuntimeVersion")),
    ]


NODE_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Status", "string", 0, ""), ("Roles", "string", 0, ""),
    ("Age", "string", 0, ""), ("Version", "string", 0, ""), ("Internal-IP", "string", 1, ""),
    ("External-IP", "string", 1, ""), ("OS-Image", "string", 1, ""),
    ("Kernel-Version", "string", 1, ""), ("Container-Runtime", "string", 1, ""),
]


# --- workloads -------------------------------------------------------------------------------

def _deployment_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _template_containers(obj)
    return [
        _name(obj), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(obj),
        names, images, _selector(spec.get("selector")),
    ]


DEPLOYMENT_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Ready", "string", 0, ""),
    ("Up-to-date", "integer", 0, ""), ("Available", "integer", 0, ""), ("Age", "string", 0, ""),
    ("Containers", "string", 1, ""), ("Images", "string", 1, ""), ("Selector", "string", 1, ""),
]


def _replicaset_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _template_containers(obj)
    return [
        _name(obj), spec.get("replicas", 0), status.get("replicas", 0),
        status.get("readyReplicas", 0), _age(obj), names, images,
        _selector(spec.get("selector")),
    ]


REPLICASET_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Desired", "integer", 0, ""), ("Current", "integer", 0, ""),
    ("Ready", "integer", 0, ""), ("Age", "string", 0, ""), ("Containers", "string", 1, ""),
    ("Images", "string", 1, ""), ("Selector", "string", 1, ""),
]


# --- others ----------------------------------------------------------------------------------

def _replicationcontroller_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    row = _replicaset_row(obj)
    return [*row[:-1], _selector({"matchLabels": spec.get("selector") or {}})]


def _event_row(view: Obj) -> Row:
    """``printEvent``: a series' count and last observation win over the legacy fields."""
    ev = events.to_core(view) if view.get("apiVersion") == "events.k8s.io/v1" else view
    involved = ev.get("involvedObject") or {}
    first = _since(ev.get("firstTimestamp") or ev.get("eventTime"))
    last = _since(ev["lastTimestamp"]) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1
    series = ev.get("series")
    if isinstance(series, dict):
        last, count = _since(series.get("lastObservedTime")), series.get("count") or 0
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    kind = str(involved.get("kind", "")).lower()
    return [
        last, ev.get("type", ""), ev.get("reason", ""),
        f"{kind}/{involved['name']}" if involved.get("name") else kind,
        involved.get("fieldPath", ""), f"{component}, {instance}" if instance else component,
        str(ev.get("message", "")).strip(), first, count, _name(ev),
    ]


EVENT_COLUMNS: list[Column] = [
    ("Last Seen", "string", 0, ""), ("Type", "string", 0, ""), ("Reason", "string", 0, ""),
    ("Object", "string", 0, ""), ("Subobject", "string", 1, ""), ("Source", "string", 1, ""),
    ("Message", "string", 0, ""), ("First Seen", "string", 1, ""), ("Count", "string", 1, ""),
    ("Name", "string", 1, "name"),
]


def _lease_row(obj: Obj) -> Row:
    return [_name(obj), _none((obj.get("spec") or {}).get("holderIdentity")), _age(obj)]


LEASE_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Holder", "string", 0, ""), ("Age", "string", 0, ""),
]


def _namespace_row(obj: Obj) -> Row:
    phase = (obj.get("status") or {}).get("phase", "Active")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [_name(obj), phase, _age(obj)]


NAMESPACE_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Status", "string", 0, ""), ("Age", "string", 0, ""),
]


def _service_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
        f"{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [
        _name(obj), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external,
        ports or "<none>", _age(obj), _selector({"matchLabels": spec.get("selector")}),
    ]


SERVICE_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Type", "string", 0, ""), ("Cluster-IP", "string", 0, ""),
    ("External-IP", "string", 0, ""), ("Port(s)", "string", 0, ""), ("Age", "string", 0, ""),
    ("Selector", "string", 1, ""),
]


def _more(items: list[str], count: int, *, empty: str) -> str:
    """listWithMoreString: the first three, then how many more."""
    text = ",".join(items[:3])
    if count > 3:
        return f"{text} + {count - 3} more..."
    return text or empty


def _endpoints_row(obj: Obj) -> Row:
    """printEndpoints (formatEndpoints): ip:port of the ready addresses per port."""
    subsets = [s for s in obj.get("subsets") or [] if isinstance(s, dict)]
    found: list[str] = []
    for subset in subsets:
        ips = [str(a.get("ip")) for a in subset.get("addresses") or [] if isinstance(a, dict)]
        ports = [p for p in subset.get("ports") or [] if isinstance(p, dict)]
        if not ports:
            found += ips
        for port in ports:
            found += [f"[{ip}]:{port.get('port')}" if ":" in ip else f"{ip}:{port.get('port')}"
                      for ip in ips]
    shown = _more(found, len(found), empty="") if subsets else "<none>"
    return [_name(obj), shown, _age(obj)]


ENDPOINTS_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Endpoints", "string", 0, ""), ("Age", "string", 0, ""),
]


def _endpointslice_row(obj: Obj) -> Row:
    ports = [str(p["port"]) if p.get("port") is not None else str(
        p["name"] if p.get("name") is not None else "*")
        for p in obj.get("ports") or [] if isinstance(p, dict)]
    addresses = [str(a) for e in obj.get("endpoints") or [] if isinstance(e, dict)
                 for a in e.get("addresses") or []]
    return [_name(obj), obj.get("addressType", ""), _more(ports, len(ports), empty="<unset>"),
            _more(addresses, len(addresses), empty="<unset>"), _age(obj)]


ENDPOINTSLICE_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("AddressType", "string", 0, ""),
    ("Ports", "string", 0, ""), ("Endpoints", "string", 0, ""), ("Age", "string", 0, ""),
]


def _data_row(obj: Obj) -> Row:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), _age(obj)]


CONFIGMAP_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Data", "integer", 0, ""), ("Age", "string", 0, ""),
]


def _secret_row(obj: Obj) -> Row:
    return [_name(obj), obj.get("type", "Opaque"), len(obj.get("data") or {}), _age(obj)]


SECRET_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Type", "string", 0, ""), ("Data", "integer", 0, ""),
    ("Age", "string", 0, ""),
]


def _has_condition(obj: Obj, kind: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _parse(stamp: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def _job_row(obj: Obj) -> Row:
    """printJob: STATUS from the conditions, COMPLETIONS, DURATION (start to completion)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    succeeded = status.get("succeeded") or 0
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started = _parse(status.get("startTime")) if status.get("startTime") else None
    finished = _parse(status.get("completionTime")) if status.get("completionTime") else None
    if started is None:
        duration = ""
    elif finished is None:
        duration = human_duration(
            (datetime.datetime.now(datetime.UTC) - started).total_seconds())
    else:
        duration = human_duration((finished - started).total_seconds())
    for condition in ("Complete", "Failed"):
        if _has_condition(obj, condition):
            state = condition
            break
    else:
        state = "Running"
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            state = "Terminating"
        else:
            for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
                if _has_condition(obj, condition):
                    state = condition
                    break
    names, images = _template_containers(obj)
    return [_name(obj), state, completions, duration, _age(obj), names, images,
            _selector(spec.get("selector"))]


JOB_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Status", "string", 0, ""),
    ("Completions", "string", 0, ""), ("Duration", "string", 0, ""), ("Age", "string", 0, ""),
    ("Containers", "string", 1, ""), ("Images", "string", 1, ""), ("Selector", "string", 1, ""),
]


def _cronjob_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    suspend = spec.get("suspend")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _template_containers({"spec": job_spec})
    last = status.get("lastScheduleTime")
    return [_name(obj), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(status.get("active") or []), _since(last) if last else "<none>", _age(obj),
            names, images, _selector(job_spec.get("selector"))]


CRONJOB_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Schedule", "string", 0, ""),
    ("Timezone", "string", 0, ""), ("Suspend", "boolean", 0, ""),
    ("Active", "integer", 0, ""), ("Last Schedule", "string", 0, ""), ("Age", "string", 0, ""),
    ("Containers", "string", 1, ""), ("Images", "string", 1, ""), ("Selector", "string", 1, ""),
]


def _created_at_row(obj: Obj) -> Row:
    return [_name(obj), (obj.get("metadata") or {}).get("creationTimestamp", "")]


CREATED_AT_COLUMNS: list[Column] = [("Name", "string", 0, "name"),
                                    ("Created At", "date", 0, "")]


def _binding_row(obj: Obj) -> Row:
    """printRoleBinding / printClusterRoleBinding: ROLE is Kind/name; -o wide the subjects."""
    ref = obj.get("roleRef") or {}
    subjects = [s for s in obj.get("subjects") or [] if isinstance(s, dict)]

    def names(kind: str) -> str:
        return ", ".join(str(s.get("name", "")) for s in subjects if s.get("kind") == kind)

    accounts = ", ".join(f'{s.get("namespace", "")}/{s.get("name", "")}' for s in subjects
                         if s.get("kind") == "ServiceAccount")
    return [_name(obj), f'{ref.get("kind", "")}/{ref.get("name", "")}', _age(obj),
            names("User"), names("Group"), accounts]


BINDING_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Role", "string", 0, ""), ("Age", "string", 0, ""),
    ("Users", "string", 1, ""), ("Groups", "string", 1, ""),
    ("ServiceAccounts", "string", 1, ""),
]


def _default_row(obj: Obj) -> Row:
    return [_name(obj), _age(obj)]


DEFAULT_COLUMNS: list[Column] = [("Name", "string", 0, "name"), ("Age", "string", 0, "")]

PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "pods": (POD_COLUMNS, _pod_row),
    "nodes": (NODE_COLUMNS, _node_row),
    "deployments": (DEPLOYMENT_COLUMNS, _deployment_row),
    "replicasets": (REPLICASET_COLUMNS, _replicaset_row),
    "replicationcontrollers": (REPLICASET_COLUMNS, _replicationcontroller_row),
    "jobs": (JOB_COLUMNS, _job_row),
    "cronjobs": (CRONJOB_COLUMNS, _cronjob_row),
    "events": (EVENT_COLUMNS, _event_row),
    "leases": (LEASE_COLUMNS, _lease_row),
    "namespaces": (NAMESPACE_COLUMNS, _namespace_row),
    "services": (SERVICE_COLUMNS, _service_row),
    "endpoints": (ENDPOINTS_COLUMNS, _endpoints_row),
    "endpointslices": (ENDPOINTSLICE_COLUMNS, _endpointslice_row),
    "configmaps": (CONFIGMAP_COLUMNS, _data_row),
    "secrets": (SECRET_COLUMNS, _secret_row),
    "roles": (CREATED_AT_COLUMNS, _created_at_row),
    "clusterroles": (CREATED_AT_COLUMNS, _created_at_row),
    "rolebindings": (BINDING_COLUMNS, _binding_row),
    "clusterrolebindings": (BINDING_COLUMNS, _binding_row),
    **tables_apps.PRINTERS,
    **tables_policy.PRINTERS,
    **apiservices.PRINTERS,
    **priorityclasses.PRINTERS,
    **podgroups.PRINTERS,
}


def columns(plural: str) -> list[Obj]:
    cols, _ = PRINTERS.get(plural, (DEFAULT_COLUMNS, _default_row))
    return [
        {"name": name, "type": typ, "format": fmt, "description": name, "priority": prio}
        for name, typ, prio, fmt in cols
    ]


def table(
    *, plural: str, objects: Iterable[Obj], include_object: str, resource_version: str,
    continue_token: str | None = None, headers: bool = True,
) -> Obj:
    _, printer = PRINTERS.get(plural, (DEFAULT_COLUMNS, _default_row))
    rows: list[Obj] = []
    for obj in objects:
        row: Obj = {"cells": printer(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        rows.append(row)
    meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": columns(plural) if headers else [], "rows": rows,
    }


def encode_table(
    *, plural: str, objects: Iterable[tuple[Obj, bytes]], include_object: str,
    resource_version: str, continue_token: str | None = None,
) -> bytes:
    """``table()`` encoded straight to JSON, reusing each object's cached encoding (fast path
    for large lists)."""
    _, printer = PRINTERS.get(plural, (DEFAULT_COLUMNS, _default_row))
    rows: list[bytes] = []
    for obj, data in objects:
        cells = json.dumps(printer(obj), separators=(",", ":")).encode()
        if include_object == "Object":
            rows.append(b'{"cells":' + cells + b',"object":' + data + b"}")
        elif include_object == "Metadata":
            partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj.get("metadata") or {}}
            rows.append(b'{"cells":' + cells + b',"object":'
                        + json.dumps(partial, separators=(",", ":")).encode() + b"}")
        else:
            rows.append(b'{"cells":' + cells + b"}")
    meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    head = json.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                       "columnDefinitions": columns(plural)}, separators=(",", ":")).encode()
    return head[:-1] + b',"rows":[' + b",".join(rows) + b"]}"
