"""Containers get the Service variables a kubelet gives them (``pkg/kubelet/envvars``,
``getServiceEnvVarMap``): names and values exactly as the kubelet writes them, only Services
with a ClusterIP, the pod's namespace plus the master service, ``enableServiceLinks: false``,
the container's own variables winning, ``$(VAR)`` references to them (pure rendering)."""

from __future__ import annotations

import asyncio
from typing import Any

from k8sbridge.scheduler import podenv, serviceenv


def _svc(name: str, ip: str | None, *ports: dict[str, Any], namespace: str = "shop",
         **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": list(ports), **spec}
    if ip is not None:
        body["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


KUBERNETES = _svc("kubernetes", "10.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"},
                  namespace="default")


def test_a_service_gives_host_port_named_ports_and_docker_links() -> None:
    service = _svc("web-front", "10.96.0.20", {"port": 8080},
                   {"name": "dns-udp", "port": 53, "protocol": "UDP"})
    assert serviceenv.service_env(service) == [
        ("WEB_FRONT_SERVICE_HOST", "10.96.0.20"),
        ("WEB_FRONT_SERVICE_PORT", "8080"),
        ("WEB_FRONT_SERVICE_PORT_DNS_UDP", "53"),
        ("WEB_FRONT_PORT", "tcp://10.96.0.20:8080"),
        ("WEB_FRONT_PORT_8080_TCP", "tcp://10.96.0.20:8080"),
        ("WEB_FRONT_PORT_8080_TCP_PROTO", "tcp"),
        ("WEB_FRONT_PORT_8080_TCP_PORT", "8080"),
        ("WEB_FRONT_PORT_8080_TCP_ADDR", "10.96.0.20"),
        ("WEB_FRONT_PORT_53_UDP", "udp://10.96.0.20:53"),
        ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
        ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
        ("WEB_FRONT_PORT_53_UDP_ADDR", "10.96.0.20"),
    ]


def test_an_ipv6_cluster_ip_is_bracketed_in_urls_only() -> None:
    env = dict(serviceenv.service_env(_svc("v6", "fd00::a", {"name": "http", "port": 80})))
    assert env["V6_SERVICE_HOST"] == "fd00::a"
    assert env["V6_PORT"] == "tcp://[fd00::a]:80"
    assert env["V6_PORT_80_TCP_ADDR"] == "fd00::a"
    assert env["V6_SERVICE_PORT_HTTP"] == "80"


def test_headless_external_name_and_portless_services_give_nothing() -> None:
    services = [
        _svc("headless", "None", {"port": 80}),
        _svc("outside", None, {"port": 80}, type="ExternalName", externalName="example.com"),
        _svc("empty", "", {"port": 80}),
        _svc("portless", "10.96.0.9"),
    ]
    assert serviceenv.pod_service_env(services, namespace="shop", enable_links=True) == {}


def test_a_pod_sees_its_namespace_and_the_master_service() -> None:
    services = [KUBERNETES, _svc("web", "10.96.0.5", {"port": 80}),
                _svc("db", "10.96.0.6", {"port": 5432}, namespace="other"),
                _svc("other-default", "10.96.0.7", {"port": 1}, namespace="default")]
    env = serviceenv.pod_service_env(services, namespace="shop", enable_links=True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert env["WEB_SERVICE_HOST"] == "10.96.0.5"
    assert not [k for k in env if k.startswith(("DB_", "OTHER_DEFAULT_"))]
    # a pod of default sees default's Services
    env = serviceenv.pod_service_env(services, namespace="default", enable_links=True)
    assert env["OTHER_DEFAULT_SERVICE_HOST"] == "10.96.0.7"
    assert "WEB_SERVICE_HOST" not in env


def test_without_service_links_only_the_master_service_remains() -> None:
    services = [KUBERNETES, _svc("web", "10.96.0.5", {"port": 80})]
    env = serviceenv.pod_service_env(services, namespace="shop", enable_links=False)
    assert sorted(env) == sorted(k for k, _ in serviceenv.service_env(KUBERNETES))
    env = serviceenv.pod_service_env(services, namespace="default", enable_links=False)
    assert "WEB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_a_namespaces_own_kubernetes_service_wins_over_the_master_one() -> None:
    own = _svc("kubernetes", "10.96.0.99", {"port": 8443})
    for order in ([KUBERNETES, own], [own, KUBERNETES]):
        env = serviceenv.pod_service_env(order, namespace="shop", enable_links=True)
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.99"
        assert "KUBERNETES_SERVICE_PORT_HTTPS" not in env


def test_the_api_service_setting_stands_in_for_the_master_service() -> None:
    env = serviceenv.pod_service_env([KUBERNETES], namespace="shop", enable_links=False,
                                     api_host="10.88.255.254", api_port=6443)
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.88.255.254", "KUBERNETES_SERVICE_PORT": "6443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "6443", "KUBERNETES_PORT": "tcp://10.88.255.254:6443",
        "KUBERNETES_PORT_6443_TCP": "tcp://10.88.255.254:6443",
        "KUBERNETES_PORT_6443_TCP_PROTO": "tcp", "KUBERNETES_PORT_6443_TCP_PORT": "6443",
        "KUBERNETES_PORT_6443_TCP_ADDR": "10.88.255.254",
    }


async def _nothing(namespace: str, name: str) -> None:
    return None


def test_the_containers_own_variables_win_and_may_reference_service_variables() -> None:
    services = serviceenv.pod_service_env(
        [KUBERNETES, _svc("web", "10.96.0.5", {"port": 80})], namespace="shop",
        enable_links=True)
    container = {"name": "c", "env": [
        {"name": "WEB_SERVICE_PORT", "value": "9999"},
        {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/"},
        {"name": "API", "value": "$(KUBERNETES_PORT_443_TCP_ADDR)"},
        {"name": "MISSING", "value": "$(NOPE_SERVICE_HOST)"},
    ]}
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [container]}}
    env = asyncio.run(podenv.resolve_env(
        pod=pod, container=container, node_name="n1", host_ip="192.0.2.7",
        config_map=_nothing, secret=_nothing, services=services))
    values = dict(env)
    assert values["WEB_SERVICE_PORT"] == "9999"  # the container's own value
    assert values["WEB_SERVICE_HOST"] == "10.96.0.5"
    # an own variable set earlier wins over the Service's in expansion, as in the kubelet
    assert values["URL"] == "http://10.96.0.5:9999/"
    assert values["API"] == "10.96.0.1"
    assert values["MISSING"] == "$(NOPE_SERVICE_HOST)"
    assert [k for k, _ in env].count("WEB_SERVICE_PORT") == 1
    # the command's $(VAR) references see the final environment
    assert podenv.expand("$(WEB_PORT)", values) == "tcp://10.96.0.5:80"


def test_the_book_follows_the_watch_and_a_listing_never_undoes_a_newer_event() -> None:
    book = serviceenv.ServiceBook()
    assert [book.synced] == [False]
    web = _svc("web", "10.96.0.5", {"port": 80})
    book.observe(None, web)
    book.observe("ADDED", _svc("db", "10.96.0.6", {"port": 5432}))
    assert len(book) == 2
    book.observe("DELETED", web)
    assert [s["metadata"]["name"] for s in book.snapshot()] == ["db"]
    # a listing in flight: a Service added and one deleted meanwhile survive it
    book.begin_listing()
    book.observe("ADDED", _svc("new", "10.96.0.8", {"port": 1}))
    book.observe("DELETED", _svc("db", "10.96.0.6", {"port": 5432}))
    book.replace([_svc("db", "10.96.0.6", {"port": 5432}), web])
    assert book.synced
    assert sorted(s["metadata"]["name"] for s in book.snapshot()) == ["new", "web"]
    book.observe("MODIFIED", {"metadata": {"namespace": "shop"}})  # no name: ignored
    assert len(book) == 2
