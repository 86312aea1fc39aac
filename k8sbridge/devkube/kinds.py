"""The resource kinds devkube serves: one table drives discovery, routing, OpenAPI and storage.

Why: kubectl, kopf and the official client learn everything (plural, kind, verbs, short names,
subresources, scope) from discovery, so the server must answer exactly what it advertises. Keeping
the kinds in one table makes "advertised but not served" impossible.
"""

from __future__ import annotations

import dataclasses
from typing import NewType

ResourceKey = NewType("ResourceKey", str)  # "<group>/<plural>", "" group for core

ALL_VERBS = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
)

# Field selectors every kind supports.
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "binding", "log", "exec", "token"
    fields: frozenset[str] = COMMON_FIELDS
    storage: str = ""  # another Kind's key when this is a second view of one store (events)
    has_spec: bool = True

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(f"{self.group}/{self.plural}")

    @property
    def store_key(self) -> ResourceKey:
        return ResourceKey(self.storage) if self.storage else self.key

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version


POD_FIELDS = COMMON_FIELDS | {
    "spec.nodeName", "spec.host", "spec.restartPolicy", "spec.schedulerName",
    "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
    "status.podIPs", "status.nominatedNodeName",
}
NODE_FIELDS = COMMON_FIELDS | {"spec.unschedulable"}
EVENT_FIELDS = COMMON_FIELDS | {
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
    "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
    "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
}
NEW_EVENT_FIELDS = COMMON_FIELDS | {
    "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
    "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath", "reason",
    "reportingController", "type",
}
NAMESPACE_FIELDS = COMMON_FIELDS | {"status.phase"}
SECRET_FIELDS = COMMON_FIELDS | {"type"}
RS_FIELDS = COMMON_FIELDS | {"status.replicas"}
JOB_FIELDS = COMMON_FIELDS | {"status.successful"}

