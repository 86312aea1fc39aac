"""Task groups whose executor names a CNI network get a network namespace of their own from the
agent's ``network/cni`` isolator, run by the reference plugins (``bridge`` + ``host-local``;
the agent brings each namespace's ``lo`` up) inside the embedded cluster network's
namespace: two groups listen on one port with different IPs, reachable from that namespace
and from a pod on another agent, HTTP checks dial the pod IP inside its namespace, a
network's ``dns`` section is its containers' resolv.conf, and nothing is left after the
tasks end. Driven through the kernel's scheduler API as a framework would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main, network
from k8sbridge.kernel.agent import cni, filesystems
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _agent(tmp_path: Path, index: int, cluster: network.ClusterNetwork, **extra: Any) -> Any:
    flags = cluster.agent_flags(index, work_dir=tmp_path / f"agent{index}")
    return agent_config(tmp_path, index, isolation=filesystems.FULL_ISOLATION,
                        **{**flags, **extra})


def _in_cluster(cluster: network.ClusterNetwork, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", cluster.name, *argv], capture_output=True,
                          text=True, timeout=20, check=False)
    return done.stdout + done.stderr


def _group(st: wire.Stream, agent_id: str, name: str, tasks: list[dict[str, Any]], *,
           network_name: str | None = "k8sbridge", hostname: str | None = None
           ) -> dict[str, Any]:
    container: dict[str, Any] = {"type": "MESOS"}
    if network_name:
        container["network_infos"] = [{"name": network_name, "labels": {"labels": [
            {"key": "pod", "value": name}]}}]
    if hostname:
        container["hostname"] = hostname
    executor = {"type": "DEFAULT", "executor_id": {"value": name},
                "framework_id": {"value": st.framework_id}, "container": container,
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                              {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}]}
    return {"type": "LAUNCH_GROUP", "launch_group": {
        "executor": executor, "task_group": {"tasks": tasks}}}


class Updates:
    """Every task's updates, acknowledged as they come."""

    def __init__(self, st: wire.Stream) -> None:
        self.st = st
        self.seen: dict[str, list[dict[str, Any]]] = {}

    async def until(self, task_id: str, state: str, *, timeout: float = 30.0
                    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for status in self.seen.get(task_id, []):
                    if status["state"] == state:
                        return status
                event = await self.st.next_event(timeout=timeout)
                if event["type"] != "UPDATE":
                    print("EVENT", event)
                    continue
                status = event["update"]["status"]
                self.seen.setdefault(status["task_id"]["value"], []).append(status)
                if "uuid" in status:
                    await wire.ack(self.st, status)


async def _accept(st: wire.Stream, offer: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]], "operations": ops}})
    assert code == 202, text


def _ip(status: dict[str, Any]) -> str:
    [info] = status["container_status"]["network_infos"]
    [address] = info["ip_addresses"]
    return str(address["ip_address"])


SERVE = ("mkdir -p www && hostname > www/index.html && cat /etc/hosts > hosts && "
         "exec busybox httpd -f -p 8080 -h www")


def _isolator_roots(tmp_path: Path) -> list[str]:
    """Where this test's agents keep their containers' namespaces (either place): other tests
    running at the same time (pytest-xdist) have agents and namespaces of their own."""
    work_dirs = [w.resolve() for w in sorted(tmp_path.glob("agent*"))]
    return [str(cni.root_dir(work_dir=w, persist=p)) + "/" for w in work_dirs
            for p in (False, True)]


def _leftovers(tmp_path: Path, cluster: network.ClusterNetwork, index: int = 0) -> list[str]:
    """Namespaces, veths and IPAM reservations the agent's containers left."""
    out: list[str] = []
    roots = _isolator_roots(tmp_path)
    with open("/proc/self/mountinfo") as f:
        out += [line for line in f if "nsfs" in line and any(r in line for r in roots)]
    links = _in_cluster(cluster, "ip", "-o", "link", "show", "type", "veth")
    out += [line for line in links.splitlines() if line.strip()]
    ipam = cluster.ipam_dir(work_dir=tmp_path / f"agent{index}") / "k8sbridge"
    out += [p.name for p in ipam.glob("*") if p.name not in ("lock",)
            and not p.name.startswith("last_reserved_ip")]
    return out


