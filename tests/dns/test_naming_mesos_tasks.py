"""Mesos-DNS names for running tasks, from a static GET_STATE (pure)."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rdatatype

from k8sbridge.dns import mesosnames
from k8sbridge.dns import table as dns_table


def task(name: str, *, tid: str, state: str = "TASK_RUNNING", ip: str | None = None,
         ports: tuple[int, int] | None = None, discovery: dict[str, Any] | None = None,
         agent: str = "A-S0", framework: str = "F1") -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "task_id": {"value": tid}, "state": state,
                         "framework_id": {"value": framework}, "agent_id": {"value": agent},
                         "resources": [], "statuses": []}
    if ip is not None:
        t["statuses"] = [{"state": "TASK_RUNNING", "container_status": {
            "network_infos": [{"ip_addresses": [{"ip_address": ip}]}]}}]
    if ports is not None:
        t["resources"] = [{"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]}}]
    if discovery is not None:
        t["discovery"] = discovery
    return t


def state(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "get_agents": {"agents": [
            {"agent_info": {"id": {"value": "A-S0"}, "hostname": "127.0.0.1"},
             "pid": "slave(1)@127.0.0.1:5051"},
            {"agent_info": {"id": {"value": "A-S1"}, "hostname": "node-b"},
             "pid": "slave(1)@127.0.0.2:5051"}]},
        "get_frameworks": {"frameworks": [
            {"framework_info": {"id": {"value": "F1"}, "name": "Marathon"}},
            {"framework_info": {"id": {"value": "F2"}, "name": "my.Frame_work"}}]},
        "get_tasks": {"tasks": list(tasks)},
    }


def ask(table: dns_table.Table, name: str, rdtype: str = "A") -> list[str]:
    answer = table.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    return sorted(r.to_text() for _, r in answer.records)


def test_labels_are_mangled_as_mesos_dns_does() -> None:
    assert mesosnames.label("My_App.v2") == "my-app-v2"
    assert mesosnames.label("--web--") == "web"
    assert mesosnames.label("x" * 100) == "x" * 63
    assert mesosnames.label("!!!") == ""


def test_a_running_task_has_a_records_for_its_container_and_its_agent() -> None:
    t = mesosnames.build(state(task("Web_App", tid="web.1", ip="10.88.0.9"),
                               task("web_app", tid="web.2", agent="A-S1")))
    assert ask(t, "web-app.marathon.mesos") == ["10.88.0.9", "127.0.0.2"]
    assert ask(t, "web-app.marathon.slave.mesos") == ["127.0.0.1", "127.0.0.2"]
    assert t.lookup(dns.name.from_text("marathon.mesos"),
                    dns.rdatatype.A).rcode == dns_table.NOERROR  # exists, no records
    assert t.lookup(dns.name.from_text("nope.marathon.mesos"),
                    dns.rdatatype.A).rcode == dns_table.NXDOMAIN


def test_tasks_that_do_not_run_have_no_names() -> None:
    t = mesosnames.build(state(task("web", tid="1", state="TASK_STAGING"),
                               task("gone", tid="2", state="TASK_FINISHED")))
    assert ask(t, "web.marathon.mesos") == []


def test_srv_records_for_the_tasks_ports() -> None:
    t = mesosnames.build(state(task("web", tid="w1", ip="10.88.0.9", ports=(31000, 31001))))
    got = ask(t, "_web._tcp.marathon.mesos", "SRV")
    assert [g.split()[2] for g in got] == ["31000", "31001"]
    target = dns.name.from_text(got[0].split()[3])
    assert ask(t, target.to_text()) == ["127.0.0.1"]  # <canonical>.marathon.slave.mesos
    assert len(ask(t, "_web._udp.marathon.mesos", "SRV")) == 2


def test_discovery_info_names_the_task_and_its_ports() -> None:
    discovery = {"name": "API", "ports": {"ports": [{"number": 8080, "protocol": "tcp",
                                                     "name": "http"}]}}
    t = mesosnames.build(state(task("whatever", tid="a1", ip="10.88.0.3", ports=(31005, 31005),
                                    discovery=discovery, framework="F2")))
    assert ask(t, "api.my.frame-work.mesos") == ["10.88.0.3"]
    got = ask(t, "_api._tcp.my.frame-work.mesos", "SRV")
    assert [g.split()[2] for g in got] == ["8080"]
    assert ask(t, dns.name.from_text(got[0].split()[3]).to_text()) == ["10.88.0.3"]


def test_garbage_state_builds_an_empty_zone() -> None:
    t = mesosnames.build({"get_tasks": {"tasks": [None, {"state": "TASK_RUNNING"}]},
                          "get_agents": {"agents": [{}]}})
    assert t.lookup(dns.name.from_text("x.y.mesos"), dns.rdatatype.A).rcode == \
        dns_table.NXDOMAIN
