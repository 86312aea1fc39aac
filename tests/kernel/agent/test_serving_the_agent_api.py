"""The agent HTTP API over real HTTP: /files/*, /state, /containers, /health, POST /api/v1."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp

from tests.kernel.agent import fakemaster as fm


async def _get(session: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any]:
    async with session.get(url, params=params) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def _v1(session: aiohttp.ClientSession, base: str, call: dict[str, Any],
              **headers: str) -> tuple[int, Any]:
    hdrs = {"Content-Type": "application/json", **headers}
    async with session.post(f"{base}/api/v1", json=call, headers=hdrs) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def test_files_read_browse_download_with_mesos_rules(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run, aiohttp.ClientSession() as s:
        content = "line\n" * 20000  # 100,000 bytes: more than one 64 KiB read
        await run.master.send(fm.run_task(fm.command_task(
            "f1", "python3 -c \"import sys; sys.stdout.write('line\\n' * 20000)\"")))
        await run.master.wait_state("f1", "TASK_FINISHED")
        base = f"http://{run.agent.http_address}"
        vpath = f"/frameworks/{fm.FRAMEWORK_ID}/executors/f1/runs/latest"

        status, listing = await _get(s, f"{base}/files/browse", path=vpath)
        assert status == 200
        by_name = {e["path"].rsplit("/", 1)[1]: e for e in listing}
        assert by_name["stdout"]["size"] == len(content)
        assert by_name["stdout"]["path"] == vpath + "/stdout"
        assert by_name["stdout"]["mode"].startswith("-rw")
        assert {"nlink", "mtime", "uid", "gid"} <= set(by_name["stdout"])

        status, tail = await _get(s, f"{base}/files/read", path=vpath + "/stdout", offset=-1)
        assert (status, tail) == (200, {"data": "", "offset": len(content)})
        status, first = await _get(s, f"{base}/files/read", path=vpath + "/stdout", offset=0)
        assert status == 200 and first["offset"] == 0
        assert len(first["data"]) == 65536 and content.startswith(first["data"])
        status, part = await _get(s, f"{base}/files/read", path=vpath + "/stdout",
                                  offset=5, length=10)
        assert part == {"data": content[5:15], "offset": 5}
        status, past = await _get(s, f"{base}/files/read", path=vpath + "/stdout",
                                  offset=10**9)
        assert past == {"data": "", "offset": 10**9}  # files.cpp echoes the offset asked for

        assert (await _get(s, f"{base}/files/read"))[0] == 400
        assert (await _get(s, f"{base}/files/read", path=vpath + "/nope", offset=0))[0] == 404
        assert (await _get(s, f"{base}/files/read", path=vpath, offset=0))[0] == 400
        assert (await _get(s, f"{base}/files/read", path=vpath + "/stdout",
                           offset="abc"))[0] == 400
        assert (await _get(s, f"{base}/files/browse", path="/etc"))[0] == 404
        escape = vpath + "/../../../../.."
        assert (await _get(s, f"{base}/files/read", path=escape + "/x", offset=0))[0] == 404
        assert (await _get(s, f"{base}/files/read", path=escape, offset=0))[0] == 400
        assert (await _get(s, f"{base}/files/browse", path=escape))[0] == 400  # as files.cpp
        assert await _get(s, f"{base}/files/browse", path=vpath + "/stdout") == (200, [])
        status, tail2 = await _get(s, f"{base}/files/read", path=vpath + "/stdout")
        assert tail2 == {"data": "", "offset": len(content)}  # no offset means -1

        async with s.get(f"{base}/files/download", params={"path": vpath + "/stdout"}) as r:
            assert r.status == 200
            assert (await r.read()).decode() == content

        # the real (attached) path works too
        status, state = await _get(s, f"{base}/state")
        fw = (state["frameworks"] + state["completed_frameworks"])[0]
        ex = (fw["executors"] + fw["completed_executors"])[0]
        assert ex["id"] == "f1" and Path(ex["directory"]).is_dir()
        status, real = await _get(s, f"{base}/files/read", path=ex["directory"] + "/stdout",
                                  offset=0, length=5)
        assert real == {"data": "line\n", "offset": 0}


async def test_state_containers_and_health(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, attributes="rack:r1") as run, \
            aiohttp.ClientSession() as s:
        await run.master.send(fm.run_task(fm.command_task("long", "sleep 300")))
        await run.master.wait_state("long", "TASK_RUNNING")
        base = f"http://{run.agent.http_address}"
        async with s.get(f"{base}/health") as r:
            assert r.status == 200 and await r.read() == b""
        for path in ("/state", "/slave(1)/state"):
            status, state = await _get(s, base + path)
            assert status == 200
            assert state["id"] == run.agent.agent_id
            assert state["pid"] == f"slave(1)@{run.agent.http_address}"
            assert state["attributes"] == {"rack": "r1"}
            assert state["resources"]["cpus"] == 2.0 and state["resources"]["mem"] == 1024.0
            ex = state["frameworks"][0]["executors"][0]
            assert ex["tasks"][0]["id"] == "long" and ex["tasks"][0]["state"] == "TASK_RUNNING"
            assert ex["tasks"][0]["slave_id"] == run.agent.agent_id
            assert ex["directory"].endswith(ex["container"])
        status, listed = await _get(s, base + "/containers")
        assert status == 200 and listed[0]["executor_id"] == "long"
        assert listed[0]["status"]["container_id"]["value"] == listed[0]["container_id"]


async def test_v1_calls_and_their_errors(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run, aiohttp.ClientSession() as s:
        await run.master.send(fm.run_task(fm.command_task("v", "echo v1-data; sleep 300")))
        await run.master.wait_state("v", "TASK_RUNNING")
        base = f"http://{run.agent.http_address}"
        assert await _v1(s, base, {"type": "GET_HEALTH"}) == (
            200, {"type": "GET_HEALTH", "get_health": {"healthy": True}})
        status, version = await _v1(s, base, {"type": "GET_VERSION"})
        assert version["get_version"]["version_info"]["version"] == "1.12.0"
        status, state = await _v1(s, base, {"type": "GET_STATE"})
        launched = state["get_state"]["get_tasks"]["launched_tasks"]
        assert [t["task_id"]["value"] for t in launched] == ["v"]
        status, conts = await _v1(s, base, {"type": "GET_CONTAINERS"})
        assert conts["get_containers"]["containers"][0]["executor_id"] == {"value": "v"}
        vpath = f"/frameworks/{fm.FRAMEWORK_ID}/executors/v/runs/latest"
        status, files = await _v1(s, base, {"type": "LIST_FILES", "list_files": {"path": vpath}})
        names = {f["path"].rsplit("/", 1)[1] for f in files["list_files"]["file_infos"]}
        assert {"stdout", "stderr"} <= names
        call = {"type": "READ_FILE", "read_file": {"path": vpath + "/stdout", "offset": 0}}
        async with asyncio.timeout(10):  # RUNNING means started, not that it printed yet
            while not (read := (await _v1(s, base, call))[1])["read_file"]["size"]:
                await asyncio.sleep(0.05)
        assert base64.b64decode(read["read_file"]["data"]) == b"v1-data\n"
        assert read["read_file"]["size"] == 8
        status, tasks = await _v1(s, base, {"type": "GET_TASKS"})
        assert tasks["get_tasks"]["launched_tasks"][0]["state"] == "TASK_RUNNING"
        status, fws = await _v1(s, base, {"type": "GET_FRAMEWORKS"})
        assert fws["get_frameworks"]["frameworks"][0]["framework_info"]["id"] == {
            "value": fm.FRAMEWORK_ID}
        status, exs = await _v1(s, base, {"type": "GET_EXECUTORS"})
        assert exs["get_executors"]["executors"][0]["executor_info"]["executor_id"] == {
            "value": "v"}
        status, agent = await _v1(s, base, {"type": "GET_AGENT"})
        assert agent["get_agent"]["agent_info"]["id"] == {"value": run.agent.agent_id}
        status, flags = await _v1(s, base, {"type": "GET_FLAGS"})
        assert {"name": "containerizers", "value": "mesos"} in flags["get_flags"]["flags"]
        # errors
        assert (await _v1(s, base, {"type": "READ_FILE", "read_file": {"path": "/x"}}))[0] == 400
        assert (await _v1(s, base, {"type": "LIST_FILES",
                                    "list_files": {"path": vpath + "/zz"}}))[0] == 404
        assert (await _v1(s, base, {"type": "LAUNCH_NESTED_CONTAINER"}))[0] == 501
        assert (await _v1(s, base, {"no": "type"}))[0] == 400
        assert (await _v1(s, base, {"type": "GET_HEALTH"}, Accept="text/html"))[0] == 406
        async with s.post(f"{base}/api/v1", data=b"{",
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        async with s.post(f"{base}/api/v1", data=b"x",
                          headers={"Content-Type": "application/x-protobuf"}) as r:
            assert r.status == 415
        async with s.post(f"{base}/api/v1", data=b"{}") as r:
            assert r.status in (400, 415)
