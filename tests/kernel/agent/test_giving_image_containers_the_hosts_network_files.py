"""A container with an image that joins no CNI network gets the agent's ``/etc/hosts``,
``/etc/resolv.conf`` and ``/etc/hostname`` bound read-only into its root, as Mesos'
``network/cni`` isolator gives them; a framework's own file at one of those paths (a SECRET
volume) wins, since volumes are mounted after. Driven through the kernel's scheduler API with
a raw task group, as a framework would."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.agent import filesystems
from tests.kernel.agent.images_for_tests import busybox_archive
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    busybox_archive(tmp_path / "registry", links=(("etc/resolv.conf", "../run/resolv.conf"),))
    agent = agent_config(tmp_path, isolation=filesystems.FULL_ISOLATION,
                         image_providers="docker", docker_registry=str(tmp_path / "registry"),
                         docker_store_dir=tmp_path / "store")
    async with main.running_kernel(master=master_config(), agents=[agent]) as k:
        yield k


def _task(task_id: str, agent_id: str, script: str, **container: Any) -> dict[str, Any]:
    return wire.command_task(task_id, agent_id, script, container={
        "type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox"}}},
        **container})


async def _run_group(kernel: main.Kernel, tasks: list[dict[str, Any]], agent_id: str,
                     st: wire.Stream, offer: dict[str, Any]) -> None:
    executor = {"type": "DEFAULT", "executor_id": {"value": "pod"},
                "framework_id": {"value": st.framework_id},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                              {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}]}
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
            "executor": executor, "task_group": {"tasks": tasks}}}]}})
    assert code == 202, text
    for task in tasks:
        seen = await wire.until_state(st, task["task_id"]["value"], "TASK_FINISHED")
        assert seen[-1]["state"] == "TASK_FINISHED", seen


def _sandbox(tmp_path: Path, task_id: str) -> Path:
    [found] = list(tmp_path.glob(f"agent0/slaves/*/frameworks/*/executors/pod/runs/latest/"
                                 f"tasks/{task_id}"))
    return found


async def test_the_hosts_network_files_are_bound_read_only_and_a_secret_wins(
        kernel: main.Kernel, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    copy = ("for f in hosts resolv.conf hostname; do cat /etc/$f > $MESOS_SANDBOX/$f; done; "
            "(echo x >> /etc/hosts) 2> $MESOS_SANDBOX/write; test -L /etc/resolv.conf && "
            "echo link > $MESOS_SANDBOX/link; true")
    own = base64.b64encode(b"10.1.2.3 mine\n").decode()
    secret = {"container_path": "/etc/hosts", "mode": "RO", "source": {
        "type": "SECRET", "secret": {"type": "VALUE", "value": {"data": own}}}}
    await _run_group(kernel, [
        _task("host-files", agent_id, copy),
        _task("own-hosts", agent_id, "cat /etc/hosts > $MESOS_SANDBOX/hosts",
              volumes=[secret]),
    ], agent_id, st, offer)
    seen = _sandbox(tmp_path, "host-files")
    for name in ("hosts", "resolv.conf", "hostname"):
        host = Path("/etc", name)
        if name != "resolv.conf" and not host.exists():
            continue
        assert (seen / name).read_text() == host.read_text(), name
    assert "Read-only file system" in (seen / "write").read_text()
    assert not (seen / "link").exists()  # the image's link was replaced by the host's file
    assert (_sandbox(tmp_path, "own-hosts") / "hosts").read_text() == "10.1.2.3 mine\n"
    await st.close()
