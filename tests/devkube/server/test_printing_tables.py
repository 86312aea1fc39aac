"""Server-side Table rows (what ``kubectl get`` prints) for the kinds devkube serves."""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import tables
from tests.devkube.server.conftest import Api, pod

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _row(plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    table = tables.table(plural=plural, objects=[obj], include_object="None",
                         resource_version="1")
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def test_pod_status_column() -> None:
    running = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
               "status": {"phase": "Running", "containerStatuses": [
                   {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                   {"name": "b", "ready": False, "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    row = _row("pods", running)
    assert (row["Ready"], row["Status"], row["Restarts"]) == ("1/2", "CrashLoopBackOff", "3")
    running["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert _row("pods", running)["Status"] == "Terminating"
    init = {"metadata": {"name": "i"}, "spec": {"initContainers": [{"name": "x"}, {"name": "y"}],
                                                "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "x", "state": {"terminated": {"exitCode": 0}}},
                {"name": "y", "state": {"running": {}}}]}}
    assert _row("pods", init)["Status"] == "Init:1/2"
    failed = {"metadata": {"name": "f"}, "spec": {"containers": [{"name": "a"}]},
              "status": {"phase": "Failed", "reason": "OutOfcpu"}}
    assert _row("pods", failed)["Status"] == "OutOfcpu"


def test_node_and_deployment_columns() -> None:
    node = {"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/worker": "",
                                                 "kubernetes.io/role": "agent"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0"}}}
    row = _row("nodes", node)
    assert (row["Status"], row["Roles"], row["Version"]) == (
        "Unknown,SchedulingDisabled", "agent,worker", "v1.37.0")
    deploy = {"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {
        "matchLabels": {"app": "d"}}, "template": {"spec": {"containers": [
            {"name": "c", "image": "nginx"}]}}},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    row = _row("deployments", deploy)
    assert (row["Ready"], row["Up-to-date"], row["Available"], row["Images"],
            row["Selector"]) == ("2/3", 3, 2, "nginx", "app=d")


def test_human_durations() -> None:
    assert [tables.human_duration(s) for s in (5, 119, 150, 700, 3 * 3600 + 60, 30 * 3600,
                                               3 * 86400 + 3600, 40 * 86400)] == [
        "5s", "119s", "2m30s", "11m", "3h1m", "30h", "3d1h", "40d"]


async def test_table_lists_and_single_gets(api: Api) -> None:
    await api.request("POST", "/api/v1/namespaces/default/pods", body=pod("t1"))
    status, table = await api.request("GET", "/api/v1/namespaces/default/pods",
                                      headers={"Accept": TABLE}, params={"limit": "500"})
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:3] == ["t1", "0/1", "Pending"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "t1"
    status, single = await api.request("GET", "/api/v1/namespaces/default/pods/t1",
                                       headers={"Accept": TABLE})
    assert single["kind"] == "Table" and len(single["rows"]) == 1
