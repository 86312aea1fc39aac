"""The EndpointSlice plan (pure): endpoints stay in the slice they are in, free room is used
before a slice is made, emptied slices go, a placeholder stays when nothing is left, and a pod
without the named port gets no such port."""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube.controllers import endpointplan

SERVICE: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"a": "b"}},
    "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.1.1",
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
}


WHO = endpointplan.for_service(SERVICE)


def pod(i: int, *, ready: bool = True, named_port: bool = True) -> dict[str, Any]:
    ports = [{"name": "http", "containerPort": 8080}] if named_port else []
    return {"metadata": {"name": f"web-{i:03d}", "namespace": "default", "uid": f"uid-{i}",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250 + 1}",
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def applied(plan: endpointplan.SlicePlan, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slices after the plan is written (created ones get names)."""
    gone = {s["metadata"]["name"] for s in plan.delete}
    updated = {s["metadata"]["name"]: s for s in plan.update}
    out = [updated.get(s["metadata"]["name"], s) for s in existing
           if s["metadata"]["name"] not in gone]
    for i, made in enumerate(plan.create):
        made["metadata"]["name"] = f"web-new{len(existing) + i}"
        out.append(made)
    return out


def test_slices_fill_up_and_keep_their_endpoints() -> None:
    pods = [pod(i) for i in range(230)]
    plan = endpointplan.plan_slices(WHO, endpointplan.desired_endpoints(SERVICE, pods, {}),
                                    [])
    assert [len(s["endpoints"]) for s in plan.create] == [100, 100, 30]
    first = plan.create[0]
    assert first["metadata"]["labels"] == {
        "a": "b", "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert first["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    slices = applied(plan, [])

    # nothing changed: nothing to write
    again = endpointplan.plan_slices(WHO, endpointplan.desired_endpoints(SERVICE, pods, {}),
                                     slices)
    assert (again.create, again.update, again.delete) == ([], [], [])

    # one pod of the first slice goes, five come: only the slices that change are written,
    # the new ones fill the room left (one in the first slice, four in the last), the full
    # middle one is untouched
    pods = [p for p in pods if p["metadata"]["name"] != "web-000"] + [
        pod(i) for i in range(300, 305)]
    plan = endpointplan.plan_slices(WHO, endpointplan.desired_endpoints(SERVICE, pods, {}),
                                    slices)
    assert plan.create == [] and plan.delete == []
    assert sorted(len(s["endpoints"]) for s in plan.update) == [34, 100]
    assert slices[1]["metadata"]["name"] not in {s["metadata"]["name"] for s in plan.update}


def test_not_ready_terminating_and_portless_pods() -> None:
    terminating = pod(2)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    finished = pod(3)
    finished["status"]["phase"] = "Succeeded"
    pods = [pod(0), pod(1, ready=False), terminating, finished, pod(4, named_port=False)]
    desired = endpointplan.desired_endpoints(SERVICE, pods, {"n1": "zone-a"})
    by_ports = {k: [e["targetRef"]["name"] for e in v] for k, v in desired.items()}
    assert by_ports == {(("http", 8080, "TCP", ""),): ["web-000", "web-001", "web-002"],
                        (): ["web-004"]}
    conditions = {e["targetRef"]["name"]: e["conditions"] for v in desired.values() for e in v}
    assert conditions["web-001"] == {"ready": False, "serving": False, "terminating": False}
    assert conditions["web-002"] == {"ready": False, "serving": True, "terminating": True}
    assert desired[(("http", 8080, "TCP", ""),)][0]["zone"] == "zone-a"

    subsets, truncated = endpointplan.desired_subsets(SERVICE, pods)
    assert not truncated
    assert subsets == [{
        "addresses": [{"ip": "10.1.0.1", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "web-000", "uid": "uid-0"}}],
        "notReadyAddresses": [{"ip": "10.1.0.2", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "web-001", "uid": "uid-1"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_no_endpoints_leave_one_placeholder() -> None:
    plan = endpointplan.plan_slices(WHO, {}, [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == []
    assert "ports" not in plan.create[0]
    slices = applied(endpointplan.plan_slices(
        WHO, endpointplan.desired_endpoints(SERVICE, [pod(i) for i in range(150)], {}), []),
        [])
    plan = endpointplan.plan_slices(WHO, {}, slices)
    assert plan.create == [] and len(plan.delete) == 1  # the other becomes the placeholder
    assert len(plan.update) == 1 and plan.update[0]["endpoints"] == []
    left = applied(plan, slices)
    assert len(left) == 1 and left[0]["endpoints"] == [] and "ports" not in left[0]
