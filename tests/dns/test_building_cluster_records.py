"""The Kubernetes DNS specification's names, from static Services and EndpointSlices (pure)."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rdatatype
import dns.reversename
import pytest

from k8sbridge.dns import cluster
from k8sbridge.dns import table as dns_table

A, AAAA, SRV, PTR, TXT, CNAME, SOA = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV,
                                      dns.rdatatype.PTR, dns.rdatatype.TXT,
                                      dns.rdatatype.CNAME, dns.rdatatype.SOA)


def svc(name: str, *, ns: str = "default", ip: str | None = "10.96.0.20",
        ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if ip is not None:
        body["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def eps(service: str, endpoints: list[dict[str, Any]], *, ns: str = "default",
        ports: list[dict[str, Any]] | None = None, name: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name or f"{service}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "pg", "port": 5432,
                                                        "protocol": "TCP"}]}


def build(services: list[dict[str, Any]], slices: list[dict[str, Any]] = (),  # type: ignore
          namespaces: tuple[str, ...] = ("default", "kube-system")) -> cluster.ClusterRecords:
    parsed = [s for s in (cluster.parse_service(r) for r in services) if s is not None]
    cut = [s for s in (cluster.parse_slice(r) for r in slices) if s is not None]
    return cluster.build(domain="cluster.local", services=parsed, slices=cut,
                         namespaces=namespaces)


def ask(records: cluster.ClusterRecords, name: str,
        rdtype: dns.rdatatype.RdataType) -> dns_table.Answer:
    found = records.lookup(dns.name.from_text(name), rdtype)
    assert found is not None, f"{name} is not ours"
    return found


def texts(answer: dns_table.Answer) -> list[str]:
    return sorted(r.to_text() for _, r in answer.records)


HEADLESS = [svc("db", ip="None", ports=[{"name": "pg", "port": 5432}])]
DB_SLICE = eps("db", [
    {"addresses": ["10.88.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
    {"addresses": ["10.88.1.7"], "conditions": {"ready": True}},
    {"addresses": ["10.88.2.9"], "hostname": "db-2", "conditions": {"ready": False}},
])


def test_a_cluster_ip_service_has_its_address_and_nodata_for_aaaa() -> None:
    r = build([svc("web")])
    a = ask(r, "web.default.svc.cluster.local", A)
    assert a.rcode == dns_table.NOERROR and texts(a) == ["10.96.0.20"]
    nodata = ask(r, "WEB.Default.svc.cluster.local.", AAAA)
    assert nodata.rcode == dns_table.NOERROR and nodata.records == ()
    assert [rd.rdtype for _, rd in nodata.authority] == [SOA]


def test_named_ports_have_srv_records_pointing_at_the_service() -> None:
    r = build([svc("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                 {"name": "dns", "port": 53, "protocol": "UDP"},
                                 {"port": 9000}])])
    got = ask(r, "_http._tcp.web.default.svc.cluster.local", SRV)
    assert texts(got) == ["0 100 80 web.default.svc.cluster.local."]
    assert [rd.to_text() for _, rd in got.additional] == ["10.96.0.20"]
    assert texts(ask(r, "_dns._udp.web.default.svc.cluster.local", SRV)) == [
        "0 100 53 web.default.svc.cluster.local."]
    # wrong protocol: no such name; the empty non-terminal _tcp exists (NODATA)
    assert ask(r, "_dns._tcp.web.default.svc.cluster.local", SRV).rcode == dns_table.NXDOMAIN
    assert ask(r, "_tcp.web.default.svc.cluster.local", SRV).rcode == dns_table.NOERROR
    assert len(ask(r, "web.default.svc.cluster.local", SRV).records) == 3  # every port


def test_a_headless_service_answers_its_ready_endpoints() -> None:
    r = build(HEADLESS, [DB_SLICE])
    assert texts(ask(r, "db.default.svc.cluster.local", A)) == ["10.88.0.5", "10.88.1.7"]
    assert texts(ask(r, "db-0.db.default.svc.cluster.local", A)) == ["10.88.0.5"]
    assert texts(ask(r, "10-88-1-7.db.default.svc.cluster.local", A)) == ["10.88.1.7"]
    assert ask(r, "db-2.db.default.svc.cluster.local", A).rcode == dns_table.NXDOMAIN
    srv = ask(r, "_pg._tcp.db.default.svc.cluster.local", SRV)
    assert texts(srv) == ["0 50 5432 10-88-1-7.db.default.svc.cluster.local.",
                          "0 50 5432 db-0.db.default.svc.cluster.local."]
    assert sorted(rd.to_text() for _, rd in srv.additional) == ["10.88.0.5", "10.88.1.7"]


def test_a_headless_service_without_ready_endpoints_does_not_exist() -> None:
    r = build(HEADLESS, [eps("db", [{"addresses": ["10.88.0.5"],
                                     "conditions": {"ready": False}}])])
    assert ask(r, "db.default.svc.cluster.local", A).rcode == dns_table.NXDOMAIN


def test_external_name_is_a_cname() -> None:
    r = build([svc("ext", ip=None, type="ExternalName", externalName="db.example.org")])
    got = ask(r, "ext.default.svc.cluster.local", A)
    assert [(rd.rdtype, rd.to_text()) for _, rd in got.records] == [(CNAME, "db.example.org.")]


def test_nxdomain_and_nodata_as_the_specification_says() -> None:
    r = build([svc("web")])
    for name in ("cluster.local", "svc.cluster.local", "default.svc.cluster.local",
                 "pod.cluster.local", "kube-system.svc.cluster.local"):
        got = ask(r, name, A)
        assert (got.rcode, got.records) == (dns_table.NOERROR, ()), name
    for name in ("nope.default.svc.cluster.local", "web.nons.svc.cluster.local",
                 "nons.svc.cluster.local", "x.web.default.svc.cluster.local",
                 "web.default.other.cluster.local"):
        assert ask(r, name, A).rcode == dns_table.NXDOMAIN, name
    assert texts(ask(r, "dns-version.cluster.local", TXT)) == ['"1.1.0"']
    assert ask(r, "cluster.local", SOA).records


def test_reverse_names_of_cluster_ips_and_endpoints() -> None:
    r = build([svc("web"), *HEADLESS], [DB_SLICE])
    ptr = ask(r, dns.reversename.from_address("10.96.0.20").to_text(), PTR)
    assert texts(ptr) == ["web.default.svc.cluster.local."]
    ptr = ask(r, "5.0.88.10.in-addr.arpa.", PTR)
    assert texts(ptr) == ["db-0.db.default.svc.cluster.local."]
    assert r.lookup(dns.name.from_text("1.2.0.192.in-addr.arpa."), PTR) is None  # forwarded


def test_pod_addresses_have_ptrs_unless_an_endpoint_named_them() -> None:
    pods = [cluster.parse_pod({"metadata": {"namespace": "default"},
                               "status": {"podIP": ip, "podIPs": [{"ip": ip}]}})
            for ip in ("10.88.3.4", "10.88.0.5")]
    host = cluster.parse_pod({"metadata": {"namespace": "default"}, "spec": {
        "hostNetwork": True}, "status": {"podIP": "127.0.0.1"}})
    assert host is None and None not in pods
    parsed = [s for s in (cluster.parse_service(r) for r in HEADLESS) if s is not None]
    r = cluster.build(domain="cluster.local", services=parsed,
                      slices=[cluster.parse_slice(DB_SLICE)],  # type: ignore[list-item]
                      namespaces=["default"], pods=pods)  # type: ignore[arg-type]
    assert texts(ask(r, "4.3.88.10.in-addr.arpa.", PTR)) == ["10-88-3-4.default.pod.cluster.local."]
    assert texts(ask(r, "5.0.88.10.in-addr.arpa.", PTR)) == ["db-0.db.default.svc.cluster.local."]


def test_pod_names_answer_the_address_they_spell() -> None:
    r = build([svc("web")])
    assert texts(ask(r, "10-88-0-5.default.pod.cluster.local", A)) == ["10.88.0.5"]
    assert ask(r, "10-88-0-5.default.pod.cluster.local", AAAA).records == ()
    assert texts(ask(r, "fd00--5.default.pod.cluster.local", AAAA)) == ["fd00::5"]
    assert ask(r, "10-88-0-5.nons.pod.cluster.local", A).rcode == dns_table.NXDOMAIN
    assert ask(r, "not-an-ip.default.pod.cluster.local", A).rcode == dns_table.NXDOMAIN


@pytest.mark.parametrize(("service", "reason"), [
    (svc("Web_1"), cluster.REASON_BAD_SERVICE_NAME),
    (svc("9web"), cluster.REASON_BAD_SERVICE_NAME),
    (svc("web", ns="Bad_NS"), cluster.REASON_BAD_NAMESPACE),
    (svc("web", ports=[{"name": "HTTP_X", "port": 80}]), cluster.REASON_BAD_PORT_NAME),
])
def test_objects_kubernetes_would_refuse_get_no_records_and_a_reason(
        service: dict[str, Any], reason: str) -> None:
    r = build([service])
    assert [why for _, why in r.skipped] == [reason]


def test_a_thousand_endpoints_build_and_answer() -> None:
    slice_ = eps("db", [{"addresses": [f"10.88.{i // 250}.{i % 250 + 1}"],
                         "conditions": {"ready": True}} for i in range(1000)])
    r = build(HEADLESS, [slice_])
    assert len(ask(r, "db.default.svc.cluster.local", A).records) == 1000
    assert len(ask(r, "_pg._tcp.db.default.svc.cluster.local", SRV).records) == 1000


def test_names_outside_the_cluster_domain_are_not_ours() -> None:
    r = build([svc("web")])
    assert r.lookup(dns.name.from_text("example.org"), A) is None
    assert r.lookup(dns.name.from_text("local"), A) is None
