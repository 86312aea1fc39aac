"""The commit sends what placement planned, or keeps the pod pending with a reason.

The loop renders each assignment (no second carve) and checks it against the offers it still
holds: an offer rescinded or changed since placement leaves the pod pending with a constant
message (PodScheduled=False / FailedScheduling through the sink); limits a master cannot
enforce become a Warning event on the pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from k8sbridge import settings as bridge_settings
from k8sbridge.kube import errors as kube_errors
from k8sbridge.lifecycle import taskids
from k8sbridge.model import ids
from k8sbridge.model.resources import Resources, parse_resources_flag
from k8sbridge.scheduler import launch, limits, loop, offers, plan, serviceenv, stack

UID = "0b6c7c8e-0000-4000-8000-00000000c0de"


class _Sink:
    def __init__(self) -> None:
        self.unschedulable_: list[tuple[str, str]] = []
        self.failed: list[str] = []

    def task_status(self, **_: Any) -> None: ...

    def unschedulable(self, *, pod: dict[str, Any], message: str) -> None:
        self.unschedulable_.append((pod["metadata"]["uid"], message))

    def scheduled(self, *, pod: dict[str, Any], node_name: str) -> None: ...

    def launch_failed(self, *, pod: dict[str, Any], reason: str, message: str) -> None:
        self.failed.append(message)

    def forget(self, uid: str) -> None: ...

    def observe(self, pod: dict[str, Any]) -> None: ...


class _Driver:
    framework_id = ids.FrameworkId("fw")

    def __init__(self) -> None:
        self.accepted: list[tuple[list[str], list[dict[str, Any]]]] = []
        self.declined: list[list[str]] = []

    async def accept(
        self, offer_ids: Sequence[ids.OfferId], operations: Sequence[Any], *,
        refuse_seconds: float | None = None,
    ) -> None:
        self.accepted.append(([str(o) for o in offer_ids], list(operations)))

    async def decline(
        self, offer_ids: Sequence[ids.OfferId], *, refuse_seconds: float | None = None
    ) -> None:
        self.declined.append([str(o) for o in offer_ids])


class _Kube:
    def __init__(self) -> None:
        self.bound: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.services: dict[str, Any] | Exception = {"items": []}
        self.listings = 0

    async def bind_pod(self, *, namespace: str, name: str, uid: str | None, node: str) -> None:
        self.bound.append(name)

    async def post_event(self, *, involved: dict[str, Any], reason: str, message: str,
                         type_: str = "Normal", **_: Any) -> None:
        self.events.append((type_, reason, message))

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        assert path == "/api/v1/services"  # the Service variables' first listing
        self.listings += 1
        if isinstance(self.services, Exception):
            raise self.services
        return self.services


class _Agent:
    def __init__(self, version: str) -> None:
        self.hostname = "h1"
        self.version = version


class _Agents:
    def __init__(self, version: str) -> None:
        self.agents = {ids.AgentId("a1"): _Agent(version)}

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None:
        return "node-1"


def _offer(offer_id: str, spec: str) -> offers.HeldOffer:
    res = parse_resources_flag(spec).allocated_to("kubernetes")
    return offers.parse_offer({
        "id": {"value": offer_id}, "agent_id": {"value": "a1"}, "hostname": "h1",
        "resources": res.to_raw(), "allocation_info": {"role": "kubernetes"},
    }, now=0.0)


def _scheduler(
    *held: offers.HeldOffer, agent_version: str = "1.9.1",
) -> tuple[loop.Scheduler, _Sink, _Driver, _Kube]:
    sink, driver, kube = _Sink(), _Driver(), _Kube()
    scheduler = loop.Scheduler(
        # a cluster DNS: no MissingClusterDNS warning among the events these tests count
        settings=bridge_settings.load(env={"K8SBRIDGE_SCHEDULER_CLUSTER_DNS": "10.96.0.10",
                                           "K8SBRIDGE_SCHEDULER_POD_SANDBOX": "true"}),
        kube=kube,  # type: ignore[arg-type]
        driver=driver, sink=sink, agents=_Agents(agent_version),  # type: ignore[arg-type]
        list_tasks=None,  # type: ignore[arg-type]  # not reconciling here
        generation=1,
    )
    scheduler._pods[UID] = {
        "metadata": {"uid": UID, "name": "web", "namespace": "default",
                     "resourceVersion": "1"},
        "spec": {"containers": [{"name": "main", "command": ["sleep", "9"], "resources": {
            "requests": {"cpu": "500m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"}}}]},
    }
    scheduler._pending[UID] = None
    for offer in held:
        scheduler._book.add(offer)
    return scheduler, sink, driver, kube


def _place(scheduler: loop.Scheduler) -> plan.Plan:
    result = stack.place(pending=scheduler._pending_requests(), view=scheduler._view(),
                         settings=scheduler._stack_settings)
    assert [a.pod_uid for a in result.assignments] == [UID]
    return result


async def test_the_accepted_operation_is_the_planned_assignment() -> None:
    scheduler, sink, driver, kube = _scheduler(
        _offer("o1", "cpus:4;mem:1024;disk:100"), _offer("o2", "cpus:1;mem:64;disk:10"),
    )
    scheduler.master_version = (1, 11)
    result = _place(scheduler)
    (assignment,) = result.assignments
    assert assignment.sources == ("o1",)  # o2 is accepted with it, and handed back unused
    await scheduler._commit(result)
    await asyncio.gather(*scheduler._posting)  # the launch's notices are posted on their own
    assert not scheduler._posting
    # the pod's sandbox first, a group of its own on the same executor (``podsandbox``)
    ((accepted, (pause, operation)),) = driver.accepted
    assert sorted(accepted) == ["o1", "o2"]
    group = operation["launch_group"]
    (task,) = group["task_group"]["tasks"]
    (sandbox,) = pause["launch_group"]["task_group"]["tasks"]
    assert pause["launch_group"]["executor"] == group["executor"]
    assert Resources.parse(task["resources"]) == assignment.containers[0].resources
    assert Resources.parse(group["executor"]["resources"]) + Resources.parse(
        sandbox["resources"]) == assignment.executor
    # the agent (1.9.1) cannot take limits: none are sent, and the pod is told
    assert "limits" not in task and "linux_info" not in task["container"]
    # the pod joins the default CNI network: the agent's isolator writes its /etc/hosts and
    # /etc/hostname (from the executor's hostname), the bridge its resolv.conf
    assert [v["container_path"] for v in task["container"]["volumes"]] == ["/etc/resolv.conf"]
    executor = group["executor"]["container"]
    assert executor["network_infos"][0]["name"] == "k8sbridge"
    assert executor["hostname"] == "web"
    assert kube.events == [("Warning", limits.REASON_LIMITS_NOT_ENFORCED, kube.events[0][2])]
    assert "agent's version is 1.9" in kube.events[0][2]
    assert UID not in scheduler._pending and sink.unschedulable_ == []


async def test_limits_go_to_a_master_and_agent_that_take_them() -> None:
    scheduler, _, driver, kube = _scheduler(
        _offer("o1", "cpus:4;mem:1024;disk:100"), agent_version="1.11.0"
    )
    scheduler.master_version = (1, 11)
    await scheduler._commit(_place(scheduler))
    await asyncio.gather(*scheduler._posting)
    ((_, (pause, operation)),) = driver.accepted
    (task,) = operation["launch_group"]["task_group"]["tasks"]
    (sandbox,) = pause["launch_group"]["task_group"]["tasks"]
    assert task["limits"] == {"cpus": {"value": 1.0}, "mem": {"value": 128.0}}
    assert task["container"]["linux_info"] == {"share_cgroups": False}
    # every task under the executor agrees on share_cgroups, the pod's sandbox too
    assert sandbox["container"]["linux_info"] == {"share_cgroups": False}
    assert "limits" not in sandbox
    assert kube.events == []


async def test_a_rescinded_offer_keeps_the_pod_pending_with_a_reason() -> None:
    scheduler, sink, driver, kube = _scheduler(_offer("o1", "cpus:4;mem:1024;disk:100"))
    result = _place(scheduler)
    assert scheduler._book.rescind(ids.OfferId("o1")) is not None
    await scheduler._commit(result)
    assert driver.accepted == [] and kube.bound == []
    assert sink.unschedulable_ == [(UID, launch.COMMIT_OFFER_GONE)]
    assert UID in scheduler._pending
    await scheduler._commit(result)  # the same reason again is not written again
    assert sink.unschedulable_ == [(UID, launch.COMMIT_OFFER_GONE)]


async def test_an_offer_that_changed_keeps_the_pod_pending_with_a_reason() -> None:
    scheduler, sink, driver, kube = _scheduler(_offer("o1", "cpus:4;mem:1024;disk:100"))
    result = _place(scheduler)
    scheduler._book.add(_offer("o1", "cpus:0.2;mem:1024;disk:100"))  # same id, less cpu
    await scheduler._commit(result)
    assert driver.accepted == [] and kube.bound == []
    assert driver.declined == [["o1"]]  # what is held is handed back at once
    assert sink.unschedulable_ == [(UID, launch.COMMIT_OFFER_SHORT)]
    assert UID in scheduler._pending


async def test_an_offer_the_pod_does_not_use_may_go_away() -> None:
    """The pod's pieces came from o1 (its ``sources``): o2 rescinded changes nothing for it."""
    scheduler, sink, driver, _ = _scheduler(
        _offer("o1", "cpus:4;mem:1024;disk:100"), _offer("o2", "cpus:1;mem:64;disk:10"),
    )
    result = _place(scheduler)
    assert scheduler._book.rescind(ids.OfferId("o2")) is not None
    await scheduler._commit(result)
    ((accepted, (_sandbox, _operation)),) = driver.accepted
    assert accepted == ["o1"] and sink.unschedulable_ == []
    assert UID not in scheduler._pending


