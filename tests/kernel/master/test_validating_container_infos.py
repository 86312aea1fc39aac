"""A task's and an executor's ``ContainerInfo`` (its volumes, a DOCKER container's parameters)
are checked as Mesos' master checks them (``common::validation::validateContainerInfo``),
through the real scheduler API: the invalid ones get TASK_ERROR with Mesos' message."""

from __future__ import annotations

from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire
from tests.kernel.master.test_validating_limits import _executor, _first_update, _group, _offer

_SANDBOX = {"type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "v"}}


def _container(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "MESOS", "volumes": list(volumes)}


async def test_invalid_volumes_are_refused_and_valid_ones_pass(
        kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    fid = st.framework_id
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        (_container({"container_path": "/a", "mode": "RW"}), {},
         "Task 'v1' is invalid: Task's `ContainerInfo` is invalid: Invalid volume: Only one of "
         "them should be set: 'host_path', 'image' and 'source'"),
        (_container({"container_path": "/a", "mode": "RW", "host_path": "/tmp",
                     "source": _SANDBOX}), {},
         "Task 'v2' is invalid: Task's `ContainerInfo` is invalid: Invalid volume: Only one of "
         "them should be set: 'host_path', 'image' and 'source'"),
        (_container({"container_path": "/a", "mode": "RO", "source": {"type": "SECRET"}}), {},
         "Task 'v3' is invalid: Task's `ContainerInfo` is invalid: Invalid volume: "
         "'source.secret' is not set for SECRET volume"),
        (_container({"container_path": "/a", "mode": "RO", "source": {"type": "NFS"}}), {},
         "Task 'v4' is invalid: Task's `ContainerInfo` is invalid: Invalid volume: "
         "'source.type' is unknown"),
        (_container(), {"container": _container({"container_path": "x", "mode": "RW",
                                                 "source": {"type": "HOST_PATH"}})},
         "Executor's `ContainerInfo` is invalid: Invalid volume: 'source.host_path' is not "
         "set for HOST_PATH volume"),
    ]
    for n, (container, executor_extra, message) in enumerate(cases, start=1):
        offer = await _offer(st)
        task = wire.command_task(f"v{n}", offer["agent_id"]["value"], "true", cpus=0.1,
                                 mem=32, container=container)
        await _group(st, offer, _executor(fid, f"e{n}", **executor_extra), [task])
        status = await _first_update(st, f"v{n}")
        assert status["state"] == "TASK_ERROR", status
        assert status["message"] == message
    offer = await _offer(st)
    good = wire.command_task("ok", offer["agent_id"]["value"], "true", cpus=0.1, mem=32,
                             container=_container({"container_path": "v", "mode": "RW",
                                                   "source": _SANDBOX}))
    await _group(st, offer, _executor(fid, "good"), [good])
    status = await _first_update(st, "ok")
    assert status["state"] != "TASK_ERROR", status
