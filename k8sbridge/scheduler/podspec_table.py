"""Every field of a PodSpec a user writes, and what the bridge does with it (data, pure).

Why one table: the issue the bridge exists to avoid is a field that is silently ignored. Each
row says, for one field path (and, unless a more specific row exists, everything under it),
whether the bridge honours it (how, on which Mesos field), refuses it (the reason the pod shows,
nothing is launched) or why it does not apply. ``docs/pod-spec.md`` is rendered from these rows
(``render``) and a test walks the official client's PodSpec models so no field goes unlisted.

Rows whose ``accepts`` is set are enforced by ``podfields``: a value outside ``accepts`` (the
values that ask for nothing) refuses the pod with ``<field path> <text>``. Volume refusals are
enforced by ``volumes`` and take their reasons from it (the rows below quote its constants).
Paths: ``spec.…`` (PodSpec), ``container.…`` (each of ``spec.containers`` and
``spec.initContainers``), ``volume.…`` (each of ``spec.volumes``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from k8sbridge.scheduler import volumes

__all__ = ["HONOURED", "NOT_APPLICABLE", "NOT_ACTED_ON", "REFUSED", "ROWS", "Row", "render",
           "row"]

HONOURED = "honoured"
REFUSED = "refused"
NOT_APPLICABLE = "not applicable"
NOT_ACTED_ON = "accepted, not acted on"  # said openly here; listed so users can see it


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    path: str
    verdict: str
    text: str  # how it is honoured / the reason a refusal shows / why it does not apply
    accepts: tuple[Any, ...] | None = None  # REFUSED, checked by podfields: harmless values


def _h(path: str, text: str) -> Row:
    return Row(path, HONOURED, text)


def _r(path: str, text: str, accepts: tuple[Any, ...] | None = None) -> Row:
    return Row(path, REFUSED, text, accepts)


def _na(path: str, text: str) -> Row:
    return Row(path, NOT_APPLICABLE, text)


def _ign(path: str, text: str) -> Row:
    return Row(path, NOT_ACTED_ON, text)


_EMPTY: tuple[Any, ...] = (None, {}, [], "")
NO_USER_NAMESPACES = "is not supported: k8sbridge does not ask Mesos for user namespaces"
NOT_MAPPED = ("is not supported: k8sbridge does not map it onto Mesos, and the container "
              "would run without it")
GROUPS = ("is not supported: Mesos' CommandInfo.user carries a user name only; the container "
          "gets that user's own groups on the agent")
SECCOMP = ("is not supported: k8sbridge does not know that the agents run Mesos' "
           "linux/seccomp isolator, and Mesos ignores the profile without it")
_VOLUME = f"is not supported: {volumes.REFUSED_OTHER}"
_ISSUE16 = "issue 16 (placement honours the whole scheduling contract)"
_UTS = ("On the pod network it is also the executor's ContainerInfo.hostname (the UTS "
        "hostname, and the agent's network/cni isolator writes /etc/hosts and /etc/hostname "
        "with it); on the agent's network (hostNetwork, a hostPort) the hostname command "
        "answers the agent's name: Mesos sets ContainerInfo.hostname only on a CNI network")

_PROBE = [
    ("exec", "a COMMAND check (argv, no shell)"),
    ("httpGet", "an HTTP check on the port and path"),
    ("tcpSocket", "a TCP check on the port"),
    ("grpc", "a COMMAND check running k8sbridge's grpc_probe (grpc.health.v1.Health/Check)"),
    ("initialDelaySeconds", "the check's delay_seconds"),
    ("periodSeconds", "the check's interval_seconds"),
    ("timeoutSeconds", "the check's timeout_seconds"),
]
_NO_HOST = ("is not supported: Mesos checks dial the container's port on 127.0.0.1 and take no "
            "host")
_NO_HEADERS = "is not supported: Mesos HTTP checks send no headers"
_PROBE_GRACE = ("the task's kill_policy grace period: accepted when equal to the pod's "
                "terminationGracePeriodSeconds, refused otherwise (Mesos kills a task that "
                "fails its health check with the task's kill_policy, which is the pod's)")
_STARTUP_HANDLER = ("must be the livenessProbe's (refused otherwise): Mesos runs one health "
                    "check per task, and the startupProbe is its grace period")


def _probe_rows(name: str, where: str) -> list[Row]:
    base = f"container.{name}"
    rows = [_h(base, where)]
    if name == "startupProbe":
        rows += [_h(f"{base}.{field}", _STARTUP_HANDLER)
                 for field in ("exec", "httpGet", "tcpSocket", "grpc", "timeoutSeconds")]
        rows += [_h(f"{base}.initialDelaySeconds", "added to the health check's grace period"),
                 _h(f"{base}.periodSeconds", "failureThreshold × periodSeconds is added to the "
                                             "health check's grace period")]
    else:
        rows += [_h(f"{base}.{field}", how) for field, how in _PROBE]
    rows += [
        _r(f"{base}.httpGet.host", _NO_HOST, (None, "")),
        _r(f"{base}.httpGet.httpHeaders", _NO_HEADERS, (None, [])),
        _r(f"{base}.tcpSocket.host", _NO_HOST, (None, "")),
    ]
    if name == "readinessProbe":
        rows += [
            _r(f"{base}.httpGet.scheme", "HTTPS is not supported for readiness: Mesos' "
                                         "CheckInfo.Http has no scheme (checks speak HTTP)",
               (None, "HTTP")),
            _h(f"{base}.successThreshold", "by time (Mesos sends a check's result only when it "
                                           "changes): after a passing check the container is "
                                           "ready once no failure came within (successThreshold "
                                           "− 1) × (periodSeconds + timeoutSeconds) + 1 s"),
            _r(f"{base}.terminationGracePeriodSeconds", "must not be set for readiness probes "
                                                        "(a failed readiness check kills "
                                                        "nothing)", (None,)),
            _h(f"{base}.failureThreshold", "by time (Mesos sends a check's result only when it "
                                           "changes): after a failing check the container turns "
                                           "unready only if no pass came within (failureThreshold "
                                           "− 1) × (periodSeconds + timeoutSeconds) + 1 s; a check "
                                           "that timed out or could not connect fails"),
        ]
        return rows
    rows += [
        _r(f"{base}.successThreshold", "must be 1: Mesos health checks count no successes (the "
                                       "API server allows only 1 for liveness and startup)",
           (None, 1)),
        _h(f"{base}.terminationGracePeriodSeconds", _PROBE_GRACE),
    ]
    if name == "livenessProbe":
        rows += [
            _h(f"{base}.failureThreshold", "the health check's consecutive_failures"),
            _h(f"{base}.httpGet.scheme", "the health check's http.scheme"),
        ]
    else:
        rows += [
            _h(f"{base}.failureThreshold", "failureThreshold × periodSeconds is added to the "
                                           "health check's grace period"),
        ]
    return rows


def _hook_rows(name: str) -> list[Row]:
    return [_r(f"container.lifecycle.{name}", "is not supported: Mesos task groups have no "
                                              "lifecycle hooks", _EMPTY)]


def _security_rows(base: str, *, pod: bool) -> list[Row]:
    rows = [
        _h(base, "see its fields"),
        _h(f"{base}.runAsUser", "CommandInfo.user: the uid's agent user name from the setting "
                                "scheduler.run_as_users; 0 or absent sends no user (the "
                                "framework's); an unmapped uid is refused"),
        _h(f"{base}.runAsNonRoot", "checked as the kubelet does: refused when the container "
                                   "would run as uid 0 or with no runAsUser"),
        _r(f"{base}.runAsGroup", GROUPS, (None, 0)),
        _r(f"{base}.seLinuxOptions", NOT_MAPPED, _EMPTY),
        _r(f"{base}.seccompProfile", SECCOMP, (None, {})),
        _r(f"{base}.appArmorProfile", NOT_MAPPED, _EMPTY),
        _na(f"{base}.windowsOptions", "Windows only; Mesos agents here are Linux"),
    ]
    if pod:
        rows += [
            _r(f"{base}.supplementalGroups", GROUPS, (None, [])),
            _r(f"{base}.supplementalGroupsPolicy", GROUPS, (None, "Merge")),
            _r(f"{base}.fsGroup", GROUPS, (None,)),
            _r(f"{base}.fsGroupChangePolicy", GROUPS, (None,)),
            _r(f"{base}.sysctls", NOT_MAPPED, (None, [])),
            _r(f"{base}.seLinuxChangePolicy", NOT_MAPPED, (None,)),
        ]
    else:
        rows += [
            _h(f"{base}.capabilities", "LinuxInfo.effective_capabilities (and "
                                       "bounding_capabilities): Docker's default set + add − "
                                       "drop (drop ALL: empty), only where the setting "
                                       "scheduler.agent_capabilities says the agents run "
                                       "linux/capabilities; refused otherwise"),
            _h(f"{base}.capabilities.add", "added to Docker's default set"),
            _h(f"{base}.capabilities.drop", "removed from it (ALL: every capability)"),
            _r(f"{base}.privileged", "is not supported: Mesos task groups have no privileged "
                                     "containers", (None, False)),
            _r(f"{base}.allowPrivilegeEscalation", "is not supported: Mesos sets no "
                                                   "no_new_privs flag", (None,)),
            _r(f"{base}.readOnlyRootFilesystem", "is not supported: Mesos gives every "
                                                 "container a writable root", (None, False)),
            _r(f"{base}.procMount", NOT_MAPPED, (None, "Default")),
        ]
    return rows


ROWS: tuple[Row, ...] = (
    # ---- PodSpec
    _h("spec.activeDeadlineSeconds", "the pod fails with DeadlineExceeded and its tasks are "
                                     "killed when it runs longer"),
    _h("spec.affinity", "see its fields"),
    _h("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
       "kube-scheduler's NodeAffinity filter on the Node's labels (the agent's attributes and "
       "fault domain, plus labels users add) and metadata.name"),
    _h("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",
       "scored as kube-scheduler's NodeAffinity (weight 2)"),
    _h("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution",
       "kube-scheduler's InterPodAffinity filter over the pods the bridge runs, any "
       "topologyKey, namespaces and namespaceSelector"),
    _h("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution",
       "scored as kube-scheduler's InterPodAffinity (weight 2), both ways"),
    _h("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
       "kube-scheduler's InterPodAffinity filter, both ways, over the pods the bridge runs"),
    _h("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
       "scored as kube-scheduler's InterPodAffinity (weight 2), both ways"),
    _ign("spec.automountServiceAccountToken", "acted on by the API server, not a kubelet: its "
                                              "ServiceAccount admission adds the projected "
                                              "kube-api-access volume unless this (or the "
                                              "ServiceAccount's) is false, and the bridge mounts "
                                              "spec.volumes as written"),
    _h("spec.containers", "one Mesos task per container in one LAUNCH_GROUP (see Container)"),
    _h("spec.dnsConfig", "merged into the container's /etc/resolv.conf as the kubelet merges "
                         "it (nameservers and searches appended without duplicates, options "
                         "by name; cut to 3 nameservers and 32 search paths / 2048 characters "
                         "with a DNSConfigForming warning); refused where the file is the "
                         "agent's own (dnsPolicy Default, ClusterFirst with hostNetwork or "
                         "without scheduler.cluster_dns): the kubelet merges it into the node's "
                         "file, which k8sbridge cannot read"),
    _h("spec.dnsPolicy", "/etc/resolv.conf, a SECRET volume in every container: ClusterFirst "
                         "and ClusterFirstWithHostNet → nameservers scheduler.cluster_dns, "
                         "search <ns>.svc.<domain> svc.<domain> <domain> "
                         "(scheduler.cluster_domain; the node's own search domains, which the "
                         "kubelet appends, are not known to k8sbridge and left out), options "
                         "ndots:5; without scheduler.cluster_dns: Default, with the kubelet's "
                         "MissingClusterDNS warning; Default (and ClusterFirst with "
                         "hostNetwork) → the agent's own file (no volume); None → dnsConfig "
                         "alone"),
    _h("spec.enableServiceLinks", "true or unset: every container gets the variables of its "
                                  "namespace's Services with a ClusterIP that exist at launch "
                                  "({SVC}_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_{NAME}, "
                                  "Docker links), from the bridge's Service watch, as a "
                                  "kubelet; false: only the kubernetes Service's"),
    _ign("spec.ephemeralContainers", "never started and given no status: kubectl debug needs "
                                     "nested containers through the Mesos agent API, which "
                                     "issue 15 (kubectl exec, attach, cp) builds"),
    _ign("spec.evictionResponders", "read by the control plane's eviction-request "
                                    "controllers, not by a kubelet: the bridge kills a pod "
                                    "when it is deleted or evicted through the API, as a "
                                    "kubelet does"),
    _h("spec.hostAliases", "appended to the container's /etc/hosts under \"# Entries added "
                           "by HostAliases.\" for a pod on the agent's network (a hostPort); "
                           "refused with hostNetwork (the kubelet appends them to the node's "
                           "/etc/hosts, which k8sbridge cannot read) and on the pod network "
                           "(the pod's IP is known only once the agent attached it, and its "
                           "network/cni isolator writes /etc/hosts)"),
    _r("spec.hostIPC", "is not supported: k8sbridge does not set LinuxInfo.ipc_mode",
       (None, False)),
    _h("spec.hostNetwork", "true: the task group keeps the agent's network (no "
                           "ContainerInfo.network_infos), podIP is the agent's address, the "
                           "pod gets the agent's /etc/hosts and /etc/hostname, and with "
                           "ClusterFirst its /etc/resolv.conf, as from a kubelet. Else the "
                           "pod joins the CNI network of setting scheduler.pod_network (the "
                           "executor's ContainerInfo.network_infos; all its tasks share the "
                           "IP Mesos reports in TaskStatus.container_status.network_infos, "
                           "which is status.podIP); a pod with any hostPort keeps the "
                           "agent's network too. By default each init container and each "
                           "restart is a task group on an executor of its own, so each gets "
                           "an IP of its "
                           "own (status.podIP is the latest). With scheduler.pod_sandbox on "
                           "(off by default: it doubles the isolated tasks per pod) a pod keeps "
                           "one IP for its life, as a kubelet's pod sandbox: its first task group "
                           "carries a sandbox task (a sleep with 0.001 cpus out of the "
                           "executor share; no container in the pod's status) that keeps "
                           "the DEFAULT executor, and its network namespace, alive; each "
                           "init container, the app containers and every restart are later "
                           "task groups launched onto that executor with its ExecutorInfo "
                           "as first sent (a later group's executor share is carved but "
                           "not used). The sandbox task is killed when the pod is deleted, "
                           "Succeeded or Failed; if it ends on its own, the next launch "
                           "makes a new sandbox with a new IP. A restarted bridge joins the "
                           "sandboxes it finds running, with the ExecutorInfo the master "
                           "lists (operator GET_EXECUTORS); if it cannot read them, a pod's "
                           "next launch makes a new sandbox. On the agent's "
                           "network each init container and each restart is a task group, "
                           "and an executor, of its own"),
    _r("spec.hostPID", "is not supported: a task group gets a PID namespace of its own on "
                       "agents with namespaces/pid", (None, False)),
    _r("spec.hostUsers", NO_USER_NAMESPACES, (None, True)),
    _h("spec.hostname", "the name in the container's /etc/hosts and /etc/hostname (else the "
                        "pod's name, at most 63 characters). " + _UTS),
    _h("spec.hostnameOverride", "replaces hostname and subdomain in /etc/hosts and "
                                "/etc/hostname. " + _UTS),
    _h("spec.imagePullSecrets", "their auths (kubernetes.io/dockerconfigjson or dockercfg) "
                                "merged into ContainerInfo.mesos.image.docker.config, a Secret "
                                "VALUE (Mesos >= 1.3), when an image is sent; a missing one: "
                                "the kubelet's FailedToRetrieveImagePullSecret warning, pulled "
                                "without it"),
    _h("spec.initContainers", "one LAUNCH_GROUP each, in order, before the app containers "
                              "(see Container); restartPolicy Always: sidecars"),
    _h("spec.nodeName", "a pod bound to one of the bridge's nodes is placed on that agent"),
    _h("spec.nodeSelector", "placement matches the Node's labels (the agent's attributes "
                            "plus labels users add)"),
    _h("spec.os", "placement matches kubernetes.io/os (agents are linux)"),
    _h("spec.overhead", "added to the pod's requests at placement"),
    _h("spec.preemptionPolicy", "Never: the pod waits for room and never preempts; "
                                "PreemptLowerPriority: it preempts as kube-scheduler does"),
    _h("spec.priority", "pending pods are placed by priority, then in queue order; a pod that "
                        "fits nowhere preempts lower-priority pods of the bridge"),
    _h("spec.priorityClassName", "resolved into spec.priority by the API server's Priority "
                                 "admission plugin"),
    _h("spec.readinessGates", "the Ready condition waits for the gates' conditions"),
    _r("spec.resourceClaims", "is not supported: k8sbridge allocates no dynamic resources",
       (None, [])),
    _r("spec.resources", "is not supported: pod-level resources are not mapped; give "
                         "requests per container", _EMPTY),
    _h("spec.restartPolicy", "the bridge restarts containers with the kubelet's back-off"),
    _r("spec.runtimeClassName", "is not supported: Mesos agents have one runtime",
       (None, "")),
    _h("spec.schedulerName", "the bridge places pods of its scheduler names "
                             "(scheduler.scheduler_names)"),
    _ign("spec.schedulingGates", "the API server keeps gated pods unbound; the bridge sees "
                                 "them once the gates are gone"),
    _r("spec.schedulingGroup", "is not supported: k8sbridge does not read the Workload API; "
       "it places gangs by scheduler-plugins' PodGroup (the label "
       "scheduling.x-k8s.io/pod-group, docs/operations.md)",
       _EMPTY),
    *_security_rows("spec.securityContext", pod=True),
    _ign("spec.serviceAccount", "deprecated alias: the API server copies it into "
                                "serviceAccountName, which is honoured"),
    _h("spec.serviceAccountName", "the account whose tokens projected volumes get "
                                  "(TokenRequest)"),
    _h("spec.setHostnameAsFQDN", "/etc/hostname holds the FQDN (refused over 64 "
                                 "characters, as the kubelet). " + _UTS),
    _h("spec.shareProcessNamespace", "LinuxInfo.share_pid_namespace"),
    _h("spec.subdomain", "the FQDN <hostname>.<subdomain>.<ns>.svc.<scheduler."
                         "cluster_domain> first on the pod's line of /etc/hosts"),
    _h("spec.terminationGracePeriodSeconds", "the tasks' kill_policy.grace_period"),
    _h("spec.tolerations", "kube-scheduler's TaintToleration on the Node's taints "
                           "(NoSchedule/NoExecute filter, PreferNoSchedule scored); "
                           "node.kubernetes.io/unschedulable lets a pod onto a cordoned node"),
    _h("spec.topologySpreadConstraints", "kube-scheduler's PodTopologySpread over the pods "
                                         "the bridge runs (maxSkew, whenUnsatisfiable, "
                                         "minDomains, node inclusion policies, "
                                         "matchLabelKeys); pods of a controller without "
                                         "constraints get the cluster defaults"),
    _h("spec.volumes", "per mount, on ContainerInfo.volumes (see Volume)"),
    # ---- Container (spec.containers and spec.initContainers)
    _h("container.args", "CommandInfo.arguments after the command ($(VAR) expanded)"),
    _h("container.command", "CommandInfo.value and arguments, shell false ($(VAR) expanded)"),
    _h("container.env", "CommandInfo.environment, resolved before launch (value, "
                        "configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef); on the "
                        "pod network status.podIP is known only once the task runs: a "
                        "constant /bin/sh script sets it from MESOS_CONTAINER_IP, in the "
                        "variable and wherever a $(VAR) of it was expanded (later env "
                        "values, command, args); a pod whose IP variable has a name sh "
                        "cannot set, or whose container has no command to wrap, is refused "
                        "(downwardAPI volumes hold metadata fields only, as the API server "
                        "allows); the Service variables (see spec.enableServiceLinks) fill "
                        "in the names env does not set and $(VAR) may reference them; the "
                        "kubernetes Service's (KUBERNETES_SERVICE_HOST ...) come from its "
                        "ClusterIP, or from setting scheduler.api_service_host when set"),
    _r("container.env.valueFrom.fileKeyRef", "is not supported: the file is not read",
       (None,)),
    _h("container.envFrom", "CommandInfo.environment from each ConfigMap or Secret"),
    _h("container.image", "ContainerInfo.mesos.image (DOCKER) per scheduler.image_mode"),
    _h("container.imagePullPolicy", "ContainerInfo.mesos.image.cached: Always → false (pull "
                                    "again), IfNotPresent → true; Never is refused with "
                                    "scheduler.image_mode mesos (Mesos pulls an image the agent "
                                    "lacks) and honoured with local (a local registry "
                                    "directory, never pulled from a network) and none (no "
                                    "image is sent); unset: Always for :latest or no tag, else "
                                    "IfNotPresent"),
    _h("container.lifecycle", "see its fields"),
    *_hook_rows("postStart"),
    *_hook_rows("preStop"),
    _r("container.lifecycle.stopSignal", "is not supported: Mesos kills with SIGTERM, then "
                                         "SIGKILL", (None, "SIGTERM")),
    *_probe_rows("livenessProbe", "TaskInfo.health_check (the executor kills the task)"),
    _h("container.name", "the task's name and id"),
    _h("container.ports", "hostPort: a Mesos ports resource and DiscoveryInfo, and the pod "
                          "keeps the agent's network; others are informational, as in "
                          "Kubernetes (on the pod network every pod may use any port)"),
    *_probe_rows("readinessProbe", "TaskInfo.check (its results drive ready)"),
    _na("container.resizePolicy", "in-place resize is not supported (no resize reaches the "
                                  "bridge's tasks)"),
    _h("container.resources", "see its fields"),
    _h("container.resources.requests", "the task's cpus and mem resources"),
    _h("container.resources.limits", "TaskInfo.limits (Mesos >= 1.10; else an event says "
                                     "they are not enforced)"),
    _r("container.resources.claims", "is not supported: k8sbridge allocates no dynamic "
                                     "resources", (None, [])),
    _h("container.restartPolicy", "init containers: Always makes a sidecar"),
    _r("container.restartPolicyRules", "is not supported: restarts follow restartPolicy",
       (None, [])),
    *_security_rows("container.securityContext", pod=False),
    *_probe_rows("startupProbe", "the health check's grace period"),
    _h("container.stdin", "with tty: the terminal's input, which kubectl attach -i types "
                          "into (ATTACH_CONTAINER_INPUT); without tty refused: Mesos gives "
                          "a task a stdin only through the I/O switchboard, which it starts "
                          "for a task only with a TTY"),
    _h("container.stdinOnce", "with stdin and tty: when the first attach that sent input "
                              "ends, the terminal gets an end-of-file (EOT, as Mesos wants "
                              "on a TTY) and later attaches get no stdin"),
    _h("container.terminationMessagePath", "read (its last 4096 bytes) through the agent's "
                                           "files API when the container ends, if the path "
                                           "lies under the mountPath of an emptyDir the "
                                           "container mounts (a file in the executor's "
                                           "sandbox); the default /dev/termination-log gives "
                                           "no message (Mesos cannot bind a single sandbox "
                                           "file into a container); any other path is "
                                           "refused"),
    _h("container.terminationMessagePolicy", "FallbackToLogsOnError: a container that failed "
                                             "with no message from its file gets the last 80 "
                                             "lines (at most 2048 bytes) of its stdout and "
                                             "stderr, read through the agent's files API"),
    _h("container.tty", "ContainerInfo.tty_info: the task runs on a terminal of Mesos' "
                        "I/O switchboard (stdout and stderr are one stream, in the "
                        "container's log too); kubectl attach follows it through "
                        "ATTACH_CONTAINER_OUTPUT and resizes it with TTY_INFO"),
    _r("container.volumeDevices", "is not supported: k8sbridge attaches no block devices"),
    _h("container.volumeMounts", "ContainerInfo.volumes entries at mountPath"),
    _h("container.volumeMounts.mountPath", "the volume's container_path"),
    _h("container.volumeMounts.name", "the volume mounted"),
    _h("container.volumeMounts.readOnly", "the volume's mode RO (else RW)"),
    _r("container.volumeMounts.subPath", "is not supported: Mesos volumes mount a whole "
                                         "source"),
    _r("container.volumeMounts.subPathExpr", "is not supported: Mesos volumes mount a whole "
                                             "source"),
    _r("container.volumeMounts.mountPropagation", "is not supported: k8sbridge mounts "
                                                  "volumes without propagation"),
    _r("container.volumeMounts.recursiveReadOnly", "is not supported"),
    _r("container.volumeMounts.bindMountOptions", "is not supported: Mesos bind mounts take "
                                                  "no options", (None, [])),
    _h("container.workingDir", "entered by a constant /bin/sh script before the argv"),
    # ---- Volume (spec.volumes)
    _h("volume.name", "the name mounts refer to (and the sandbox path volumes/<name>)"),
    _h("volume.emptyDir", "SANDBOX_PATH PARENT volumes/<name> (shared by the group's tasks)"),
    _r("volume.emptyDir.medium", "is not supported: Mesos' sandbox volumes are on the agent's "
                                 "disk"),
    _r("volume.emptyDir.sizeLimit", "is not supported: Mesos' sandbox volumes have no size "
                                    "limit of their own"),
    _r("volume.emptyDir.mode", "is not supported: Mesos creates sandbox volume directories "
                               "with the agent's mode", (None,)),
    _h("volume.configMap", "one SECRET volume (VALUE) per file, read-only"),
    _h("volume.secret", "one SECRET volume (VALUE) per file, read-only"),
    _h("volume.downwardAPI", "one SECRET volume (VALUE) per file (metadata fields and "
                             "resourceFieldRef)"),
    _h("volume.projected", "one SECRET volume (VALUE) per file of its sources"),
    _h("volume.projected.sources.serviceAccountToken", "a TokenRequest bound to the pod, "
                                                       "written once at launch"),
    _r("volume.projected.sources.clusterTrustBundle", _VOLUME),
    _r("volume.projected.sources.podCertificate", _VOLUME),
    *(_r(f"volume.{kind}.{mode}", "cannot be honoured unless 0644: Mesos writes SECRET volume "
                                  "files 0644 and has no per-file mode")
      for kind, mode in (
          ("configMap", "defaultMode"), ("secret", "defaultMode"), ("downwardAPI", "defaultMode"),
          ("projected", "defaultMode"), ("configMap", "items.mode"), ("secret", "items.mode"),
          ("downwardAPI", "items.mode"), ("projected.sources.configMap", "items.mode"),
          ("projected.sources.secret", "items.mode"),
          ("projected.sources.downwardAPI", "items.mode"))),
    *(_r(f"volume.{path}", "is not supported: Mesos writes SECRET volume files as the agent's "
                           "user and has no per-file owner", (None,)) for path in (
        "configMap.defaultUser", "secret.defaultUser", "downwardAPI.defaultUser",
        "projected.defaultUser", "configMap.items.user", "secret.items.user",
        "downwardAPI.items.user", "projected.sources.configMap.items.user",
        "projected.sources.secret.items.user", "projected.sources.downwardAPI.items.user")),
    _h("volume.hostPath", "HOST_PATH (only with scheduler.allow_host_path)"),
    _r("volume.hostPath.type", "is not supported: Mesos HOST_PATH volumes require an existing "
                               "path and check nothing else"),
    *(_r(f"volume.{kind}", f"is not supported: {why}")
      for kind, why in volumes.REFUSED_VOLUMES.items()),
    *(_r(f"volume.{kind}", _VOLUME) for kind in (
        "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc",
        "flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "iscsi", "nfs",
        "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
        "vsphereVolume")),
)

_BY_PATH = {r.path: r for r in ROWS}


def row(path: str) -> Row:
    """The row covering ``path``: its own, else its nearest listed ancestor's (KeyError when
    none is listed)."""
    probe = path
    while probe:
        found = _BY_PATH.get(probe)
        if found is not None:
            return found
        probe = probe.rpartition(".")[0]
    raise KeyError(path)


_SECTIONS = (("spec.", "PodSpec", "`spec.<field>`"),
             ("container.", "Container", "each of `spec.containers[]` and "
                                         "`spec.initContainers[]`"),
             ("volume.", "Volume", "each of `spec.volumes[]`"))


def render() -> str:
    """docs/pod-spec.md: one table per section, rows in path order."""
    lines = ["# Pod spec fields and what k8sbridge does with them", "",
             "Generated from `k8sbridge/scheduler/podspec_table.py` (`python -m "
             "k8sbridge.scheduler.podspec_table > docs/pod-spec.md`); a test checks it matches "
             "and that every field of the Kubernetes PodSpec models is listed. A row covers its "
             "field and everything under it unless a more specific row follows. A refused field "
             "stops the pod before launch (`CreateContainerConfigError`, the reason below after "
             "the field's path); values that ask for nothing (absent, false, the default) "
             "pass.", ""]
    for prefix, title, what in _SECTIONS:
        lines += [f"## {title}", "", f"Paths relative to {what}.", "",
                  "| field | verdict | how / reason |", "|---|---|---|"]
        for r in sorted((r for r in ROWS if r.path.startswith(prefix)), key=lambda r: r.path):
            text = r.text.replace("|", "\\|")
            lines.append(f"| `{r.path[len(prefix):]}` | {r.verdict} | {text} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