async def test_two_groups_on_one_port_get_their_own_ips_and_leave_nothing(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    async with main.running_kernel(master=master_config(),
                                   agents=[_agent(tmp_path, 0, cluster)]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        check = {"type": "HTTP", "http": {"port": 8080, "path": "/"},
                 "delay_seconds": 0.2, "interval_seconds": 0.5, "timeout_seconds": 2}
        ops = [_group(st, agent_id, name, [wire.command_task(
            f"{name}-web", agent_id, SERVE, check=check)], hostname=name)
            for name in ("pod-a", "pod-b")]
        await _accept(st, offer, ops)
        updates = Updates(st)
        running = {n: await updates.until(f"{n}-web", "TASK_RUNNING") for n in ("pod-a", "pod-b")}
        ips = {n: _ip(s) for n, s in running.items()}
        assert ips["pod-a"] != ips["pod-b"]
        assert all(ip.startswith("10.88.0.") for ip in ips.values()), ips
        label = running["pod-a"]["container_status"]["network_infos"][0]
        assert label["name"] == "k8sbridge" and label["labels"]["labels"][0]["value"] == "pod-a"
        for name in ("pod-a", "pod-b"):
            got = ""
            for _ in range(50):
                got = _in_cluster(cluster, "timeout", "5", "busybox", "wget", "-qO-",
                                  f"http://{ips[name]}:8080/")
                if got.strip() == name:
                    break
                await asyncio.sleep(0.1)
            assert got.strip() == name  # its own UTS hostname, served on its own IP
        # The check ran in the pod's namespace, on its IP.
        for name in ("pod-a", "pod-b"):
            for _ in range(100):
                if any(s.get("check_status", {}).get("http", {}).get("status_code") == 200
                       for s in updates.seen.get(f"{name}-web", [])):
                    break
                try:
                    await updates.until(f"{name}-web", "__none__", timeout=0.5)
                except TimeoutError:
                    pass
            assert any(s.get("check_status", {}).get("http", {}).get("status_code") == 200
                       for s in updates.seen[f"{name}-web"]), updates.seen[f"{name}-web"]
        # The host's namespace has none of it: no pod address, no route to the pod range.
        host_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert "10.88." not in host_addrs
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
        assert "10.88." not in routes
        [sandbox] = tmp_path.glob("agent0/slaves/*/frameworks/*/executors/pod-a/runs/latest/"
                                  "tasks/pod-a-web")
        assert (sandbox / "hosts").read_text() == (
            f"127.0.0.1 localhost\n{ips['pod-a']} pod-a\n")
        # Each pod namespace's lo is up (the agent's ioctl; ``ip`` shows the flag).
        namespaces = sorted(cni.root_dir(work_dir=(tmp_path / "agent0").resolve(),
                                         persist=False).glob("*/ns"))
        assert len(namespaces) == 2
        for ns in namespaces:
            lo = subprocess.run(["nsenter", f"--net={ns}", "ip", "-o", "link", "show", "lo"],
                                capture_output=True, text=True, timeout=20, check=True).stdout
            assert ",UP," in lo, lo
        assert _leftovers(tmp_path, cluster)  # while running: its veths and reservations
        for name in ("pod-a", "pod-b"):
            code, text = await st.call({"type": "KILL", "kill": {
                "task_id": {"value": f"{name}-web"}, "agent_id": {"value": agent_id}}})
            assert code == 202, text
        for name in ("pod-a", "pod-b"):
            await updates.until(f"{name}-web", "TASK_KILLED")
        for _ in range(100):
            if not _leftovers(tmp_path, cluster):
                break
            await asyncio.sleep(0.1)
        assert _leftovers(tmp_path, cluster) == []
        await st.close()
    assert not list((tmp_path / "agent0").glob("isolators/network/cni/*"))


async def test_a_pod_reaches_a_pod_on_another_agent_by_its_ip(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    agents = [_agent(tmp_path, i, cluster) for i in (0, 1)]
    async with main.running_kernel(master=master_config(), agents=agents) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offers: dict[str, dict[str, Any]] = {}
        while len(offers) < 2:
            for offer in (await st.wait_for("OFFERS"))["offers"]["offers"]:
                offers[offer["agent_id"]["value"]] = offer
        (a0, o0), (a1, o1) = sorted(offers.items(), key=lambda kv: kv[1]["hostname"])
        await _accept(st, o0, [_group(st, a0, "server", [
            wire.command_task("server-web", a0, SERVE)], hostname="server")])
        updates = Updates(st)
        server_ip = _ip(await updates.until("server-web", "TASK_RUNNING"))
        fetch = (f"for i in $(seq 50); do timeout 5 busybox wget -qO- http://{server_ip}:8080/ "
                 "> got && exit 0; sleep 0.1; done; exit 1")
        await _accept(st, o1, [_group(st, a1, "client", [
            wire.command_task("client-get", a1, fetch)])])
        done = await updates.until("client-get", "TASK_FINISHED", timeout=40)
        assert _ip(done) != server_ip
        # the agent the client ran on (both agents may share a hostname: the sort above does
        # not say which work directory is whose)
        [got] = tmp_path.glob("agent*/slaves/*/frameworks/*/executors/client/runs/latest/"
                              "tasks/client-get/got")
        assert got.read_text().strip() == "server"
        await st.close()
    assert _leftovers(tmp_path, cluster, 0) == [] and _leftovers(tmp_path, cluster, 1) == []


async def test_bad_networks_fail_the_task_with_the_reason_and_host_tasks_still_run(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in ("bridge", "host-local"):
        (plugins / name).symlink_to(f"/usr/lib/cni/{name}")
    (plugins / "hang").write_text("#!/bin/sh\nexec sleep 60\n")
    (plugins / "hang").chmod(0o755)
    agent = _agent(tmp_path, 0, cluster, network_cni_plugins_dir=str(plugins),
                   network_cni_plugin_timeout_seconds=1.0)
    conf = Path(agent.network_cni_config_dir)
    (conf / "hang.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "hang",
                                                "type": "hang"}))
    (conf / "broken.conf").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "broken", "type": "bridge", "bridge": "k8sbrx",
        "ipam": {"type": "host-local", "subnet": "not-a-subnet"}}))
    async with main.running_kernel(master=master_config(), agents=[agent]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [
            _group(st, agent_id, g, [wire.command_task(f"{g}-t", agent_id, "true")],
                   network_name=g) for g in ("nope", "hang", "broken")] + [
            _group(st, agent_id, "host", [wire.command_task("host-t", agent_id, "true")],
                   network_name=None)])
        updates = Updates(st)
        nope = await updates.until("nope-t", "TASK_FAILED")
        assert nope["message"] == "Failed to launch container: Unknown CNI network 'nope'"
        assert nope["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        hang = await updates.until("hang-t", "TASK_FAILED")
        assert "did not ADD container" in hang["message"] and "within 1 seconds" in \
            hang["message"], hang
        broken = await updates.until("broken-t", "TASK_FAILED")
        assert "failed to attach container" in broken["message"], broken
        assert "not-a-subnet" in broken["message"], broken
        await updates.until("host-t", "TASK_FINISHED")
        await st.close()
    assert _leftovers(tmp_path, cluster) == []
    assert not [p for r in _isolator_roots(tmp_path) for p in Path(r).glob("*")]


async def test_missing_plugins_offer_no_network_and_host_tasks_still_run(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    agent = _agent(tmp_path, 0, cluster, network_cni_plugins_dir=str(empty))
    async with main.running_kernel(master=master_config(), agents=[agent]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [
            _group(st, agent_id, "pod", [wire.command_task("pod-t", agent_id, "true")]),
            _group(st, agent_id, "host", [wire.command_task("host-t", agent_id, "true")],
                   network_name=None)])
        updates = Updates(st)
        failed = await updates.until("pod-t", "TASK_FAILED")
        assert failed["message"] == "Failed to launch container: Unknown CNI network " \
            "'k8sbridge'"
        await updates.until("host-t", "TASK_FINISHED")
        await st.close()
    warnings = [r.getMessage() for r in caplog.records if "are not in" in r.getMessage()]
    assert len(warnings) == 1 and "containernetworking-plugins" in warnings[0]


async def test_a_restarted_agent_keeps_the_addresses_of_surviving_pods(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    config = _agent(tmp_path, 0, cluster)
    async with main.running_kernel(master=master_config()) as kernel:
        await kernel.add_agent(config, _keep_tasks=True)
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(checkpoint=True, failover_timeout=3600))
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [_group(st, agent_id, "kept", [
            wire.command_task("kept-web", agent_id, SERVE)], hostname="kept")])
        updates = Updates(st)
        ip = _ip(await updates.until("kept-web", "TASK_RUNNING"))
        # serving before the restart (RUNNING comes before httpd listens: on a loaded machine
        # the wget after the restart found nothing listening yet)
        for _ in range(100):
            if _in_cluster(cluster, "timeout", "5", "busybox", "wget", "-qO-",
                           f"http://{ip}:8080/").strip() == "kept":
                break
            await asyncio.sleep(0.2)
        await kernel.stop_agent(0)
        agent = await kernel.add_agent(config, _keep_tasks=True)
        [container] = agent.live_containers()
        assert _ip({"container_status": agent.container_status(container)}) == ip
        got = _in_cluster(cluster, "timeout", "5", "busybox", "wget", "-qO-",
                          f"http://{ip}:8080/")
        assert got.strip() == "kept"
        # Its reservation survived: a new pod gets another address.
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        await _accept(st, offer, [_group(st, agent_id, "new", [
            wire.command_task("new-t", agent_id, "sleep 30")])])
        assert _ip(await updates.until("new-t", "TASK_RUNNING")) != ip
        for task_id in ("kept-web", "new-t"):
            code, text = await st.call({"type": "KILL", "kill": {
                "task_id": {"value": task_id}, "agent_id": {"value": agent_id}}})
            assert code == 202, text
            await updates.until(task_id, "TASK_KILLED")
        for _ in range(100):
            if not _leftovers(tmp_path, cluster):
                break
            await asyncio.sleep(0.1)
        assert _leftovers(tmp_path, cluster) == []
        await st.close()


async def test_an_exhausted_pod_range_fails_the_task_with_the_plugins_message(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    # a /30 per agent: one address for pods (network, gateway and broadcast are taken)
    small = network.ClusterNetwork(agent_prefix=30)
    small.create()
    try:
        async with main.running_kernel(master=master_config(),
                                       agents=[_agent(tmp_path, 0, small)]) as kernel:
            st = wire.Stream(session, kernel.master_url)
            await st.subscribe()
            offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
            agent_id = offer["agent_id"]["value"]
            await _accept(st, offer, [_group(st, agent_id, name, [wire.command_task(
                f"{name}-t", agent_id, "sleep 30")]) for name in ("first", "second")])
            updates = Updates(st)

            async def outcome(task: str) -> dict[str, Any]:
                async with asyncio.timeout(30):
                    while True:
                        for status in updates.seen.get(task, []):
                            if status["state"] in ("TASK_RUNNING", "TASK_FAILED"):
                                return status
                        with contextlib.suppress(TimeoutError):
                            await updates.until(task, "TASK_RUNNING", timeout=0.5)

            outcomes = {name: await outcome(f"{name}-t") for name in ("first", "second")}
            states = sorted(s["state"] for s in outcomes.values())
            assert states == ["TASK_FAILED", "TASK_RUNNING"], outcomes
            [failed] = [s for s in outcomes.values() if s["state"] == "TASK_FAILED"]
            assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
            assert "no IP addresses available" in failed["message"], failed
            await st.close()
        assert _leftovers(tmp_path, small) == []
    finally:
        small.remove()


def _view_makers(tmp_path: Path) -> list[int]:
    """The view makers of this test's agents: children of the container daemons whose log is
    under ``tmp_path`` (the daemons are started detached, so not the test's descendants)."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes()
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    daemons = {p for p, c in cmdlines.items() if b"--daemon" in c and str(tmp_path).encode() in c}
    return [p for p, c in cmdlines.items()
            if b"k8sbridge.kernel.agent.viewmaker" in c and parents.get(p) in daemons]


async def test_views_are_made_without_copying_other_pods_network_namespaces(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    """Each pod's namespace is a bind mount in the host's mount namespace; views are copied
    from the view maker's namespace, which leaves them out, so making a view does not cost
    more with every pod already running (a copy of N mounts under the kernel's mount lock)."""
    async with main.running_kernel(master=master_config(),
                                   agents=[_agent(tmp_path, 0, cluster)]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        names = [f"pod-{i}" for i in range(4)]
        await _accept(st, offer, [_group(st, agent_id, name, [wire.command_task(
            f"{name}-sleep", agent_id, "exec sleep 60")]) for name in names])
        updates = Updates(st)
        for name in names:
            await updates.until(f"{name}-sleep", "TASK_RUNNING")
        roots = _isolator_roots(tmp_path)
        with open("/proc/self/mountinfo") as f:
            host = [line for line in f if "nsfs" in line and any(r in line for r in roots)]
        assert len(host) == len(names)  # the host's namespace holds each pod's namespace
        [maker] = _view_makers(tmp_path)
        maker_mounts = Path(f"/proc/{maker}/mountinfo").read_text().splitlines()
        assert [line for line in maker_mounts if " - nsfs " in line] == []
        with open("/proc/self/mountinfo") as f:
            assert len(maker_mounts) < len(f.readlines())
        await st.close()


async def test_a_network_with_dns_settings_gives_its_containers_that_resolv_conf(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """The ``bridge`` plugin returns the configuration's ``dns`` section, and the isolator
    writes the container's resolv.conf from it (not the host's), as Mesos does."""
    dns = {"nameservers": ["10.96.0.10"], "options": ["ndots:5"],
           "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]}
    named = network.ClusterNetwork(dns=dns)
    named.create()
    try:
        async with main.running_kernel(master=master_config(),
                                       agents=[_agent(tmp_path, 0, named)]) as kernel:
            st = wire.Stream(session, kernel.master_url)
            await st.subscribe()
            offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
            agent_id = offer["agent_id"]["value"]
            await _accept(st, offer, [_group(st, agent_id, "dns", [wire.command_task(
                "dns-t", agent_id, "cat /etc/resolv.conf > resolv")])])
            await Updates(st).until("dns-t", "TASK_FINISHED")
            [resolv] = tmp_path.glob("agent0/slaves/*/frameworks/*/executors/dns/runs/latest/"
                                     "tasks/dns-t/resolv")
            assert resolv.read_text() == (
                "nameserver 10.96.0.10\n"
                "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                "options ndots:5\n")
            await st.close()
        assert _leftovers(tmp_path, named) == []
    finally:
        named.remove()