def _service(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}


def _variables(driver: _Driver) -> dict[str, str]:
    """The app container's variables in the last ACCEPT (on the pod network its first group
    is the pod's sandbox task, ``scheduler.podsandbox``)."""
    ((_, operations),) = driver.accepted[-1:]
    tasks = [t for op in operations for t in op["launch_group"]["task_group"]["tasks"]
             if not taskids.is_sandbox(t["task_id"]["value"].rsplit(".", 1)[-1])]
    (task,) = tasks
    return {v["name"]: v["value"] for v in task["command"]["environment"]["variables"]}


async def test_unreadable_services_keep_the_pod_pending_with_the_kubelets_reason() -> None:
    scheduler, sink, driver, kube = _scheduler(_offer("o1", "cpus:4;mem:1024;disk:100"))
    kube.services = kube_errors.Forbidden("services is forbidden", status=403)
    await scheduler._commit(_place(scheduler))
    assert driver.accepted == []
    [(uid, message)] = sink.unschedulable_
    assert uid == UID and message == f"{serviceenv.NOT_SYNCED}: services is forbidden"
    assert UID in scheduler._pending
    # listed at last: the pod starts with the Services of that listing
    kube.services = {"items": [_service("web", "10.96.0.5")]}
    scheduler._book.add(_offer("o2", "cpus:4;mem:1024;disk:100"))  # the next offer
    await scheduler._commit(_place(scheduler))
    await asyncio.gather(*scheduler._posting)
    variables = _variables(driver)
    assert variables["WEB_SERVICE_HOST"] == "10.96.0.5"
    assert variables["WEB_PORT_80_TCP"] == "tcp://10.96.0.5:80"
    assert kube.listings == 2  # listed until it worked; the watch keeps the book since
