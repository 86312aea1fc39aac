"""Events through both APIs as kube-apiserver has them: events.k8s.io/v1's stricter rules for
creates and updates (refusals in the apiserver's words), one stored object converted field by
field both ways (``series`` stays ``series``; the legacy fields are the ``deprecated*`` ones),
and a series' count and last observation shown by real kubectl (``get events``, ``events``,
``describe``) and read through the official client's models."""

from __future__ import annotations

import asyncio
import datetime
import re
import subprocess
from typing import Any

import pytest
from kubernetes import client, config

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api, pod

NEW = "/apis/events.k8s.io/v1/namespaces/default/events"
CORE = "/api/v1/namespaces/default/events"


def _stamp(seconds_ago: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new(name: str = "p.1", **fields: Any) -> dict[str, Any]:
    """An isolated events.k8s.io/v1 Event as client-go's new recorder writes it."""
    event: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Warning",
        "reason": "FailedScheduling", "action": "Scheduling",
        "note": "0/3 nodes are available: 3 Insufficient cpu.",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-host1",
        "regarding": {"kind": "Pod", "apiVersion": "v1", "namespace": "default", "name": "p"},
    }
    for key, value in fields.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


_QUALIFIED = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")

REFUSED_CREATES = [
    pytest.param({"eventTime": None}, ["eventTime: Required value"], id="no-eventTime"),
    pytest.param({"action": None}, ["action: Required value"], id="no-action"),
    pytest.param({"reportingController": None},
                 ["reportingController: Required value",
                  'reportingController: Invalid value: "": name part must be non-empty',
                  f'reportingController: Invalid value: "": {_QUALIFIED}'],
                 id="no-reportingController"),
    pytest.param({"reportingController": "default scheduler"},
                 [f'reportingController: Invalid value: "default scheduler": {_QUALIFIED}'],
                 id="reportingController-not-qualified"),
    pytest.param({"reportingInstance": None}, ["reportingInstance: Required value"],
                 id="no-reportingInstance"),
    pytest.param({"reportingInstance": "i" * 129},
                 ['reportingInstance: Invalid value: "": can have at most 128 characters'],
                 id="long-reportingInstance"),
    pytest.param({"reason": "R" * 129},
                 ['reason: Invalid value: "": can have at most 128 characters'],
                 id="long-reason"),
    pytest.param({"note": "n" * 1025},
                 ['message: Invalid value: "": can have at most 1024 characters'],
                 id="note-over-1-KiB"),
    pytest.param({"type": "Error"}, ['type: Invalid value: "": has invalid value: Error'],
                 id="bad-type"),
    pytest.param({"series": {"count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}},
                 ['series.count: Invalid value: "": should be at least 2'],
                 id="series-count-1"),
    pytest.param({"series": {"count": 2}}, ["series.lastObservedTime: Required value"],
                 id="series-without-lastObservedTime"),
    pytest.param({"deprecatedCount": 3}, ['count: Invalid value: "": needs to be unset'],
                 id="deprecatedCount"),
    pytest.param({"deprecatedFirstTimestamp": "2026-01-01T00:00:00Z"},
                 ['firstTimestamp: Invalid value: "": needs to be unset'],
                 id="deprecatedFirstTimestamp"),
    pytest.param({"deprecatedSource": {"component": "kubelet"}},
                 ['source: Invalid value: "": needs to be unset'], id="deprecatedSource"),
    pytest.param({"metadata": {"name": "Not_A_Subdomain"}},
                 ['metadata.name: Invalid value: "Not_A_Subdomain": a lowercase RFC 1123 '
                  "subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', "
                  "regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
                 id="name-not-a-subdomain"),
]


@pytest.mark.parametrize(("change", "messages"), REFUSED_CREATES)
async def test_events_v1_creates_are_refused_as_kube_apiserver_refuses_them(
    api: Api, change: dict[str, Any], messages: list[str],
) -> None:
    body = _new(**change)
    status, answer = await api.request("POST", NEW, body=body)
    assert status == 422, answer
    name = body["metadata"]["name"]
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    assert answer["reason"] == "Invalid"
    assert answer["message"] == f'Event.events.k8s.io "{name}" is invalid: {summary}'
    assert [f"{c['field']}: {c['message']}" for c in answer["details"]["causes"]] == messages


async def test_core_v1_keeps_its_legacy_rules(api: Api) -> None:
    # no eventTime: only the namespaces must agree
    status, _ = await api.request("POST", CORE, body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "old.1"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "Pulled", "message": "pulled", "source": {"component": "kubelet"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1})
    assert status == 201
    status, answer = await api.request("POST", CORE, body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "old.2"},
        "involvedObject": {"kind": "Pod", "namespace": "kube-system", "name": "p"},
        "reason": "Pulled", "message": "pulled"})
    assert status == 422
    assert answer["message"] == ('Event "old.2" is invalid: involvedObject.namespace: Invalid '
                                 'value: "kube-system": does not match event.namespace')
    # an eventTime makes it a "new" event even through core/v1: action and reporter required
    status, answer = await api.request("POST", CORE, body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "old.3"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "Pulled", "message": "pulled", "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingComponent": "kubelet", "reportingInstance": "n1"})
    assert status == 422
    assert answer["message"] == 'Event "old.3" is invalid: action: Required value'
    # a core/v1 update of a new event's count is allowed (only events.k8s.io/v1 is strict)
    status, _ = await api.request("POST", NEW, body=_new("p.2"))
    assert status == 201
    status, patched = await api.request("PATCH", f"{CORE}/p.2", body={"count": 4},
                                        content_type="application/merge-patch+json")
    assert status == 200 and patched["count"] == 4