KINDS: tuple[Kind, ...] = (
    Kind(group="", version="v1", plural="namespaces", singular="namespace", kind="Namespace",
         namespaced=False, short_names=("ns",), subresources=("status",),
         fields=NAMESPACE_FIELDS),
    Kind(group="", version="v1", plural="pods", singular="pod", kind="Pod", namespaced=True,
         short_names=("po",), categories=("all",),
         subresources=("status", "binding", "eviction", "log", "exec", "attach", "portforward"),
         fields=POD_FIELDS),
    Kind(group="", version="v1", plural="nodes", singular="node", kind="Node", namespaced=False,
         short_names=("no",), subresources=("status",), fields=NODE_FIELDS),
    Kind(group="", version="v1", plural="events", singular="event", kind="Event",
         namespaced=True, short_names=("ev",), fields=EVENT_FIELDS, has_spec=False),
    Kind(group="", version="v1", plural="configmaps", singular="configmap", kind="ConfigMap",
         namespaced=True, short_names=("cm",), has_spec=False),
    Kind(group="", version="v1", plural="secrets", singular="secret", kind="Secret",
         namespaced=True, fields=SECRET_FIELDS, has_spec=False),
    Kind(group="", version="v1", plural="services", singular="service", kind="Service",
         namespaced=True, short_names=("svc",), categories=("all",), subresources=("status",)),
    Kind(group="", version="v1", plural="serviceaccounts", singular="serviceaccount",
         kind="ServiceAccount", namespaced=True, short_names=("sa",), subresources=("token",),
         has_spec=False),
    Kind(group="", version="v1", plural="endpoints", singular="endpoints", kind="Endpoints",
         namespaced=True, short_names=("ep",), has_spec=False),
    Kind(group="apps", version="v1", plural="deployments", singular="deployment",
         kind="Deployment", namespaced=True, short_names=("deploy",), categories=("all",),
         subresources=("status", "scale")),
    Kind(group="apps", version="v1", plural="replicasets", singular="replicaset",
         kind="ReplicaSet", namespaced=True, short_names=("rs",), categories=("all",),
         subresources=("status", "scale"), fields=RS_FIELDS),
    Kind(group="apps", version="v1", plural="statefulsets", singular="statefulset",
         kind="StatefulSet", namespaced=True, short_names=("sts",), categories=("all",),
         subresources=("status", "scale")),
    Kind(group="apps", version="v1", plural="daemonsets", singular="daemonset",
         kind="DaemonSet", namespaced=True, short_names=("ds",), categories=("all",),
         subresources=("status",)),
    Kind(group="apps", version="v1", plural="controllerrevisions", singular="controllerrevision",
         kind="ControllerRevision", namespaced=True, has_spec=False),
    Kind(group="", version="v1", plural="replicationcontrollers",
         singular="replicationcontroller", kind="ReplicationController", namespaced=True,
         short_names=("rc",), categories=("all",), subresources=("status", "scale"),
         fields=COMMON_FIELDS | {"status.replicas"}),
    Kind(group="batch", version="v1", plural="jobs", singular="job", kind="Job",
         namespaced=True, categories=("all",), subresources=("status",), fields=JOB_FIELDS),
    Kind(group="batch", version="v1", plural="cronjobs", singular="cronjob", kind="CronJob",
         namespaced=True, short_names=("cj",), categories=("all",), subresources=("status",)),
    Kind(group="policy", version="v1", plural="poddisruptionbudgets",
         singular="poddisruptionbudget", kind="PodDisruptionBudget", namespaced=True,
         short_names=("pdb",), subresources=("status",)),
    # v1 first: BY_KEY keeps the last of a key, the stored (v2) one
    Kind(group="autoscaling", version="v1", plural="horizontalpodautoscalers",
         singular="horizontalpodautoscaler", kind="HorizontalPodAutoscaler", namespaced=True,
         short_names=("hpa",), categories=("all",), subresources=("status",),
         storage="autoscaling/horizontalpodautoscalers"),
    Kind(group="autoscaling", version="v2", plural="horizontalpodautoscalers",
         singular="horizontalpodautoscaler", kind="HorizontalPodAutoscaler", namespaced=True,
         short_names=("hpa",), categories=("all",), subresources=("status",)),
    Kind(group="coordination.k8s.io", version="v1", plural="leases", singular="lease",
         kind="Lease", namespaced=True),
    Kind(group="scheduling.k8s.io", version="v1", plural="priorityclasses",
         singular="priorityclass", kind="PriorityClass", namespaced=False, short_names=("pc",)),
    Kind(group="discovery.k8s.io", version="v1", plural="endpointslices",
         singular="endpointslice", kind="EndpointSlice", namespaced=True, has_spec=False),
    Kind(group="events.k8s.io", version="v1", plural="events", singular="event", kind="Event",
         namespaced=True, short_names=("ev",), fields=NEW_EVENT_FIELDS, storage="/events",
         has_spec=False),
    # scheduler-plugins' PodGroup CRD (gang scheduling), served as if installed: podgroups
    Kind(group="scheduling.x-k8s.io", version="v1alpha1", plural="podgroups",
         singular="podgroup", kind="PodGroup", namespaced=True, short_names=("pg", "pgs"),
         subresources=("status",)),
    # rbac.authorization.k8s.io/v1 (authorized by devkube.authz; escalation: rbacstrategy)
    Kind(group="rbac.authorization.k8s.io", version="v1", plural="clusterrolebindings",
         singular="clusterrolebinding", kind="ClusterRoleBinding", namespaced=False,
         has_spec=False),
    Kind(group="rbac.authorization.k8s.io", version="v1", plural="clusterroles",
         singular="clusterrole", kind="ClusterRole", namespaced=False, has_spec=False),
    Kind(group="rbac.authorization.k8s.io", version="v1", plural="rolebindings",
         singular="rolebinding", kind="RoleBinding", namespaced=True, has_spec=False),
    Kind(group="rbac.authorization.k8s.io", version="v1", plural="roles", singular="role",
         kind="Role", namespaced=True, has_spec=False),
    # one per served group/version, all local (devkube.apiservices)
    Kind(group="apiregistration.k8s.io", version="v1", plural="apiservices",
         singular="apiservice", kind="APIService", namespaced=False,
         categories=("api-extensions",), subresources=("status",)),
)

BY_KEY: dict[ResourceKey, Kind] = {k.key: k for k in KINDS}
BY_GROUP_VERSION: dict[str, dict[str, Kind]] = {}
for _k in KINDS:
    BY_GROUP_VERSION.setdefault(_k.group_version, {})[_k.plural] = _k

GROUPS: tuple[str, ...] = tuple(sorted({k.group for k in KINDS if k.group}))
STORED: tuple[Kind, ...] = tuple(k for k in KINDS if not k.storage)


def lookup(*, group_version: str, plural: str) -> Kind | None:
    return BY_GROUP_VERSION.get(group_version, {}).get(plural)


def by_kind(*, api_version: str, kind: str) -> Kind | None:
    for k in KINDS:
        if k.api_version == api_version and k.kind == kind:
            return k
    return None
