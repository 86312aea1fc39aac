"""Which network a pod joins, and the executor ``ContainerInfo`` that asks Mesos for it (pure).

Why: Kubernetes gives every pod an IP of its own, shared by its containers and reachable from
every other pod; Apache Mesos gives a task group exactly that through its ``network/cni``
isolator when the executor's ``ContainerInfo.network_infos`` names a CNI network (all tasks
of the group join the executor's network namespace, and the IPs come back in
``TaskStatus.container_status.network_infos[].ip_addresses``). Rules:

* the network is the ``scheduler.pod_network`` setting (default ``k8sbridge``, the embedded
  cluster's); ``""`` keeps every pod on the agent's network;
* ``hostNetwork: true`` pods and pods with any ``hostPort`` keep the agent's network, and a
  ``hostPort`` stays a share of the agent's ``ports`` resource (placement carves it), as
  today: a hostPort is the agent's port, which a CNI network does not forward (no
  ``portmap`` plugin is configured);
* the ``NetworkInfo`` carries the pod's namespace, name and uid as labels (CNI plugins receive
  them under ``args.org.apache.mesos``); the executor's ``ContainerInfo.hostname`` is the pod's
  hostname (``podfiles``), which Mesos allows only on a CNI network.

Mesos agents do not advertise their CNI networks in offers, so the bridge cannot place by
them: the setting is the operator's statement that every agent serving the bridge's roles has
the network. A pod launched on one that does not gets ``TASK_FAILED`` with
``REASON_CONTAINER_LAUNCH_FAILED`` and Mesos' own message (``Unknown CNI network
'k8sbridge'``; a failing or hanging plugin's message alike), which ``lifecycle.sandbox``
shows as a kubelet shows a failed pod sandbox: the pod stays Pending, its containers wait in
``ContainerCreating`` with the message, a ``FailedCreatePodSandBox`` event says it, and the
launch is retried with back-off, never counted as a restart.

One IP per phase, not per pod: init containers run one task group each, and a restart of the
app containers is a new group (``launch``, ``lifecycle``), each on an executor of its own,
so each gets an address of its own (``status.podIP`` is the latest group's). A second
LAUNCH_GROUP to a running executor would join its namespace, but Mesos' default executor
shuts down when its last task ends, taking the namespace with it: a finished init container
leaves nothing to join. Keeping one address would need a long-running "pause" task in the
first group (Mesos refuses a task without resources, so placement would carve it a share)
and killing it with the pod; the bridge does not do that, and says so in docs/pod-spec.md.

Probes: httpGet and tcpSocket become Mesos HTTP/TCP checks, which the agent runs inside the
task's network namespace (Mesos' checker enters it; the embedded agent dials the pod IP from a
socket made there); a grpc probe is a COMMAND check, which runs in the task's namespaces and
dials ``127.0.0.1:<port>`` there, i.e. the pod's own network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8sbridge.model import pods as model_pods

__all__ = ["executor_container", "ip_marker", "network_for"]


def network_for(pod: Mapping[str, Any], request: model_pods.PodRequest, *, setting: str
                ) -> str | None:
    """The CNI network the pod joins, or None for the agent's network."""
    if not setting or (pod.get("spec") or {}).get("hostNetwork"):
        return None
    for container in (*request.init_containers, *request.containers):
        if container.host_ports:
            return None
    return setting


def ip_marker(uid: str) -> str:
    """What stands for the pod's IP in a container's env values and argv until it is known.

    On a CNI network the IP exists only once the agent attached the executor, after the
    launch is sent: env entries of ``status.podIP(s)`` resolve to this marker, ``$(VAR)``
    references to them expand to it (as the kubelet expands them, in later env values and in
    ``command``/``args``), and the task's constant start script (``launch.POD_IP_SCRIPT``)
    replaces it with ``MESOS_CONTAINER_IP``, which Mesos' default executor gives every task.
    It carries the pod's uid, which the API server assigns after the pod was written, so no
    string a user wrote into the pod (or a ConfigMap it reads) holds it by chance."""
    return f"k8sbridge.pod-ip.{uid}"


def executor_container(*, network: str, labels: Mapping[str, str], hostname: str
                       ) -> dict[str, Any]:
    """The DEFAULT executor's ``ContainerInfo`` joining ``network``."""
    info: dict[str, Any] = {
        "type": "MESOS",
        "network_infos": [{
            "name": network,
            "labels": {"labels": [{"key": k, "value": v} for k, v in labels.items()]},
        }],
    }
    if hostname:
        info["hostname"] = hostname
    return info
