"""On the pod network a pod's first launch starts its sandbox task, a group of its own that
keeps the executor (and so the pod's IP) alive; every later group of the pod joins that
executor with its ExecutorInfo exactly as first sent and no executor resources of its own.
Pods on the agent's network get no sandbox (pure rendering)."""

from __future__ import annotations

from typing import Any

from k8sbridge.lifecycle import taskids
from k8sbridge.lifecycle.launches import PodSandbox
from k8sbridge.model import cluster, ids, pods
from k8sbridge.model.resources import Resources, parse_resources_flag
from k8sbridge.scheduler import launch, podfiles, podsandbox, stack

NETWORK = podfiles.Network(pod_ips=("127.0.0.2",), cluster_dns=("10.96.0.10",))


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": {"initContainers": [{"name": "setup", "command": ["true"]}],
                     "containers": [{"name": "c", "command": ["sleep", "9"]}], **spec}}


def _render(pod: dict[str, Any], *, agent: str = "a1", attempt: int = 0,
            init_phase: int | None = None, sandbox: PodSandbox | None = None
            ) -> launch.LaunchGroup:
    request = pods.parse_pod(pod)
    offer = parse_resources_flag("cpus:8;mem:8192;disk:1000").allocated_to("k8s")
    view = cluster.ClusterView(agents=(cluster.AgentView.build(
        agent_id=agent, hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId(agent),
                                  resources=offer, allocation_role="k8s")]),))
    assignment = stack.place(pending=[request], view=view).assignment(request.key)
    assert assignment is not None
    return launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="f", generation=1,
        env={}, network=NETWORK, pod_network="k8sbridge", attempt=attempt,
        init_phase=init_phase, sandbox=sandbox)


def _tasks(group: launch.LaunchGroup) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = group.operation["launch_group"]["task_group"]["tasks"]
    return tasks


def _executor(group: launch.LaunchGroup) -> dict[str, Any]:
    executor: dict[str, Any] = group.operation["launch_group"]["executor"]
    return executor


def test_the_first_launch_starts_the_sandbox_task_out_of_the_executor_share() -> None:
    group = _render(_pod(), init_phase=0)
    [setup] = _tasks(group)
    # a group of its own (a failing container takes only its own group down), same executor
    assert group.sandbox_operation is not None
    assert group.sandbox_operation["launch_group"]["executor"] == _executor(group)
    [pause] = group.sandbox_operation["launch_group"]["task_group"]["tasks"]
    assert setup["task_id"]["value"] == "u1.0.1.setup"
    # made with init phase 0: named after it (a later phase of the attempt may make another)
    assert pause["task_id"]["value"] == f"u1.0.1.{taskids.SANDBOX}-0"
    assert pause["command"] == {"shell": False, "value": "sleep",
                                "arguments": ["sleep", "2147483647"]}
    assert Resources.parse(pause["resources"]).scalars() == {"cpus": podsandbox.SANDBOX_CPUS}
    executor = _executor(group)
    # one executor for the pod's life, named after the launch that made it
    assert executor["executor_id"] == {"value": "k8sbridge.u1.0.1"}
    share = Resources.parse(executor["resources"]) + Resources.parse(pause["resources"])
    assert share.scalars() == {"cpus": 0.1, "mem": 32.0, "disk": 10.0}
    assert {r["allocation_info"]["role"] for r in pause["resources"]} == {"k8s"}
    # the sandbox is no container: the launch's task ids are the containers'
    assert group.task_ids == ("u1.0.1.setup",)
    assert group.sandbox == PodSandbox(agent_id=ids.AgentId("a1"),
                                       executor_id="k8sbridge.u1.0.1",
                                       task_id=ids.TaskId(f"u1.0.1.{taskids.SANDBOX}-0"),
                                       executor=executor)
    assert group.sandbox.executor == executor


def test_later_groups_join_the_sandbox_with_its_executor_info_as_first_sent() -> None:
    first = _render(_pod(), init_phase=0)
    assert first.sandbox is not None
    apps = _render(_pod(), sandbox=first.sandbox)
    assert _executor(apps) == _executor(first)
    assert apps.executor_id == "k8sbridge.u1.0.1"
    [main] = _tasks(apps)
    assert main["task_id"]["value"] == "u1.0.1.c"
    assert apps.sandbox is None and apps.sandbox_operation is None
    # no executor share: the executor runs already
    assert apps.used == Resources.parse(main["resources"])
    restart = _render(_pod(), attempt=1, sandbox=first.sandbox)
    assert _executor(restart) == _executor(first)
    assert [t["task_id"]["value"] for t in _tasks(restart)] == ["u1.1.1.c"]


def test_a_sandbox_on_another_agent_is_not_joined() -> None:
    first = _render(_pod(), agent="a1")
    assert first.sandbox is not None
    elsewhere = _render(_pod(), agent="a2", attempt=1, sandbox=first.sandbox)
    assert elsewhere.sandbox is not None and elsewhere.sandbox.agent_id == "a2"
    assert _executor(elsewhere)["executor_id"] == {"value": "k8sbridge.u1.1.1"}


def test_a_pod_on_the_agents_network_has_no_sandbox() -> None:
    group = _render(_pod(hostNetwork=True), init_phase=0)
    assert [t["task_id"]["value"] for t in _tasks(group)] == ["u1.0.1.setup"]
    assert group.sandbox is None and group.sandbox_operation is None
    assert _executor(group)["executor_id"] == {"value": "k8sbridge.u1.0.1.init.setup"}


def test_a_restarted_bridge_adopts_the_latest_live_sandbox_with_the_masters_executor() -> None:
    info = {"executor_id": {"value": "k8sbridge.u1.0.1"}, "framework_id": {"value": "f"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.099}}]}
    executors = [
        {"agent_id": {"value": "a1"}, "executor_info": info},
        {"agent_id": {"value": "a1"}, "executor_info": {  # another framework's
            "executor_id": {"value": "k8sbridge.u2.0.1"}, "framework_id": {"value": "g"}}},
    ]

    def live(uid: str, attempt: int, container: str = taskids.SANDBOX,
             executor: str = "k8sbridge.u1.0.1") -> podsandbox.LiveTask:
        return podsandbox.LiveTask(
            uid=uid, task_id=ids.TaskId(f"{uid}.{attempt}.1.{container}"), container=container,
            agent_id="a1", executor_id=executor, incarnation=(1, attempt))

    found = podsandbox.adopt([
        live("u1", 0), live("u1", 2, container="c"),
        live("u1", 1, executor="k8sbridge.u1.1.1"),  # the master lists no such executor
        live("u2", 0, executor="k8sbridge.u2.0.1"),
    ], executors, framework_id="f")
    assert found == {"u1": PodSandbox(
        agent_id=ids.AgentId("a1"), executor_id="k8sbridge.u1.0.1",
        task_id=ids.TaskId(f"u1.0.1.{taskids.SANDBOX}"), executor=info)}
    assert found["u1"].executor == info


def test_sandbox_tasks_are_told_from_containers_by_name() -> None:
    assert [taskids.sandbox_name(p) for p in (None, 0, 2)] == [
        taskids.SANDBOX, f"{taskids.SANDBOX}-0", f"{taskids.SANDBOX}-2"]
    assert all(taskids.is_sandbox(taskids.sandbox_name(p)) for p in (None, 0, 2))
    # no container of a pod can have such a name (a DNS label has no '_')
    assert not any(taskids.is_sandbox(n) for n in ("sandbox", "c", "sandbox-0"))
