"""Pod-specific semantics: binding, graceful deletion, status subresource, immutability; plus
scale, finalizers, namespace deletion and the two views of events."""

from __future__ import annotations

from typing import Any

from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"
MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"


def _binding(name: str, node: str = "n1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


async def _scheduled_pod(api: Api, name: str) -> dict[str, Any]:
    await api.request("POST", PODS, body=pod(name))
    status, _ = await api.request("POST", f"{PODS}/{name}/binding", body=_binding(name))
    assert status == 201
    return (await api.request("GET", f"{PODS}/{name}"))[1]  # type: ignore[no-any-return]


async def test_binding_conflicts(api: Api) -> None:
    await _scheduled_pod(api, "bound")
    status, body = await api.request("POST", f"{PODS}/bound/binding", body=_binding("bound", "n2"))
    assert status == 409 and 'pod bound is already assigned to node "n1"' in body["message"]
    gated = pod("gated")
    gated["spec"]["schedulingGates"] = [{"name": "wait"}]
    await api.request("POST", PODS, body=gated)
    status, body = await api.request("POST", f"{PODS}/gated/binding", body=_binding("gated"))
    assert status == 409 and "non-empty .spec.schedulingGates" in body["message"]
    status, body = await api.request("POST", f"{PODS}/ghost/binding", body=_binding("ghost"))
    assert status == 404


async def test_graceful_deletion(api: Api) -> None:
    live = await _scheduled_pod(api, "g")
    uid = live["metadata"]["uid"]
    status, first = await api.request("DELETE", f"{PODS}/g")
    assert status == 200 and first["kind"] == "Pod"
    meta = first["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30 and meta["deletionTimestamp"]
    assert meta["generation"] == live["metadata"]["generation"] + 1
    # a later DELETE may only shorten the grace period
    _, second = await api.request("DELETE", f"{PODS}/g", body={"gracePeriodSeconds": 60})
    assert second["metadata"]["deletionGracePeriodSeconds"] == 30
    _, third = await api.request("DELETE", f"{PODS}/g", body={"gracePeriodSeconds": 5})
    assert third["metadata"]["deletionGracePeriodSeconds"] == 5
    # binding a pod being deleted is refused
    status, body = await api.request("POST", f"{PODS}/g/binding", body=_binding("g"))
    assert status == 409
    # the kubelet finishes with grace 0 and a UID precondition
    status, body = await api.request("DELETE", f"{PODS}/g", body={
        "gracePeriodSeconds": 0, "preconditions": {"uid": "not-the-uid"}})
    assert status == 409 and "Precondition failed: UID in precondition" in body["message"]
    status, _ = await api.request("DELETE", f"{PODS}/g", body={
        "gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
    assert status == 200
    assert (await api.request("GET", f"{PODS}/g"))[0] == 404


async def test_finished_pods_are_deleted_at_once(api: Api) -> None:
    await _scheduled_pod(api, "done")
    status, _ = await api.request("PATCH", f"{PODS}/done/status", content_type=MERGE,
                                  body={"status": {"phase": "Succeeded"}})
    assert status == 200
    await api.request("DELETE", f"{PODS}/done")
    assert (await api.request("GET", f"{PODS}/done"))[0] == 404


async def test_status_subresource_rules_both_ways(api: Api) -> None:
    live = await _scheduled_pod(api, "s")
    # the main resource ignores status
    live["status"]["phase"] = "Running"
    live["metadata"]["labels"] = {"changed": "yes"}
    _, updated = await api.request("PUT", f"{PODS}/s", body=live)
    assert updated["status"]["phase"] == "Pending" and updated["metadata"]["labels"] == {
        "changed": "yes"}
    # the status subresource ignores spec but takes status, labels and annotations
    updated["spec"]["activeDeadlineSeconds"] = 5
    updated["status"]["phase"] = "Running"
    updated["metadata"]["annotations"] = {"kubelet": "was-here"}
    _, after = await api.request("PUT", f"{PODS}/s/status", body=updated)
    assert after["status"]["phase"] == "Running" and "activeDeadlineSeconds" not in after["spec"]
    assert after["metadata"]["annotations"] == {"kubelet": "was-here"}
    assert after["metadata"]["generation"] == live["metadata"]["generation"]
    # a kubelet-style strategic merge of conditions (merge key: type)
    status, merged = await api.request("PATCH", f"{PODS}/s/status", content_type=SMP, body={
        "metadata": {"uid": after["metadata"]["uid"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert status == 200
    types = {c["type"]: c["status"] for c in merged["status"]["conditions"]}
    assert types == {"PodScheduled": "True", "Ready": "True"}
    # wrong UID in a status patch -> 409
    status, _ = await api.request("PATCH", f"{PODS}/s/status", content_type=SMP, body={
        "metadata": {"uid": "other"}, "status": {"phase": "Failed"}})
    assert status == 409


async def test_pod_spec_is_mostly_immutable(api: Api) -> None:
    live = await _scheduled_pod(api, "imm")
    live["spec"]["containers"][0]["image"] = "busybox:1.37"
    status, _ = await api.request("PUT", f"{PODS}/imm", body=live)
    assert status == 200
    status, body = await api.request("PATCH", f"{PODS}/imm", content_type=MERGE,
                                     body={"spec": {"restartPolicy": "Never"}})
    assert status == 422 and "pod updates may not change fields" in body["message"]
    status, body = await api.request("PATCH", f"{PODS}/imm", content_type=MERGE,
                                     body={"spec": {"nodeName": "other"}})
    assert status == 422


async def test_scale_subresource(api: Api) -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    base = "/apis/apps/v1/namespaces/default/replicasets"
    assert (await api.request("POST", base, body=rs))[0] == 201
    _, scale = await api.request("GET", f"{base}/r/scale")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 1 and scale["status"]["selector"] == "a=b"
    scale["spec"]["replicas"] = 3
    status, scaled = await api.request("PUT", f"{base}/r/scale", body=scale)
    assert status == 200 and scaled["spec"]["replicas"] == 3
    status, scaled = await api.request("PATCH", f"{base}/r/scale", content_type=MERGE,
                                       body={"spec": {"replicas": 4}})
    assert status == 200 and scaled["spec"]["replicas"] == 4
    _, live = await api.request("GET", f"{base}/r")
    assert live["spec"]["replicas"] == 4 and live["metadata"]["generation"] == 3
    status, _ = await api.request("PUT", f"{base}/r/scale", body=scale)  # stale RV
    assert status == 409


async def test_finalizers_hold_objects(api: Api) -> None:
    cms = "/api/v1/namespaces/default/configmaps"
    await api.request("POST", cms, body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "f", "finalizers": ["example.com/hold"]}})
    status, held = await api.request("DELETE", f"{cms}/f")
    assert status == 200 and held["metadata"]["deletionTimestamp"]
    status, body = await api.request("PATCH", f"{cms}/f", content_type=MERGE, body={
        "metadata": {"finalizers": ["example.com/hold", "example.com/more"]}})
    assert status == 422 and "no new finalizers" in body["message"]
    status, _ = await api.request("PATCH", f"{cms}/f", content_type=MERGE,
                                  body={"metadata": {"finalizers": None}})
    assert status == 200
    assert (await api.request("GET", f"{cms}/f"))[0] == 404


async def test_namespace_deletion_removes_its_content(api: Api) -> None:
    status, ns = await api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert status == 201 and ns["status"]["phase"] == "Active"
    _, sa = await api.request("GET", "/api/v1/namespaces/team/serviceaccounts/default")
    assert sa["metadata"]["name"] == "default"
    await api.request("POST", "/api/v1/namespaces/team/pods", body=pod("p"))
    status, _ = await api.request("DELETE", "/api/v1/namespaces/team")
    assert status == 200
    assert (await api.request("GET", "/api/v1/namespaces/team/pods/p"))[0] == 404
    status, body = await api.request("DELETE", "/api/v1/namespaces/default")
    assert status == 403


async def test_events_have_two_views(api: Api) -> None:
    status, created = await api.request("POST", "/apis/events.k8s.io/v1/namespaces/default/events",
                                        body={
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Scheduled", "type": "Normal",
        "action": "Binding", "note": "Successfully assigned default/p to n1",
        "reportingController": "k8sbridge", "reportingInstance": "k8sbridge-1",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "p"}})
    assert status == 201 and created["note"].startswith("Successfully")
    _, core = await api.request("GET", "/api/v1/namespaces/default/events/e1")
    assert core["apiVersion"] == "v1" and core["message"].startswith("Successfully")
    assert core["involvedObject"]["name"] == "p" and core["reportingComponent"] == "k8sbridge"
    _, listed = await api.request("GET", "/api/v1/namespaces/default/events", params={
        "fieldSelector": "involvedObject.name=p,reason=Scheduled"})
    assert [e["metadata"]["name"] for e in listed["items"]] == ["e1"]
    status, _ = await api.request("POST", "/api/v1/namespaces/default/events", body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "kopf-event-"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "Logging", "message": "hi", "type": "Normal"})
    assert status == 201


async def test_services_get_a_cluster_ip(api: Api) -> None:
    svcs = "/api/v1/namespaces/default/services"
    _, default = await api.request("GET", f"{svcs}/kubernetes")
    assert default["spec"]["clusterIP"] == "10.96.0.1"
    status, svc = await api.request("POST", svcs, body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert status == 201
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and ip != "10.96.0.1" and svc["spec"]["clusterIPs"] == [ip]
    assert svc["spec"]["ports"][0]["targetPort"] == 80
    del svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"]
    _, updated = await api.request("PUT", f"{svcs}/web", body=svc)
    assert updated["spec"]["clusterIP"] == ip
    _, headless = await api.request("POST", svcs, body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hl"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})
    assert headless["spec"]["clusterIP"] == "None"


async def test_events_v1_field_selectors_and_watch(api: Api) -> None:
    base = "/apis/events.k8s.io/v1/namespaces/default/events"
    _, listed = await api.request("GET", base)
    rv = listed["metadata"]["resourceVersion"]
    await api.request("POST", base, body={
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Started", "type": "Normal",
        "action": "Start", "reportingController": "kubelet", "reportingInstance": "n1",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "x"}})
    _, listed = await api.request("GET", base, params={
        "fieldSelector": "regarding.name=x,reportingController=kubelet"})
    assert [e["metadata"]["name"] for e in listed["items"]] == ["e2"]
    assert listed["items"][0]["regarding"]["name"] == "x"
    events = await api.watch(base, params={"resourceVersion": rv,
                                           "fieldSelector": "regarding.name=x"}, stop_on=1)
    assert events[0]["object"]["apiVersion"] == "events.k8s.io/v1"
    assert events[0]["object"]["regarding"]["name"] == "x"


async def test_eviction_is_a_graceful_delete(api: Api) -> None:
    await _scheduled_pod(api, "ev")
    status, body = await api.request("POST", f"{PODS}/ev/eviction", body={
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev"}})
    assert status == 201 and body["status"] == "Success"
    _, live = await api.request("GET", f"{PODS}/ev")
    assert live["metadata"]["deletionTimestamp"]
    _, resources = await api.request("GET", "/api/v1")
    entry = next(r for r in resources["resources"] if r["name"] == "pods/eviction")
    assert (entry["group"], entry["version"], entry["kind"]) == ("policy", "v1", "Eviction")


async def test_annotations_are_limited_to_256_kib(api: Api) -> None:
    big = pod("ann")
    big["metadata"]["annotations"] = {"a": "x" * (256 * 1024)}
    status, body = await api.request("POST", PODS, body=big)
    assert status == 422 and "Too long" in body["message"]