async def test_events_v1_updates_may_change_the_series_only(api: Api) -> None:
    status, _ = await api.request("POST", NEW, body=_new())
    assert status == 201
    series = {"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:30.000000Z"}}
    status, patched = await api.request("PATCH", f"{NEW}/p.1", body=series,
                                        content_type="application/strategic-merge-patch+json")
    assert status == 200 and patched["series"] == series["series"]
    status, answer = await api.request("PATCH", f"{NEW}/p.1", body={"series": {"count": 1}},
                                       content_type="application/merge-patch+json")
    assert status == 422
    assert answer["message"] == ('Event.events.k8s.io "p.1" is invalid: series.count: Invalid '
                                 'value: "": should be at least 2')
    status, answer = await api.request("PATCH", f"{NEW}/p.1", body={"note": "changed"},
                                       content_type="application/merge-patch+json")
    assert status == 422
    assert answer["message"] == ('Event.events.k8s.io "p.1" is invalid: message: Invalid '
                                 'value: "changed": field is immutable')
    status, answer = await api.request("PATCH", f"{NEW}/p.1", body={"deprecatedCount": 7},
                                       content_type="application/merge-patch+json")
    assert status == 422
    assert answer["message"] == ('Event.events.k8s.io "p.1" is invalid: count: Invalid '
                                 "value: 7: field is immutable")


async def test_one_stored_event_is_converted_both_ways(api: Api) -> None:
    # events.k8s.io/v1 -> core/v1: renamed fields, series kept as series
    written = _new(related={"kind": "Pod", "namespace": "default", "name": "q"},
                   series={"count": 3, "lastObservedTime": "2026-01-01T00:01:00.000000Z"})
    status, _ = await api.request("POST", NEW, body=written)
    assert status == 201
    _, core = await api.request("GET", f"{CORE}/p.1")
    assert core["apiVersion"] == "v1"
    assert core["involvedObject"] == written["regarding"]
    assert core["message"] == written["note"]
    assert core["reportingComponent"] == "default-scheduler"
    assert core["reportingInstance"] == "default-scheduler-host1"
    assert core["series"] == written["series"]
    assert (core["action"], core["related"]["name"]) == ("Scheduling", "q")
    assert core["eventTime"] == written["eventTime"]
    assert not any(core.get(f) for f in ("count", "firstTimestamp", "lastTimestamp", "source"))
    # core/v1 -> events.k8s.io/v1: the legacy fields become the deprecated ones
    status, _ = await api.request("POST", CORE, body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.2"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "BackOff", "message": "Back-off restarting failed container",
        "type": "Warning", "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:02:00Z",
        "count": 5})
    assert status == 201
    _, new = await api.request("GET", f"{NEW}/p.2")
    assert new["apiVersion"] == "events.k8s.io/v1"
    assert new["regarding"]["name"] == "p" and new["note"].startswith("Back-off")
    assert new["deprecatedCount"] == 5
    assert new["deprecatedFirstTimestamp"] == "2026-01-01T00:00:00Z"
    assert new["deprecatedLastTimestamp"] == "2026-01-01T00:02:00Z"
    assert new["deprecatedSource"] == {"component": "kubelet", "host": "n1"}
    assert "series" not in new and "count" not in new and "message" not in new
    # and back: an events.k8s.io/v1 update of that event leaves its legacy fields alone
    status, patched = await api.request(
        "PATCH", f"{NEW}/p.2", body={"metadata": {"labels": {"seen": "yes"}}},
        content_type="application/merge-patch+json")
    assert status == 200, patched
    _, core = await api.request("GET", f"{CORE}/p.2")
    assert core["count"] == 5 and core["lastTimestamp"] == "2026-01-01T00:02:00Z"
    assert "eventTime" not in core


