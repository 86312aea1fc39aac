"""The proxy's decisions from static objects: which Service ports are proxied, which endpoints
serve, and the nftables rules and transactions kube-proxy's nftables mode would program."""

from __future__ import annotations

from typing import Any

from k8sbridge.proxy import model, proxier, rules

NODES = (rules.Node("n0", "10.88.0.0/24"), rules.Node("n1", "10.88.1.0/24"))
CONFIG = rules.ProxyConfig(nodes=NODES, masquerade_all=True)


def svc(name: str = "web", ip: str = "10.96.0.20", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


def eps(*items: tuple[str, str, dict[str, Any]], port: int = 8080,
        name: str = "web") -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": f"{name}-abc",
                         "labels": {model.SERVICE_NAME_LABEL: name}},
            "addressType": "IPv4", "ports": [{"port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": cond}
                          for ip, node, cond in items]}


READY = {"ready": True}


def plan(service: dict[str, Any], *slices: dict[str, Any],
         config: rules.ProxyConfig = CONFIG) -> rules.Ruleset:
    ports = [(sp, model.endpoints_of(sp, slices)) for sp in model.service_ports(service)]
    return rules.render(ports, config)


def test_headless_externalname_and_ipv6_services_are_not_proxied() -> None:
    assert model.service_ports(svc(ip="None")) == []
    assert model.service_ports(svc(type="ExternalName")) == []
    assert model.service_ports(svc(ip="fd00::1")) == []
    bad_ports = svc(ports=[{"port": 0}, {"port": 80, "protocol": "ICMP"}, {"port": 53,
                                                                          "protocol": "UDP"}])
    assert [(p.protocol, p.port) for p in model.service_ports(bad_ports)] == [("UDP", 53)]


def test_ready_endpoints_serve_and_terminating_ones_only_when_none_is_ready() -> None:
    [sp] = model.service_ports(svc())
    slice_ = eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", {}),
                 ("10.88.0.4", "n0", {"ready": False, "serving": True, "terminating": True}),
                 ("10.88.0.5", "n0", {"ready": False}), ("fd00::5", "n0", READY))
    assert [e.ip for e in model.endpoints_of(sp, [slice_])] == ["10.88.0.2", "10.88.0.3"]
    draining = eps(("10.88.0.4", "n0", {"ready": False, "serving": True, "terminating": True}),
                   ("10.88.0.6", "n0", {"ready": False, "serving": False, "terminating": True}))
    assert [e.ip for e in model.endpoints_of(sp, [draining])] == ["10.88.0.4"]


def test_endpoint_ports_are_matched_by_port_name() -> None:
    service = svc(ports=[{"name": "http", "port": 80}, {"name": "admin", "port": 81}])
    slice_ = eps(("10.88.0.2", "n0", READY))
    slice_["ports"] = [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]
    got = {sp.port_name: model.endpoints_of(sp, [slice_])[0].port
           for sp in model.service_ports(service)}
    assert got == {"http": 8080, "admin": 9090}


def test_a_service_picks_a_random_endpoint_and_dnats_in_one_rule() -> None:
    ruleset = plan(svc(), eps(("10.88.0.2", "n0", READY), ("10.88.1.2", "n1", READY)))
    [key] = ruleset.elements["service-ips"]
    assert key == "10.96.0.20 . tcp . 80"
    chain = ruleset.elements["service-ips"][key].removeprefix("goto ")
    assert chain.startswith("service-") and chain.endswith("-default/web/tcp/")
    assert ruleset.chains[chain] == (
        "jump mark-for-masquerade",  # masquerade_all
        "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.88.0.2 . 8080, "
        "1 : 10.88.1.2 . 8080 }")
    assert list(ruleset.chains) == [chain]  # no chain per endpoint
    assert ruleset.elements["hairpin-endpoints"] == {  # masqueraded if sent to itself
        "10.96.0.20 . 10.88.0.2 . 10.88.0.2": "", "10.96.0.20 . 10.88.1.2 . 10.88.1.2": ""}
    assert ruleset.elements["no-endpoint-services"] == {}


def test_endpoint_chains_dnat_where_a_rule_follows_the_chosen_endpoint() -> None:
    ruleset = plan(svc(sessionAffinity="ClientIP"),
                   eps(("10.88.0.2", "n0", READY), ("10.88.1.2", "n1", READY)))
    chain = ruleset.elements["service-ips"]["10.96.0.20 . tcp . 80"].removeprefix("goto ")
    assert ruleset.chains[chain][-1].startswith("numgen random mod 2 vmap { 0 : goto endpoint-")
    endpoint = next(c for c in ruleset.chains if c.endswith("__10.88.1.2/8080"))
    assert ruleset.chains[endpoint][0] == "ip saddr 10.88.1.2 jump mark-for-masquerade"
    assert ruleset.chains[endpoint][-1] == "meta l4proto tcp dnat to 10.88.1.2:8080"
    assert ruleset.elements["hairpin-endpoints"] == {}  # the endpoint chain does it
    local = plan(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}],
                     externalTrafficPolicy="Local"), eps(("10.88.1.2", "n1", READY)))
    assert sum(c.startswith("endpoint-") for c in local.chains) == 1


