"""Limits are rendered as the connected master accepts them (apache/mesos master/validation.cpp).

``_master_rejects`` restates ``validateResourceLimits`` and ``validateShareCgroups`` (task
group) with the master's own messages; every rendered group in the table must pass it, and
the table pins what is sent for each master and agent version.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model.resources import Resources, parse_resources_flag
from k8sbridge.scheduler import launch, limits, stack

INF = limits.INFINITY


def _value(scalar: dict[str, Any]) -> float:
    value = scalar["value"]
    return math.inf if value == "Infinity" else float(value)


def _master_rejects(tasks: list[dict[str, Any]]) -> str | None:
    """The master's verdict on a task group (None: accepted), for an agent with the
    TASK_RESOURCE_LIMITS capability."""
    shares: set[bool] = set()
    for task in tasks:
        linux = (task.get("container") or {}).get("linux_info") or {}
        shares.add(linux.get("share_cgroups", True))
        lims = task.get("limits") or {}
        if set(lims) - {"cpus", "mem"}:
            return "Only cpus and mem may be included in a task's resource limits"
        res = Resources.parse(task["resources"])
        if "cpus" in lims:
            if not res.scalar("cpus"):
                return ("When a CPU limit is specified, a CPU request must also be "
                        "specified")
            if _value(lims["cpus"]) < res.scalar("cpus"):
                return "The cpu limit must be greater than or equal to the cpu request"
        if "mem" in lims:
            if not res.scalar("mem"):
                return ("When a memory limit is specified, a memory request must also be "
                        "specified")
            limit = _value(lims["mem"])
            if not math.isinf(limit) and int(limit * 2**20) < int(res.scalar("mem")) * 2**20:
                return "The memory limit must be greater than or equal to the memory request"
        if lims and linux.get("share_cgroups", True):
            return ("Resource limits may only be set for tasks within a task group when "
                    "the 'share_cgroups' field is set to 'false'.")
    if len(shares) > 1:
        return ("If set, the value of 'share_cgroups' must be the same for all tasks in each "
                "task group and under a single executor")
    return None


def _pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [{"command": ["true"], **c} for c in containers]}}


def _render(
    pod: dict[str, Any], *, master: tuple[int, int] | None, agent: tuple[int, int] | None,
) -> launch.LaunchGroup:
    request = pods.parse_pod(pod)
    offer = parse_resources_flag("cpus:8;mem:8192;disk:1000").allocated_to("k8s")
    view = cluster.ClusterView(agents=(cluster.AgentView.build(
        agent_id="a1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("a1"),
                                  resources=offer, allocation_role="k8s")],
    ),))
    assignment = stack.place(pending=[request], view=view).assignment(request.key)
    assert assignment is not None
    return launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="f", generation=1,
        env={}, image_mode="none", master_version=master, agent_version=agent,
    )


LIMITED = {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                        "limits": {"cpu": "1", "memory": "128Mi"}}}
PLAIN = {"name": "side", "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
MEM_ONLY = {"name": "app", "resources": {"limits": {"memory": "100Mi"}}}
ODD = {"name": "app", "resources": {"limits": {"cpu": "33500u"}}}  # 0.0335 → carved 0.034

CASES = [
    # (containers, master, agent, limits sent per task, share_cgroups false, notice)
    ((PLAIN,), (1, 11), (1, 11), [None], False, None),
    ((LIMITED,), (1, 11), (1, 11),
     [{"cpus": {"value": 1.0}, "mem": {"value": 128.0}}], True, None),
    ((LIMITED,), (1, 10), (1, 10),
     [{"cpus": {"value": 1.0}, "mem": {"value": 128.0}}], True, None),
    # one limited container: every task says share_cgroups false; the other is unbounded,
    # as "no limit" means in Kubernetes (not capped at its request)
    ((LIMITED, PLAIN), (1, 12), (1, 12),
     [{"cpus": {"value": 1.0}, "mem": {"value": 128.0}},
      {"cpus": {"value": INF}, "mem": {"value": INF}}], True, None),
    ((MEM_ONLY,), (1, 11), (1, 11),
     [{"cpus": {"value": INF}, "mem": {"value": 100.0}}], True, None),
    ((ODD,), (1, 11), (1, 11), [{"cpus": {"value": 0.034}, "mem": {"value": INF}}], True, None),
    ((LIMITED, PLAIN), (1, 9), (1, 11), [None, None], False, "master's version is 1.9"),
    ((LIMITED,), None, (1, 11), [None], False, "master's version is unknown"),
    ((LIMITED,), (1, 11), (1, 9), [None], False, "agent's version is 1.9"),
    ((LIMITED,), (1, 11), None, [None], False, "agent's version is unknown"),
]


@pytest.mark.parametrize(
    ("containers", "master", "agent", "sent", "unshared", "notice"), CASES,
    ids=[f"case{i}" for i in range(len(CASES))],
)
def test_limits_are_rendered_as_the_master_accepts_them(
    containers: tuple[dict[str, Any], ...],
    master: tuple[int, int] | None,
    agent: tuple[int, int] | None,
    sent: list[dict[str, Any] | None],
    unshared: bool,
    notice: str | None,
) -> None:
    group = _render(_pod(*containers), master=master, agent=agent)
    tasks = group.operation["launch_group"]["task_group"]["tasks"]
    assert [t.get("limits") for t in tasks] == sent
    shares = [((t.get("container") or {}).get("linux_info") or {}).get("share_cgroups")
              for t in tasks]
    assert shares == [False if unshared else None] * len(tasks)
    assert _master_rejects(tasks) is None
    executor = group.operation["launch_group"]["executor"]
    assert "container" not in executor  # share_cgroups may never be true on the executor
    # the wire form is plain JSON: infinity travels as the string stout parses
    json.dumps(group.operation, allow_nan=False)
    if notice is None:
        assert group.notices == ()
    else:
        (n,) = group.notices
        assert n.reason == limits.REASON_LIMITS_NOT_ENFORCED and notice in n.message
        assert "app" in n.message


def test_the_table_validator_catches_what_the_master_rejects() -> None:
    """The restated rules are not vacuous: each broken rule is named."""
    good = _render(_pod(LIMITED, PLAIN), master=(1, 11), agent=(1, 11))
    tasks = good.operation["launch_group"]["task_group"]["tasks"]
    mixed = [tasks[0], {**tasks[1], "container": {"type": "MESOS"}, "limits": {}}]
    assert "must be the same" in (_master_rejects(mixed) or "")
    shared = [{k: v for k, v in tasks[0].items() if k != "container"}]
    assert "share_cgroups" in (_master_rejects(shared) or "")
    low = [{**tasks[0], "limits": {"cpus": {"value": 0.1}}}]
    assert "cpu limit must be greater" in (_master_rejects(low) or "")
    gpu = [{**tasks[0], "limits": {"gpus": {"value": 1}}}]
    assert "Only cpus and mem" in (_master_rejects(gpu) or "")


@pytest.mark.parametrize(
    ("text", "version"),
    [("1.11.0", (1, 11)), ("1.9.2-rc1", (1, 9)), ("1.12.0", (1, 12)), ("", None),
     (None, None), ("garbage", None), ("2", None)],
)
def test_versions_are_read_as_major_minor(
    text: str | None, version: tuple[int, int] | None
) -> None:
    assert limits.parse_version(text) == version