def _kubectl(kubeconfig: str, *args: str) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True,
                          text=True, check=True, timeout=30).stdout


async def test_kubectl_shows_a_series_count_and_last_observation(
    api: Api, devkube: main.Devkube,
) -> None:
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods",
                                        body=pod("p"))
    assert status == 201
    first = _new(eventTime=_stamp(300))
    first["regarding"]["uid"] = created["metadata"]["uid"]  # describe selects by uid
    status, _ = await api.request("POST", NEW, body=first)
    assert status == 201
    series = {"series": {"count": 4, "lastObservedTime": _stamp(10)}}
    status, _ = await api.request("PATCH", f"{NEW}/p.1", body=series,
                                  content_type="application/strategic-merge-patch+json")
    assert status == 200
    kubeconfig = str(devkube.kubeconfig)
    table = await asyncio.to_thread(_kubectl, kubeconfig, "get", "events", "-o", "wide",
                                    "--no-headers")
    # LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME
    [row] = table.splitlines()
    cells = row.split()
    assert cells[:4] == ["10s", "Warning", "FailedScheduling", "pod/p"], row
    assert cells[-4:] == ["cpu.", "5m", "4", "p.1"], row
    assert "default-scheduler, default-scheduler-host1" in row
    listed = await asyncio.to_thread(_kubectl, kubeconfig, "events", "--for", "pod/p")
    assert re.search(r"1\d?s \(x4 over 5m\d*s?\) +Warning +FailedScheduling", listed), listed
    described = await asyncio.to_thread(_kubectl, kubeconfig, "describe", "pod", "p")
    assert re.search(r"FailedScheduling +1\d?s \(x4 over 5m\d*s?\) +default-scheduler",
                     described), described


async def test_the_official_client_reads_a_series_through_both_apis(
    api: Api, devkube: main.Devkube,
) -> None:
    status, _ = await api.request("POST", NEW, body=_new(
        series={"count": 2, "lastObservedTime": "2026-01-01T00:00:30.000000Z"}))
    assert status == 201
    status, _ = await api.request("POST", CORE, body={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.2"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "Pulled", "message": "pulled", "source": {"component": "kubelet"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1})
    assert status == 201
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(devkube.kubeconfig))
    try:
        new = await asyncio.to_thread(
            client.EventsV1Api(api_client).list_namespaced_event, "default")
        core = await asyncio.to_thread(
            client.CoreV1Api(api_client).list_namespaced_event, "default")
    finally:
        api_client.close()
    by_name = {str(e.metadata and e.metadata.name): e for e in new.items}
    assert by_name["p.1"].series is not None and by_name["p.1"].series.count == 2
    assert by_name["p.1"].deprecated_count is None
    assert by_name["p.2"].deprecated_count == 1 and by_name["p.2"].series is None
    series = {str(e.metadata and e.metadata.name): e.series for e in core.items}
    assert series["p.1"] is not None and series["p.1"].count == 2 and series["p.2"] is None