def test_a_service_without_endpoints_is_rejected() -> None:
    ruleset = plan(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert ruleset.elements["no-endpoint-services"] == {
        "10.96.0.20 . tcp . 80": "goto reject-chain"}
    assert ruleset.elements["no-endpoint-nodeports"] == {"tcp . 30080": "goto reject-chain"}
    assert ruleset.elements["service-ips"] == {} and ruleset.chains == {}
    assert ruleset.elements["cluster-ips"] == {"10.96.0.20": ""}


def test_client_ip_affinity_is_a_timed_set_per_endpoint() -> None:
    service = svc(sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    ruleset = plan(service, eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", READY)))
    assert sorted(ruleset.affinity.values()) == [60, 60]
    aff = next(iter(ruleset.affinity))
    endpoint = next(c for c in ruleset.chains if c.startswith("endpoint-") and
                    aff.endswith(c.removeprefix("endpoint-")))
    assert f"update @{aff} {{ ip saddr }}" in ruleset.chains[endpoint]
    service_chain = next(c for c in ruleset.chains if c.startswith("service-"))
    assert f"ip saddr @{aff} goto {endpoint}" in ruleset.chains[service_chain]
    default = plan(svc(sessionAffinity="ClientIP"), eps(("10.88.0.2", "n0", READY)))
    assert list(default.affinity.values()) == [10800]


def test_internal_traffic_policy_local_picks_the_sources_nodes_endpoints() -> None:
    service = svc(internalTrafficPolicy="Local")
    ruleset = plan(service, eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", READY),
                                ("10.88.9.2", "elsewhere", READY)))
    chain = next(c for c in ruleset.chains if c.startswith("service-"))
    rules_ = ruleset.chains[chain]
    assert rules_[1].startswith("ip saddr 10.88.0.0/24 meta l4proto tcp dnat ip to numgen "
                                "random mod 2 map")
    assert rules_[-1] == "drop"  # a pod of n1: no endpoint on its node
    remote_only = plan(service, eps(("10.88.9.2", "elsewhere", READY)))
    assert remote_only.elements["no-endpoint-services"] == {"10.96.0.20 . tcp . 80": "drop"}
    single = plan(service, eps(("10.88.0.2", "n0", READY)),
                  config=rules.ProxyConfig(nodes=(rules.Node("n0"),)))
    chain = next(c for c in single.chains if c.startswith("service-"))
    assert single.chains[chain][0].startswith("meta l4proto tcp dnat ip to numgen random mod 1")


def test_node_ports_masquerade_unless_external_traffic_policy_is_local() -> None:
    ports = [{"port": 80, "nodePort": 30080}]
    cluster = plan(svc(type="NodePort", ports=ports), eps(("10.88.0.2", "n0", READY)))
    [(key, verdict)] = cluster.elements["service-nodeports"].items()
    assert key == "tcp . 30080"
    external = verdict.removeprefix("goto ")
    assert cluster.chains[external][0] == "jump mark-for-masquerade"
    assert cluster.chains[external][1].startswith("goto service-")
    local = plan(svc(type="NodePort", ports=ports, externalTrafficPolicy="Local"),
                 eps(("10.88.1.2", "n1", READY)))
    external = local.elements["service-nodeports"]["tcp . 30080"].removeprefix("goto ")
    assert any(r.startswith("ip daddr 10.88.1.1 numgen random mod 1") for r in
               local.chains[external])
    assert "jump mark-for-masquerade" not in local.chains[external]
    assert local.chains[external][-1] == "drop"


def test_outside_sources_are_masqueraded_with_a_cluster_cidr() -> None:
    config = rules.ProxyConfig(nodes=NODES, cluster_cidr="10.88.0.0/16")
    ruleset = plan(svc(), eps(("10.88.0.2", "n0", READY)), config=config)
    chain = next(c for c in ruleset.chains if c.startswith("service-"))
    assert ruleset.chains[chain][0] == "ip saddr != 10.88.0.0/16 jump mark-for-masquerade"


def test_the_full_text_has_kube_proxys_layout() -> None:
    text = rules.full_text(plan(svc(), eps(("10.88.0.2", "n0", READY))), CONFIG)
    lines = text.splitlines()
    assert lines[:3] == ["add table ip kube-proxy", "delete table ip kube-proxy",
                         "add table ip kube-proxy"]
    assert ("add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; "
            "policy accept ; }") in lines
    assert "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap " \
           "@service-ips" in lines
    assert "add rule ip kube-proxy reject-chain reject" in lines
    assert any(line.startswith("add element ip kube-proxy service-ips { 10.96.0.20 . tcp . "
                               "80 : goto service-") for line in lines)


def test_a_change_touches_only_what_changed_and_removes_in_order() -> None:
    one = plan(svc(), eps(("10.88.0.2", "n0", READY)))
    two = plan(svc(), eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", READY)))
    assert rules.diff_text(one, one, CONFIG) == ""
    grow = rules.diff_text(one, two, CONFIG).splitlines()
    assert grow[0].startswith("flush chain ip kube-proxy service-")
    assert [line for line in grow if "element" in line] == [
        "add element ip kube-proxy hairpin-endpoints { 10.96.0.20 . 10.88.0.3 . 10.88.0.3 }"]
    sticky = svc(sessionAffinity="ClientIP")
    one = plan(sticky, eps(("10.88.0.2", "n0", READY)))
    two = plan(sticky, eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", READY)))
    grow = rules.diff_text(one, two, CONFIG).splitlines()
    assert grow[0].startswith("add set ip kube-proxy affinity-10800s-")
    assert grow[1].startswith("add chain ip kube-proxy endpoint-")
    assert any(line.startswith("flush chain ip kube-proxy service-") for line in grow)
    assert not any("element" in line for line in grow)  # the maps did not change
    gone = rules.diff_text(two, proxier.EMPTY, CONFIG).splitlines()
    assert "delete element ip kube-proxy cluster-ips { 10.96.0.20 }" in gone
    assert gone[0] == "delete element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 }"
    deletes = [line.split()[4] for line in gone if line.startswith("delete chain")]
    assert deletes[0].startswith("service-") and all(d.startswith("endpoint-")
                                                    for d in deletes[1:])
    emptied = rules.diff_text(two, plan(svc()), CONFIG)
    assert "add element ip kube-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 : goto " \
           "reject-chain }" in emptied


def test_node_port_traffic_ignores_the_internal_traffic_policy() -> None:
    service = svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}],
                  internalTrafficPolicy="Local")
    ruleset = plan(service, eps(("10.88.0.2", "n0", READY), ("10.88.9.2", "elsewhere", READY)))
    external = ruleset.elements["service-nodeports"]["tcp . 30080"].removeprefix("goto ")
    assert ruleset.chains[external][0] == "jump mark-for-masquerade"
    assert ruleset.chains[external][1].startswith(  # everyone
        "meta l4proto tcp dnat ip to numgen random mod 2 map")


def test_services_changed_in_one_sync_are_diffed_by_key_and_delete_before_adding() -> None:
    """A Service re-created under another name with the same cluster IP, NodePort and
    endpoints, and two Services swapping NodePorts: in whichever order the sync takes them,
    nothing the new owner holds is deleted, and a key whose verdict changes is deleted before
    it is added (nft refuses to add a map key that is there)."""
    ports = [{"port": 80, "nodePort": 30080}]
    old = plan(svc("old", type="NodePort", ports=ports), eps(("10.88.0.2", "n0", READY),
                                                             name="old"))
    new = plan(svc("new", type="NodePort", ports=ports), eps(("10.88.0.2", "n0", READY),
                                                             name="new"))
    for changes in ([(old, proxier.EMPTY), (proxier.EMPTY, new)],
                    [(proxier.EMPTY, new), (old, proxier.EMPTY)]):
        lines = rules.diff_many(changes, CONFIG).splitlines()
        elements = [line for line in lines if "element" in line]
        assert [line.split("{")[0].split()[0::4] for line in elements] == [
            ["delete", "service-ips"], ["delete", "service-nodeports"],
            ["add", "service-ips"], ["add", "service-nodeports"]]  # cluster-ips, hairpin kept
        assert lines[-2:] == [line for line in lines if line.startswith("delete chain")]
    a = plan(svc("a", type="NodePort", ports=ports), eps(("10.88.0.2", "n0", READY), name="a"))
    b = plan(svc("b", "10.96.0.21", type="NodePort", ports=[{"port": 80, "nodePort": 30081}]),
             eps(("10.88.0.3", "n0", READY), name="b"))
    a2 = plan(svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30081}]),
              eps(("10.88.0.2", "n0", READY), name="a"))
    b2 = plan(svc("b", "10.96.0.21", type="NodePort", ports=ports),
              eps(("10.88.0.3", "n0", READY), name="b"))
    moved = rules.diff_many([(a, plan(svc("a", type="NodePort", ports=[
        {"port": 8080, "nodePort": 30080}]), eps(("10.88.0.2", "n0", READY), name="a")))],
        CONFIG)  # the same cluster IP, another port: only service-ips changes
    assert [line for line in moved.splitlines() if "element" in line] == [
        "delete element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 }",
        f"add element ip kube-proxy service-ips {{ 10.96.0.20 . tcp . 8080 : "
        f"{a.elements['service-ips']['10.96.0.20 . tcp . 80']} }}"]
    swap = rules.diff_many([(a, a2), (b, b2)], CONFIG).splitlines()
    assert swap == [
        "delete element ip kube-proxy service-nodeports { tcp . 30080, tcp . 30081 }",
        f"add element ip kube-proxy service-nodeports {{ tcp . 30080 : "
        f"{b2.elements['service-nodeports']['tcp . 30080']}, tcp . 30081 : "
        f"{a2.elements['service-nodeports']['tcp . 30081']} }}"]
