"""The watch history is bounded in bytes as well as in count: 100 updates of a 1 MB ConfigMap
used to keep every version (devkube grew by ~155 MB); now the oldest versions leave the history
once it passes its byte budget, a watch from before them gets 410 Expired, and the process's RSS
stays within the budget."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from k8sbridge.devkube import main, store
from tests.devkube.server.conftest import Api

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _configmap(version: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
            "data": {"blob": f"{version:08d}" * (MIB // 8)}}


def _body(version: int) -> io.BytesIO:
    return io.BytesIO(json.dumps(_configmap(version)).encode())


async def test_a_1mb_object_updated_100_times_does_not_keep_100_versions(
        tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8sbridge", "devkube", "--port", "0", "--insecure-http",
         "--no-controllers", "--kubeconfig", str(tmp_path / "kubeconfig")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        url = line.split("serving ")[1].split()[0].rstrip(";")
        async with aiohttp.ClientSession(base_url=url) as session:
            async with session.post(CONFIGMAPS, data=_body(0), headers=JSON) as resp:
                assert resp.status == 201
                first_rv = (await resp.json())["metadata"]["resourceVersion"]
            before = _rss(proc.pid)
            for version in range(1, 101):
                async with session.put(f"{CONFIGMAPS}/big", data=_body(version),
                                       headers=JSON) as resp:
                    assert resp.status == 200
            after = _rss(proc.pid)
            print(f"devkube RSS {before / MIB:.0f} MB -> {after / MIB:.0f} MB after 100 x 1 MB")
            # a watch from before the retained history is told to relist
            async with session.get(CONFIGMAPS, params={
                    "watch": "1", "resourceVersion": first_rv}) as resp:
                event = await resp.content.readline()
                assert b'"code":410' in event
        growth = after - before
        # the budget (64 MiB of estimated cost) plus the live object and allocator slack
        assert growth < store.HISTORY_BYTES + 40 * MIB, growth / MIB
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_history_keeps_what_fits_and_resumes_within_it(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, history_bytes=8 * MIB)
    async with main.running(config) as dk, aiohttp.ClientSession(
            read_bufsize=4 * MIB) as session:
        api = Api(devkube=dk, session=session)
        rvs = []
        status, created = await api.request("POST", CONFIGMAPS, body=_configmap(0))
        assert status == 201
        rvs.append(created["metadata"]["resourceVersion"])
        for version in range(1, 11):
            status, updated = await api.request("PUT", f"{CONFIGMAPS}/big",
                                                body=_configmap(version))
            assert status == 200
            rvs.append(updated["metadata"]["resourceVersion"])
        # 8 MiB of cost is four 1 MiB versions (each counted twice): the last ones resume
        events = await api.watch(CONFIGMAPS, params={"resourceVersion": rvs[-3]}, stop_on=2)
        assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]
        assert events[-1]["object"]["metadata"]["resourceVersion"] == rvs[-1]
        events = await api.watch(CONFIGMAPS, params={"resourceVersion": rvs[2]}, stop_on=1)
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
