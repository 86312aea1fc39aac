"""Integration: a placement plan launched on the REAL embedded kernel, its statuses mapped.

Placement carves task resources out of a real offer (reservations and allocation role kept);
the master must accept them. The task statuses the real agent sends (exit codes, signals,
kills) then go through the pure status map, which must report what a kubelet would.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.kubelet import statusmap as sm
from k8sbridge.lifecycle import containers as lc
from k8sbridge.mesos import events, framework, types
from k8sbridge.mesos.client import ClientConfig
from k8sbridge.model import cluster, pods, tasks
from k8sbridge.model.ids import TaskId
from k8sbridge.scheduler import stack
from tests.conftest import free_port
from tests.mesos.helpers import Recorder, command_task, launch_group, running

ROLE = "kubernetes"


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    master = MasterConfig(  # type: ignore[call-arg]
        port=free_port(), heartbeat_interval=1.0, allocation_interval=0.1,
        work_dir=tmp_path / "master",
    )
    agent = AgentConfig(
        master="127.0.0.1:0",
        work_dir=tmp_path / "agent",
        resources="cpus:2;mem:1024;disk:1024;ports:[31000-31099]",
        attributes="rack:r1",
        status_retry_seconds=1.0,
        executor_shutdown_grace_seconds=1.0,
    )
    async with main.running_kernel(master=master, agents=[agent]) as k:
        yield k


def raw_pod(name: str, script: str, *, ports: tuple[int, ...] = ()) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "busybox",
        "command": ["sh", "-c", script],
        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}},
    }
    if ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
    return {
        "metadata": {"name": name, "namespace": "it", "uid": f"uid-{name}"},
        "spec": {"nodeName": "h", "restartPolicy": "Never", "containers": [container]},
    }


def view_of(s: types.TaskStatus) -> tasks.TaskStatusView:
    return tasks.TaskStatusView(
        task_id=s.task_id,
        state=s.state,
        timestamp=s.timestamp or 0.0,
        reason=s.reason,
        message=s.message or "",
        source=s.source,
        healthy=s.healthy,
        check=tasks.parse_check(s.check_status),
        uuid=s.uuid,
        agent_id=s.agent_id,
        executor_id=s.executor_id,
        ip_addresses=s.ip_addresses,
    )


async def wait_terminal(rec: Recorder, task_id: str) -> None:
    await rec.wait_for(
        lambda e: isinstance(e, events.Update) and e.status.task_id == task_id
        and e.status.is_terminal,
        timeout=30,
    )


async def test_a_plan_runs_on_the_kernel_and_its_statuses_map_to_pod_status(
    kernel: main.Kernel,
) -> None:
    recorder = Recorder()
    fw = framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=types.FrameworkInfo(name="statusmap-it", user="root", roles=(ROLE,)),
            client=ClientConfig(masters=(kernel.master_address,), call_timeout=10,
                                connect_timeout=2),
            backoff_initial=0.1,
            backoff_max=0.5,
        ),
        handler=recorder,
        _rng=random.Random(1),
    )
    specs = {
        "done": raw_pod("done", "true"),
        "three": raw_pod("three", "exit 3"),
        "term": raw_pod("term", "kill -TERM $$; sleep 5"),
        "served": raw_pod("served", "sleep 60", ports=(31005,)),
    }
    async with running(fw) as run:
        await run.ready()
        found = await recorder.wait_for(lambda e: isinstance(e, events.Offers), timeout=10)
        offers = found[0]
        assert isinstance(offers, events.Offers)
        offer = offers.offers[0]
        view = cluster.ClusterView(agents=(
            cluster.AgentView.build(
                agent_id=offer.agent_id, hostname=offer.hostname, node_name="h",
                attributes=offer.attributes,
                offers=[cluster.OfferView(id=offer.id, agent_id=offer.agent_id,
                                          resources=offer.resources,
                                          allocation_role=offer.allocation_role)],
            ),
        ))
        plan = stack.place(pending=[pods.parse_pod(p) for p in specs.values()], view=view)
        assert not plan.unplaced and len(plan.assignments) == 4
        operations = []
        for a in plan.assignments:
            name = a.pod_key.split("/")[1]
            container = specs[name]["spec"]["containers"][0]
            assert fw.framework_id is not None
            task = command_task(
                name, task_id=f"{name}.main", agent_id=a.agent_id,
                resources=a.containers[0].resources, command=container["command"][2],
            )
            operations.append(launch_group(
                framework_id=fw.framework_id, executor_id=f"exec-{name}",
                executor_resources=a.executor, tasks=[task],
            ))
        await fw.accept(list(plan.assignments[0].offer_ids), operations)
        for name in ("done", "three", "term"):
            await wait_terminal(recorder, f"{name}.main")
        await recorder.wait_for(
            lambda e: isinstance(e, events.Update) and e.status.task_id == "served.main"
            and e.status.state == "TASK_RUNNING", timeout=30)
        served = next(a for a in plan.assignments if a.pod_key == "it/served")
        await fw.kill(TaskId("served.main"), agent_id=served.agent_id, grace_period_seconds=0.5)
        await wait_terminal(recorder, "served.main")

    statuses: dict[str, list[tasks.TaskStatusView]] = {}
    for e in recorder.events:
        if isinstance(e, events.Update):
            statuses.setdefault(e.status.task_id, []).append(view_of(e.status))

    def render(name: str) -> dict[str, Any]:
        c = lc.start_attempt(sm.ContainerRuntime(name="main", image="busybox"),
                             task_id=f"{name}.main")
        for s in statuses[f"{name}.main"]:
            c = lc.apply_status(c, s)
        return sm.pod_status(pod=specs[name], containers={"main": c}, now=1e9, host_ip="127.0.0.1")

    done = render("done")
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    three = render("three")
    assert three["phase"] == "Failed"
    term3 = three["containerStatuses"][0]["state"]["terminated"]
    assert (term3["exitCode"], term3["reason"]) == (3, "Error")
    assert term3["startedAt"] <= term3["finishedAt"]
    term = render("term")["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term.get("signal")) == (143, 15)
    killed = render("served")
    assert killed["phase"] == "Failed"
    assert killed["containerStatuses"][0]["state"]["terminated"]["exitCode"] in (137, 143)
    assert killed["containerStatuses"][0]["containerID"] == "mesos://served.main"
    served_ports = [r for r in served.containers[0].resources if r.name == "ports"]
    assert served_ports[0].ranges == ((31005, 31005),)
    assert (served.host_ports[0].container, served.host_ports[0].host_port) == ("main", 31005)
