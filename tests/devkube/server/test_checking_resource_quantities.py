"""Resource quantities are checked as kube-apiserver checks them, and qosClass compares them by
value: a quantity that does not decode is a 400 with the apiserver's words, a negative one a 422
naming the field, and a request of "1" with a limit of "1000m" is Guaranteed."""

from __future__ import annotations

from typing import Any

from tests.devkube.server.conftest import Api


def _pod(name: str, requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                 "resources": {"requests": requests, "limits": limits}}]},
    }


async def test_qos_class_compares_quantities_by_value(api: Api) -> None:
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=_pod(
        "same", {"cpu": "1", "memory": "128Mi"}, {"cpu": "1000m", "memory": "134217728"}))
    assert status == 201, created
    assert created["status"]["qosClass"] == "Guaranteed"
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=_pod(
        "less", {"cpu": "500m", "memory": "128Mi"}, {"cpu": "1", "memory": "128Mi"}))
    assert status == 201, created
    assert created["status"]["qosClass"] == "Burstable"


async def test_a_quantity_that_does_not_decode_is_a_bad_request(api: Api) -> None:
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods",
                                     body=_pod("bad", {"cpu": "lots"}, {}))
    assert status == 400, body
    assert body["reason"] == "BadRequest"
    assert "quantities must match the regular expression" in body["message"]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                     "resources": {"limits": {"memory": "12XB"}}}]}}},
    }
    status, body = await api.request("POST", "/apis/apps/v1/namespaces/default/deployments",
                                     body=deployment)
    assert status == 400, body
    assert body["message"].startswith('Deployment in version "v1" cannot be handled')
    status, listing = await api.request("GET", "/api/v1/namespaces/default/pods")
    assert listing["items"] == []  # nothing was stored


async def test_a_negative_quantity_is_invalid_and_names_its_field(api: Api) -> None:
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods",
                                     body=_pod("neg", {"memory": "-1Mi"}, {}))
    assert status == 422, body
    (cause,) = body["details"]["causes"]
    assert cause["field"] == "spec.containers[0].resources.requests[memory]"
    assert "must be greater than or equal to 0" in cause["message"]


async def test_quantities_are_stored_and_returned_in_canonical_form(api: Api) -> None:
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=_pod(
        "canon", {"cpu": "1000m", "memory": "1.5Gi", "ephemeral-storage": "0.1m"},
        {"cpu": "1.5", "memory": "1536Mi", "ephemeral-storage": 2048}))
    assert status == 201, created
    res = created["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "1", "memory": "1536Mi", "ephemeral-storage": "100u"}
    assert res["limits"] == {"cpu": "1500m", "memory": "1536Mi", "ephemeral-storage": "2048"}
    status, read = await api.request("GET", "/api/v1/namespaces/default/pods/canon")
    assert read["spec"]["containers"][0]["resources"] == res


async def test_a_limit_without_a_request_makes_the_request_and_the_pod_guaranteed(
        api: Api) -> None:
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=_pod(
        "limits", {}, {"cpu": "250m", "memory": "64Mi"}))
    assert status == 201, created
    res = created["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "250m", "memory": "64Mi"}
    assert created["status"]["qosClass"] == "Guaranteed"
    # a template is not a pod: its requests stay as written (SetDefaults_Pod only)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tpl"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                     "resources": {"limits": {"cpu": "1"}}}]}}},
    }
    status, created = await api.request(
        "POST", "/apis/apps/v1/namespaces/default/deployments", body=deployment)
    assert status == 201, created
    tres = created["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert tres == {"limits": {"cpu": "1"}}


async def test_a_request_above_its_limit_is_invalid(api: Api) -> None:
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods",
                                     body=_pod("above", {"cpu": "2"}, {"cpu": "1500m"}))
    assert status == 422, body
    (cause,) = body["details"]["causes"]
    assert cause["field"] == "spec.containers[0].resources.requests[cpu]"
    assert cause["message"] == ('Invalid value: "2": must be less than or equal to cpu limit '
                                "of 1500m")


async def test_a_bad_suffix_is_refused_in_the_decoders_words(api: Api) -> None:
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods",
                                     body=_pod("suffix", {"memory": "1Kb5"}, {}))
    assert status == 400, body
    assert body["message"].endswith("quantities must match the regular expression "
                                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods",
                                     body=_pod("suffix", {"memory": "1ki"}, {}))
    assert status == 400, body
    assert body["message"] == ('Pod in version "v1" cannot be handled as a Pod: '
                               "unable to parse quantity's suffix")
