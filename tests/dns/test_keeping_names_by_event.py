"""Names kept one object at a time: the Mesos zone applies operator events as Mesos' master.proto
defines them (pure), a counted zone keeps a record or name until its last giver is gone, pods
change their PTRs without a rebuild, and rebuilds of the Services' records take a bounded share
of the time however fast events come."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.name
import dns.rdatatype
import dns.reversename

from k8sbridge.dns import cluster, mesosnames, mesoszone, sources
from k8sbridge.dns import table as dns_table
from tests.dns.test_naming_mesos_tasks import state, task


def ask(table: dns_table.Table, name: str, rdtype: str = "A") -> list[str]:
    answer = table.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    return sorted(r.to_text() for _, r in answer.records)


def rcode(table: dns_table.Table, name: str) -> int:
    return table.lookup(dns.name.from_text(name), dns.rdatatype.A).rcode


def added(t: dict[str, Any]) -> dict[str, Any]:
    return {"type": "TASK_ADDED", "task_added": {"task": t}}


def updated(tid: str, state_name: str, *, ip: str | None = None,
            framework: str = "F1") -> dict[str, Any]:
    status: dict[str, Any] = {"task_id": {"value": tid}, "state": state_name}
    if ip is not None:
        status["container_status"] = {"network_infos": [{"ip_addresses": [{"ip_address": ip}]}]}
    return {"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": framework}, "status": status, "state": state_name}}


def test_events_name_a_task_once_it_runs_and_forget_it_when_it_ends() -> None:
    zone = mesoszone.MesosZone.from_state(state())
    zone.apply(added(task("web", tid="w1", state="TASK_STAGING")))
    assert ask(zone.table(), "web.marathon.mesos") == []
    before = zone.table()
    zone.apply(updated("w1", "TASK_RUNNING", ip="10.88.0.7"))
    assert zone.table() is not before  # a new table: the server's answer cache ends
    assert ask(zone.table(), "web.marathon.mesos") == ["10.88.0.7"]
    zone.apply(added(task("web", tid="w2", state="TASK_RUNNING", agent="A-S1")))
    assert ask(zone.table(), "web.marathon.mesos") == ["10.88.0.7", "127.0.0.2"]
    zone.apply(updated("w1", "TASK_FINISHED"))
    assert ask(zone.table(), "web.marathon.mesos") == ["127.0.0.2"]
    assert zone.task_count == 1
    zone.apply(updated("w2", "TASK_KILLED"))
    assert rcode(zone.table(), "web.marathon.mesos") == dns_table.NXDOMAIN
    assert rcode(zone.table(), "marathon.mesos") == dns_table.NXDOMAIN  # nothing below it


def test_the_same_names_as_from_get_state() -> None:
    tasks = [task("web", tid=f"w{i}", ip=f"10.88.0.{i + 1}", ports=(31000 + i, 31000 + i))
             for i in range(5)]
    whole = mesosnames.build(state(*tasks))
    zone = mesoszone.MesosZone.from_state(state())
    for t in tasks:
        zone.apply(added(t))
    live = zone.table()
    assert {k: sorted(v) for k, v in live.records.items()} == \
        {k: sorted(v) for k, v in whole.records.items()}
    assert set(live.names) == set(whole.names)


def test_agents_and_frameworks_coming_and_going() -> None:
    zone = mesoszone.MesosZone.from_state(state(task("web", tid="w1", agent="A-S1")))
    assert ask(zone.table(), "web.marathon.mesos") == ["127.0.0.2"]
    zone.apply({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "A-S1"}}})
    assert ask(zone.table(), "web.marathon.mesos") == []
    zone.apply({"type": "AGENT_ADDED", "agent_added": {"agent": {
        "agent_info": {"id": {"value": "A-S1"}, "hostname": "10.0.0.9"}}}})
    assert ask(zone.table(), "web.marathon.mesos") == ["10.0.0.9"]
    zone.apply({"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": {
        "framework_info": {"id": {"value": "F1"}, "name": "Marathon.prod"}}}})
    assert ask(zone.table(), "web.marathon.prod.mesos") == ["10.0.0.9"]
    assert ask(zone.table(), "web.marathon.mesos") == []
    zone.apply({"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"id": {"value": "F1"}, "name": "Marathon.prod"}}})
    assert zone.task_count == 0 and ask(zone.table(), "web.marathon.prod.mesos") == []


def test_garbage_events_change_nothing() -> None:
    zone = mesoszone.MesosZone.from_state(state(task("web", tid="w1")))
    before = zone.table()
    for event in ({"type": "TASK_ADDED"}, {"type": "TASK_ADDED", "task_added": {"task": 7}},
                  {"type": "TASK_UPDATED", "task_updated": {"status": None}},
                  updated("unknown", "TASK_RUNNING"), {"type": "AGENT_REMOVED"},
                  {"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": 1}},
                  {"type": "NEW_IN_A_LATER_MESOS"}, {}):
        zone.apply(event)
    assert zone.table() is before
    assert ask(zone.table(), "web.marathon.mesos") == ["127.0.0.1"]


def test_a_counted_zone_keeps_what_another_object_still_gives() -> None:
    zone = dns_table.Zone(origin="z.")
    one = [("a.b.z.", dns_table.a_or_aaaa("10.0.0.1"))]
    zone.add(one)
    zone.add(one)
    zone.remove(one)
    assert ask(zone.table(), "a.b.z.") == ["10.0.0.1"]
    zone.remove(one)
    assert rcode(zone.table(), "a.b.z.") == dns_table.NXDOMAIN
    assert rcode(zone.table(), "b.z.") == dns_table.NXDOMAIN
    assert rcode(zone.table(), "z.") == dns_table.NOERROR


def ptr(records: cluster.ClusterRecords, ip: str) -> list[str]:
    name = dns.reversename.from_address(ip)
    answer = records.lookup(name, dns.rdatatype.PTR)
    return [] if answer is None else [r.to_text() for _, r in answer.records]


def pod(ns: str, name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "status": {"podIP": ip}}


async def test_pods_change_their_ptrs_without_a_rebuild() -> None:
    source = sources.ClusterSource(domain="cluster.local")
    source.rebuild()
    rebuilds = source.rebuilds
    for i in range(1000):
        source.on_pod("ADDED", pod("tput", f"p{i}", f"10.88.{i // 250}.{i % 250 + 1}"))
    assert ptr(source.records, "10.88.3.250") == ["10-88-3-250.tput.pod.cluster.local."]
    before = source.records
    source.on_pod("DELETED", pod("tput", "p999", "10.88.3.250"))
    assert source.records is not before  # a new object: cached answers end
    assert ptr(source.records, "10.88.3.250") == []
    # an address reused by a new pod while the old one is still going keeps a name
    source.on_pod("ADDED", pod("other", "new", "10.88.0.1"))
    source.on_pod("DELETED", pod("tput", "p0", "10.88.0.1"))
    assert ptr(source.records, "10.88.0.1") == ["10-88-0-1.other.pod.cluster.local."]
    source.replace_pods([pod("other", "new", "10.88.0.1")])  # a relist: the rest is gone
    assert ptr(source.records, "10.88.0.2") == []
    assert source.rebuilds == rebuilds


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": f"s{i}"},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80}]}}


async def test_rebuilds_take_a_bounded_share_and_a_lone_change_shows_at_once() -> None:
    source = sources.ClusterSource(domain="cluster.local")
    for i in range(500):
        source.on_service("ADDED", service(i))
    source.rebuild()
    took = source._last_took
    # a stream of changes for a while: rebuilds never run back to back
    loop = asyncio.get_running_loop()
    began, cpu = loop.time(), time.process_time()
    rebuilds = source.rebuilds
    end = began + max(1.0, 10 * took)
    i = 500
    while loop.time() < end:
        source.on_service("ADDED", service(i))
        i += 1
        await asyncio.sleep(0.002)
    spent = source.rebuilds - rebuilds
    elapsed = loop.time() - began
    assert spent <= elapsed / (sources.REBUILD_PAUSE * took * 0.5) + 2, (spent, took, elapsed)
    assert time.process_time() - cpu < elapsed * 1.5  # the loop was not busy rebuilding
    # a quiet while later, one change shows after the debounce and one rebuild
    while source._rebuild is not None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(sources.REBUILD_PAUSE * source._last_took + 0.1)
    source.changed.clear()
    started = loop.time()
    source.on_service("ADDED", service(i + 1))
    await asyncio.wait_for(source.changed.wait(), 5)
    assert loop.time() - started < sources.DEBOUNCE_SECONDS + source._last_took + 0.1
    name = f"s{i + 1}.default.svc.cluster.local."
    assert ask(source.records.table, name) != []
