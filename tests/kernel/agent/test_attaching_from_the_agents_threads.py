"""The ``network/cni`` isolator makes a container's namespace in a worker thread and spawns the
plugins from a thread that joins the plugins' namespace for the spawn: the containers get
namespaces of their own with ``lo`` up and their address, the veths' host ends are in the
cluster namespace only, every thread of the agent is back in its own namespace afterwards (none
keeps the cluster's alive once it is deleted), and a cancelled attach kills its plugin and
leaves nothing; plugins run with ``GOMAXPROCS=1``; ``lo`` is brought up by the agent itself,
with no program. Driven on the isolator itself, with the reference plugins."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni


def _isolator(cluster: network.ClusterNetwork, tmp_path: Path, *, timeout: float = 20
              ) -> cni.Isolator:
    flags = cluster.agent_flags(0, work_dir=tmp_path / "agent")
    return cni.Isolator.load(config_dir=flags["network_cni_config_dir"],
                             plugins_dir=flags["network_cni_plugins_dir"],
                             root=tmp_path / "cni",
                             plugins_netns=flags["network_cni_plugins_netns"], timeout=timeout)


def _in(netns: str, *argv: str) -> str:
    done = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True,
                          timeout=20, check=False)
    return done.stdout + done.stderr


def _threads_netns() -> set[int]:
    return {os.stat(f"/proc/self/task/{t}/ns/net").st_ino for t in os.listdir("/proc/self/task")}


async def test_containers_get_namespaces_of_their_own_and_every_thread_goes_home(
        cluster: network.ClusterNetwork, tmp_path: Path) -> None:
    iso = _isolator(cluster, tmp_path)
    home = os.stat("/proc/self/ns/net").st_ino
    cluster_ino = os.stat(cluster.netns_path).st_ino
    net = iso.networks[cluster.network_name]
    try:
        got = await asyncio.gather(*(
            iso.attach(f"c{i}", networks=[net], network_infos=[{"name": net.name}],
                       hostname=None)
            for i in range(4)))
        assert _threads_netns() == {home}
        inodes = {os.stat(a.netns).st_ino for a in got}
        assert len(inodes) == 4 and not inodes & {home, cluster_ino}
        assert len({ip for a in got for ip in a.ips}) == 4
        for attachment in got:
            [ip] = attachment.ips
            assert "LOWER_UP" in _in(attachment.netns, "ip", "-o", "link", "show", "lo")
            assert f"inet {ip}/24" in _in(attachment.netns, "ip", "-o", "-4", "addr", "show",
                                          "eth0")
        in_cluster = _in(cluster.netns_path, "ip", "-o", "link", "show", "type", "veth")
        assert len(in_cluster.strip().splitlines()) == 4, in_cluster
        host_veths = subprocess.run(["ip", "-o", "-j", "link", "show", "type", "veth"],
                                    capture_output=True, text=True, check=True).stdout
        ours = {line.split(":")[1].strip().split("@")[0] for line in in_cluster.splitlines()}
        assert not ours & {link["ifname"] for link in json.loads(host_veths or "[]")}
    finally:  # nothing left, whatever failed
        await asyncio.gather(*(iso.detach(f"c{i}") for i in range(4)))
    assert iso.containers() == []
    assert _in(cluster.netns_path, "ip", "-o", "link", "show", "type", "veth").strip() == ""
    assert _threads_netns() == {home}
    assert cluster_ino not in _threads_netns()


async def test_a_cancelled_attach_kills_its_plugin_and_leaves_nothing(
        cluster: network.ClusterNetwork, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    marker = tmp_path / "hung"
    (plugins / "hang").write_text(  # DEL answers at once: only the ADD hangs
        '#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] || exit 0\n'
        f'echo $$ $GOMAXPROCS > {marker}\nexec sleep 60\n')
    (plugins / "hang").chmod(0o755)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "hang.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "hang",
                                                "type": "hang"}))
    iso = cni.Isolator.load(config_dir=str(conf), plugins_dir=str(plugins), root=tmp_path / "cni",
                            plugins_netns=cluster.netns_path, timeout=60)
    attach = asyncio.ensure_future(iso.attach(
        "c0", networks=[iso.networks["hang"]], network_infos=[{"name": "hang"}], hostname=None))
    async with asyncio.timeout(20):
        while not marker.exists() or not marker.read_text().strip():
            await asyncio.sleep(0.05)
    pid, procs = marker.read_text().split()
    assert procs == "1"  # the Go runtime of the reference plugins: one processor
    attach.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attach
    assert not os.path.exists(f"/proc/{pid}")
    assert iso.containers() == []
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path / "cni") not in f.read()


async def test_lo_comes_up_without_any_program_on_path(cluster: network.ClusterNetwork,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``lo`` is the agent's own ioctl, not a process: with an empty PATH the network is
    still offered and a container's ``lo`` is up (the plugins are run by their path)."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    iso = _isolator(cluster, tmp_path)
    net = iso.networks[cluster.network_name]
    try:
        attachment = await iso.attach("c0", networks=[net], network_infos=[{"name": net.name}],
                                      hostname=None)
        monkeypatch.undo()
        lo = _in(attachment.netns, "ip", "-o", "link", "show", "lo")
        assert ",UP," in lo and "LOWER_UP" in lo, lo
    finally:
        await iso.detach("c0")
    assert iso.containers() == []
