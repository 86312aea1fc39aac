"""The proxy programs the real ``nft`` in a network namespace this test makes: the table
follows Services and EndpointSlices change by change, is rebuilt whole after someone changed it
behind the proxy's back, and is removed on stop; traffic through it reaches a ClusterIP's and
a NodePort's endpoints (also on the client's own bridge), sticks with ClientIP affinity, and a
Service without endpoints refuses at once; a pod reaching itself through its Service is
masqueraded by the hairpin set. Commits go through libnftables (and, in one test, ``nft -f``)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.proxy import nft, proxier, rules
from tests.proxy.test_planning_service_rules import READY, eps, svc


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv}: {done.stderr}")
    return done.stdout


TOOLS: list[nft.Nft] = []  # made by make(), closed when the test's namespace goes


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"k8sbridge-proxytest-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        while TOOLS:
            TOOLS.pop().close()
        sh("ip", "netns", "delete", name, check=False)


def listing(netns: str) -> str:
    return sh("ip", "netns", "exec", netns, "nft", "list", "table", "ip", "kube-proxy")


def make(netns: str, library: str = nft.DEFAULT_LIBRARY, **config: Any) -> proxier.Proxier:
    TOOLS.append(nft.Nft(netns=netns, library=library))
    return proxier.Proxier(config=rules.ProxyConfig(**config), tool=TOOLS[-1])


@pytest.mark.parametrize("library", [nft.DEFAULT_LIBRARY, ""], ids=["libnftables", "nft-f"])
async def test_the_table_follows_changes_and_is_rebuilt_after_outside_edits(
        netns: str, library: str) -> None:
    proxy = make(netns, library, nodes=(rules.Node("n0", "10.88.0.0/24"),))
    proxy.replace_services([svc(sessionAffinity="ClientIP")])
    proxy.replace_slices([eps(("10.88.0.2", "n0", READY))])
    await proxy.sync()
    table = listing(netns)
    assert "10.96.0.20 . tcp . 80 : goto service-" in table
    assert "dnat to 10.88.0.2:8080" in table and "flags dynamic,timeout" in table
    proxy.update_slice("MODIFIED", eps(("10.88.0.2", "n0", READY), ("10.88.0.3", "n0", READY)))
    await proxy.sync()
    table = listing(netns)
    assert "numgen random mod 2 vmap" in table and "dnat to 10.88.0.3:8080" in table
    proxy.update_service("ADDED", svc("empty", "10.96.0.21"))
    proxy.update_service("DELETED", svc())
    await proxy.sync()
    table = listing(netns)
    assert "10.96.0.21 . tcp . 80 : goto reject-chain" in table
    assert "10.96.0.20" not in table and "chain endpoint-" not in table
    assert "affinity-" not in table
    sh("ip", "netns", "exec", netns, "nft", "delete", "table", "ip", "kube-proxy")
    proxy.update_service("ADDED", svc())
    with pytest.raises(nft.NftError):
        await proxy.sync()  # the incremental change no longer applies
    await proxy.sync()  # so the whole table is written again
    table = listing(netns)
    assert "10.96.0.21 . tcp . 80 : goto reject-chain" in table
    assert "dnat ip to numgen random mod 2 map { 0 : 10.88.0.2 . 8080, 1 : 10.88.0.3 . 8080 }" \
        in table


async def test_a_missing_namespace_or_library_is_a_clear_error(netns: str) -> None:
    TOOLS.extend([nft.Nft(netns="/nonexistent/netns"),
                  nft.Nft(netns=netns, library="libnosuch.so.1"), nft.Nft(netns=netns)])
    missing, unloadable, tool = TOOLS
    with pytest.raises(nft.NftError, match="cannot open the namespace /nonexistent"):
        await missing.apply("add table ip k8sbridge-test\n")
    with pytest.raises(nft.NftError, match="cannot load libnosuch.so.1"):
        await unloadable.apply("add table ip t\n")
    with pytest.raises(nft.NftError, match="refused the transaction: Error: Could not process"):
        await tool.apply("add table ip t\nadd rule ip t no-such-chain accept\n")
    await tool.apply("add table ip t\nadd chain ip t c\nadd rule ip t c accept\n")
    assert "accept" in await tool.list_table("t")  # the same context goes on working


async def test_run_programs_once_listed_and_removes_the_table_on_stop(netns: str) -> None:
    proxy = make(netns)
    stop, ready, listed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    watch = asyncio.create_task(asyncio.Event().wait())  # a watch that never ends
    task = asyncio.create_task(proxy.run(watches=[watch], listed=listed, stop=stop, ready=ready))
    proxy.replace_services([svc()])
    listed.set()
    await asyncio.wait_for(ready.wait(), 10)
    assert "10.96.0.20 . tcp . 80 : goto reject-chain" in listing(netns)
    proxy.update_slice("ADDED", eps(("10.88.0.2", "", READY)))
    for _ in range(100):
        if "{ 0 : 10.88.0.2 . 8080 }" in listing(netns):
            break
        await asyncio.sleep(0.05)
    assert "{ 0 : 10.88.0.2 . 8080 }" in listing(netns)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert watch.cancelled()
    assert "kube-proxy" not in sh("ip", "netns", "exec", netns, "nft", "list", "tables")


class Pods:
    """A bridge with gateway 10.99.0.1 in the cluster namespace and 'pods' (namespaces of
    their own, a veth each in hairpin mode, default route through the gateway), as the CNI
    bridge plugin makes them for the embedded cluster network, with br_netfilter's
    bridge-nf-call-iptables off."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.names: list[str] = []
        sh("ip", "-n", cluster, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", cluster, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # bridged frames skip the namespace's IP hooks, as without br_netfilter (this host
        # has it, and a new namespace starts with it on)
        sh("ip", "netns", "exec", cluster, "sysctl", "-q", "-w",
           "net.bridge.bridge-nf-call-iptables=0")
        sh("ip", "-n", cluster, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", cluster, "addr", "add", "10.99.0.1/24", "dev", "br0")
        sh("ip", "-n", cluster, "link", "set", "br0", "up")

    def add(self, index: int) -> str:
        name = f"{self.cluster}-p{index}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", self.cluster, "link", "add", f"veth{index}", "type", "veth", "peer",
           "name", "eth0", "netns", name)
        sh("ip", "-n", self.cluster, "link", "set", f"veth{index}", "master", "br0", "up")
        # the bridge plugin's hairpinMode: a pod's packets to its own Service come back out
        # of the port they came in by
        sh("ip", "-n", self.cluster, "link", "set", f"veth{index}", "type", "bridge_slave",
           "hairpin", "on")
        sh("ip", "-n", name, "addr", "add", f"10.99.0.{index}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.99.0.1")
        return name

    def remove(self) -> None:
        for name in self.names:
            sh("ip", "netns", "delete", name, check=False)


def fetch(pod: str, address: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", pod, "busybox", "sh", "-c",
         f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {address} {port}"],
        capture_output=True, text=True, timeout=20, check=False)


def answers(pod: str, address: str, port: int) -> str:
    done = fetch(pod, address, port)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def pods(netns: str, tmp_path: Path) -> Iterator[tuple[Pods, list[str]]]:
    net = Pods(netns)
    servers = []
    try:
        client = net.add(2)
        for index in (3, 4):
            pod = net.add(index)
            www = tmp_path / f"www{index}"
            www.mkdir()
            (www / "index.html").write_text(f"pod-{index}\n")
            servers.append(subprocess.Popen(["ip", "netns", "exec", pod, "busybox", "httpd",
                                             "-f", "-p", "8080", "-h", str(www)]))
        yield net, [client]
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        net.remove()


async def test_traffic_reaches_endpoints_on_the_clients_own_bridge(
        netns: str, pods: tuple[Pods, list[str]]) -> None:
    _, [client] = pods
    proxy = make(netns, nodes=(rules.Node("n0", "10.99.0.0/24"),), masquerade_all=True)
    web = svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    proxy.replace_services([web, svc("empty", "10.96.0.21")])
    proxy.replace_slices([eps(("10.99.0.3", "n0", READY), ("10.99.0.4", "n0", READY))])
    await proxy.sync()
    seen = {await asyncio.to_thread(answers, client, "10.96.0.20", 80) for _ in range(16)}
    assert seen == {"pod-3", "pod-4"}  # random balancing, both on the client's bridge
    assert await asyncio.to_thread(answers, client, "10.99.0.1", 30080) in seen  # NodePort
    refused = await asyncio.to_thread(fetch, client, "10.96.0.21", 80)
    # rejected, not dropped: nc says "refused" only for a reset or port unreachable (a drop is
    # a timeout); no wall-clock bound, which a loaded machine's process start-up exceeds
    assert refused.returncode != 0 and "refused" in refused.stderr
    proxy.update_service("MODIFIED", svc(sessionAffinity="ClientIP"))
    await proxy.sync()
    stuck = {await asyncio.to_thread(answers, client, "10.96.0.20", 80) for _ in range(8)}
    assert len(stuck) == 1
    hairpin = await asyncio.to_thread(answers, pods[0].names[1], "10.96.0.20", 80)
    assert hairpin in seen  # pod-3 reaching its own Service


async def test_without_masquerading_a_same_bridge_reply_misses_conntrack(
        netns: str, pods: tuple[Pods, list[str]]) -> None:
    _, [client] = pods
    proxy = make(netns, nodes=(rules.Node("n0", "10.99.0.0/24"),))
    proxy.replace_services([svc()])
    proxy.replace_slices([eps(("10.99.0.4", "n0", READY))])
    await proxy.sync()
    done = await asyncio.to_thread(fetch, client, "10.96.0.20", 80)
    assert done.returncode != 0 or not done.stdout  # the reply came from 10.99.0.4 directly


async def test_a_pod_reaching_itself_through_its_service_is_masqueraded_by_the_set(
        netns: str, pods: tuple[Pods, list[str]]) -> None:
    net, _ = pods
    proxy = make(netns, nodes=(rules.Node("n0", "10.99.0.0/24"),))  # no masquerade_all
    proxy.replace_services([svc()])
    proxy.replace_slices([eps(("10.99.0.3", "n0", READY))])
    await proxy.sync()
    assert "10.96.0.20 . 10.99.0.3 . 10.99.0.3" in listing(netns)
    assert await asyncio.to_thread(answers, net.names[1], "10.96.0.20", 80) == "pod-3"
    sh("ip", "netns", "exec", netns, "nft", "flush", "set", "ip", "kube-proxy",
       "hairpin-endpoints")
    done = await asyncio.to_thread(fetch, net.names[1], "10.96.0.20", 80)
    assert done.returncode != 0 or not done.stdout  # the set was what made it work


async def test_an_endpoint_slice_of_a_thousand_endpoints_is_one_balancing_rule(
        netns: str) -> None:
    proxy = make(netns)
    proxy.replace_services([svc(sessionAffinity="ClientIP")])
    proxy.replace_slices([eps(*((f"10.88.{i // 250}.{i % 250 + 2}", "n0", READY)
                                for i in range(1000)))])
    await proxy.sync()
    table = listing(netns)
    assert "numgen random mod 1000 vmap" in table
    assert table.count("flags dynamic,timeout") == 1000
    proxy.update_slice("MODIFIED", eps(("10.88.0.2", "n0", READY)))
    await proxy.sync()
    table = listing(netns)
    assert "numgen random mod 1 vmap" in table and "10.88.3.251" not in table
    proxy.update_service("MODIFIED", svc())  # no affinity: one dnat rule, no chains
    proxy.update_slice("MODIFIED", eps(*((f"10.88.{i // 250}.{i % 250 + 2}", "n0", READY)
                                         for i in range(1000))))
    await proxy.sync()
    table = listing(netns)
    assert "dnat ip to numgen random mod 1000 map" in table and "chain endpoint-" not in table
    assert "10.96.0.20 . 10.88.3.251 . 10.88.3.251" in table


def has_element(netns: str, name: str, key: str) -> bool:
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", "get", "element", "ip",
                           "kube-proxy", name, f"{{ {key} }}"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0


async def test_services_re_created_in_one_sync_keep_their_addresses_ports_and_hairpin(
        netns: str, pods: tuple[Pods, list[str]]) -> None:
    """Services deleted and created again under another name with the same cluster IP (and
    NodePort) in one sync: whichever of the two a sync takes first, the new one keeps the
    maps' and sets' elements they share. Eight of them, so that both orders occur."""
    net, _ = pods
    proxy = make(netns, nodes=(rules.Node("n0", "10.99.0.0/24"),))  # hairpin by the set
    olds = [svc(f"old{i}", f"10.96.0.{20 + i}", type="NodePort",
                ports=[{"port": 8080, "nodePort": 30080 + i}]) for i in range(8)]
    proxy.replace_services(olds)
    proxy.replace_slices([eps(("10.99.0.3", "n0", READY), name=f"old{i}") for i in range(8)])
    await proxy.sync()
    for i in range(8):
        proxy.update_service("DELETED", olds[i])
        proxy.update_slice("DELETED", eps(name=f"old{i}"))
        # even: the same port and NodePort again; odd: another port, no NodePort
        ports = [{"port": 8080, "nodePort": 30080 + i}] if i % 2 == 0 else [{"port": 8081}]
        proxy.update_service("ADDED", svc(f"new{i}", f"10.96.0.{20 + i}", type="NodePort",
                                          ports=ports))
        proxy.update_slice("ADDED", eps(("10.99.0.3", "n0", READY), name=f"new{i}"))
    await proxy.sync()
    table = listing(netns)
    assert "/old" not in table
    for i in range(8):
        ip = f"10.96.0.{20 + i}"
        assert has_element(netns, "cluster-ips", ip), table
        assert has_element(netns, "hairpin-endpoints", f"{ip} . 10.99.0.3 . 10.99.0.3"), table
        port = 8080 if i % 2 == 0 else 8081
        assert has_element(netns, "service-ips", f"{ip} . tcp . {port}"), table
    assert has_element(netns, "service-nodeports", "tcp . 30082")
    assert not has_element(netns, "service-nodeports", "tcp . 30081")
    for i in (0, 1):  # pod-3 reaching itself through the new Service (port 8081: unproxied)
        ip = f"10.96.0.{20 + i}"
        assert await asyncio.to_thread(answers, net.names[1], ip, 8080 + i % 2) == "pod-3"
        refused = await asyncio.to_thread(fetch, net.names[1], ip, 9999)
        assert refused.returncode != 0 and "refused" in refused.stderr  # by cluster-ips


async def test_swapped_node_ports_and_changed_ports_apply_in_one_sync(
        netns: str, pods: tuple[Pods, list[str]]) -> None:
    _, [client] = pods
    proxy = make(netns, nodes=(rules.Node("n0", "10.99.0.0/24"),), masquerade_all=True)
    a = svc("a", "10.96.0.20", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    b = svc("b", "10.96.0.21", type="NodePort", ports=[{"port": 80, "nodePort": 30081}])
    proxy.replace_services([a, b])
    proxy.replace_slices([eps(("10.99.0.3", "n0", READY), name="a"),
                          eps(("10.99.0.4", "n0", READY), name="b")])
    await proxy.sync()
    assert await asyncio.to_thread(answers, client, "10.99.0.1", 30080) == "pod-3"
    proxy.update_service("MODIFIED", svc("a", "10.96.0.20", type="NodePort",
                                         ports=[{"port": 8080, "nodePort": 30081}]))
    proxy.update_service("MODIFIED", svc("b", "10.96.0.21", type="NodePort",
                                         ports=[{"port": 80, "nodePort": 30080}]))
    await proxy.sync()
    assert await asyncio.to_thread(answers, client, "10.99.0.1", 30080) == "pod-4"
    assert await asyncio.to_thread(answers, client, "10.99.0.1", 30081) == "pod-3"
    assert await asyncio.to_thread(answers, client, "10.96.0.20", 8080) == "pod-3"
    refused = await asyncio.to_thread(fetch, client, "10.96.0.20", 80)
    assert refused.returncode != 0 and "refused" in refused.stderr  # the port it no longer has
