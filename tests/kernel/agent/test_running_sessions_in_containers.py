"""LAUNCH_NESTED_CONTAINER_SESSION, ATTACH_CONTAINER_INPUT and WAIT_NESTED_CONTAINER against a
task of a task group running in an image with its own pid namespace: the session sees the
task's root and processes, its output and exit status come back, stdin and a TTY work, and a
session whose caller goes away leaves nothing behind."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel.agent import filesystems
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent import sessionclient as sc
from tests.kernel.agent.images_for_tests import busybox_archive


def _group(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "RUN_TASK_GROUP", "framework": fm.framework(),
        "executor": {
            "type": "DEFAULT", "executor_id": {"value": "ex1"},
            "framework_id": {"value": fm.FRAMEWORK_ID},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]},
        "task_group": {"tasks": list(tasks)}}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[fm.Running, dict[str, Any]]]:
    busybox_archive(tmp_path / "registry")
    task = fm.command_task("main", "echo secret > /tmp/made-by-task && exec sleep 60")
    task["container"] = {"type": "MESOS", "mesos": {"image": {
        "type": "DOCKER", "docker": {"name": "busybox"}}}}
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION,
                                image_providers="docker",
                                docker_registry=str(tmp_path / "registry"),
                                docker_store_dir=tmp_path / "store") as run:
        await run.master.send(_group(task))
        status = await run.master.wait_state("main", "TASK_RUNNING")
        yield run, status["container_status"]["container_id"]


def _url(run: fm.Running) -> str:
    return f"http://{run.agent.http_address}/api/v1"


async def _session(http: aiohttp.ClientSession, run: fm.Running, parent: dict[str, Any],
                   command: dict[str, Any], **kw: Any) -> tuple[bytes, bytes, int]:
    call = sc.launch_call(parent, command, **kw)
    sid = call["launch_nested_container_session"]["container_id"]["value"]
    async with http.post(_url(run), json=call, headers=sc.STREAM_HEADERS) as reply:
        assert reply.status == 200, await reply.text()
        assert reply.headers["Content-Type"] == sc.RECORDIO
        out, err = await sc.output_of(reply)
    return out, err, await sc.wait_status(http, _url(run), sid)


async def test_a_session_runs_in_the_tasks_view_and_returns_its_exit_status(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    script = ("cat /tmp/made-by-task; ps -o args | grep -cx 'sleep 60'; "
              "ls /proc | grep -c '^[0-9]'; echo oops >&2; exit 3")
    async with aiohttp.ClientSession() as http:
        out, err, status = await _session(http, run, parent, {"value": script})
        found, count = out.split()[:2], int(out.split()[2])
        assert found == [b"secret", b"1"]  # the task's root, its processes
        assert count < 10  # and only its pid namespace's
        assert err == b"oops\n"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
        out, err, status = await _session(
            http, run, parent, {"shell": False, "value": "no-such-program",
                                "arguments": ["no-such-program"]})
        assert os.WEXITSTATUS(status) == 127
        assert b"no-such-program" in err and b"No such file" in err


async def test_stdin_reaches_the_session_and_its_end_is_an_eof(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    call = sc.launch_call(parent, {"value": "cat; echo done"})
    sid = call["launch_nested_container_session"]["container_id"]["value"]
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(run), json=call, headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 200
            sent = await sc.send_input(http, _url(run), sc.input_records(
                sid, [b"hello ", b"world\n"]))
            assert sent == 200
            out, _ = await sc.output_of(reply)
        assert out == b"hello world\ndone\n"
        assert os.WEXITSTATUS(await sc.wait_status(http, _url(run), sid)) == 0


async def test_a_tty_session_has_a_terminal_of_the_asked_size_and_follows_resizes(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    script = "tty; stty size; read line; stty size; echo got-$line"
    call = sc.launch_call(parent, {"value": script}, tty=(24, 80))
    sid = call["launch_nested_container_session"]["container_id"]["value"]
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(run), json=call, headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 200
            out, err = b"", b""
            records = sc.records(reply)
            while b"24 80" not in out:  # the first size is read before the resize is sent
                record = await anext(records)
                out += base64.b64decode(record["data"]["data"])
            sent = await sc.send_input(http, _url(run), sc.input_records(
                sid, [b"x\n"], eof=False, window=(40, 120)))
            assert sent == 200
            async for record in records:
                if record["type"] == "DATA":
                    out += base64.b64decode(record["data"]["data"])
        assert err == b""  # a terminal has one output
        text = out.decode().replace("\r", "")
        assert "/dev/pts/0\n" in text  # its own devpts
        assert "24 80\n" in text and "40 120\n" in text and "got-x" in text


async def test_a_caller_that_goes_away_takes_its_session_along(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    # a sleep no other test runs: the check below looks at every process of the host, and
    # the other pytest worker's tasks are there too
    call = sc.launch_call(parent, {"value": "echo started; exec sleep 4321"})
    sid = call["launch_nested_container_session"]["container_id"]["value"]
    listing = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}}
    async with aiohttp.ClientSession() as http:
        reply = await http.post(_url(run), json=call, headers=sc.STREAM_HEADERS)
        first = await anext(sc.records(reply))
        assert first["type"] == "DATA"
        async with http.post(_url(run), json=listing) as containers:
            ids = [c["container_id"]["value"] for c in
                   (await containers.json())["get_containers"]["containers"]]
        assert sid in ids
        reply.close()  # the connection goes away
        status = await asyncio.wait_for(sc.wait_status(http, _url(run), sid), 10)
        assert os.WIFSIGNALED(status)
        async with http.post(_url(run), json=listing) as containers:
            ids = [c["container_id"]["value"] for c in
                   (await containers.json())["get_containers"]["containers"]]
        assert sid not in ids
        assert not any(_cmdline(p).endswith(b"sleep\x004321\x00") for p in _pids())


async def test_bad_calls_get_mesos_answers(running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    async with aiohttp.ClientSession() as http:
        gone = sc.launch_call({"value": str(uuid.uuid4())}, {"value": "true"})
        async with http.post(_url(run), json=gone, headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 400
            assert "does not exist" in await reply.text()
        assert await sc.send_input(http, _url(run), sc.input_records("nobody", [])) == 404
        huge = sc.launch_call(parent, {"value": "cat"})
        sid = huge["launch_nested_container_session"]["container_id"]["value"]
        async with http.post(_url(run), json=huge, headers=sc.STREAM_HEADERS) as reply:
            first = sc.input_records(sid, [], eof=False)
            too_big = b"%d\n" % (8 * 1024 * 1024) + b"x" * 100
            assert await sc.send_input(http, _url(run), first + too_big) == 413
            await sc.send_input(http, _url(run), sc.input_records(sid, []))
            await sc.output_of(reply)
        async with http.post(_url(run), json={"type": "GET_HEALTH"},
                             headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 406


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def test_a_session_killed_mid_stream_ends_with_its_signal(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    call = sc.launch_call(parent, {"value": "echo started; exec sleep 1000"})
    sid = call["launch_nested_container_session"]["container_id"]["value"]
    kill = {"type": "KILL_NESTED_CONTAINER",
            "kill_nested_container": {"container_id": {"value": sid}}}
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(run), json=call, headers=sc.STREAM_HEADERS) as reply:
            records = sc.records(reply)
            assert (await anext(records))["type"] == "DATA"
            async with http.post(_url(run), json=kill) as killed:
                assert killed.status == 200
            async for _ in records:  # the stream ends
                pass
        status = await sc.wait_status(http, _url(run), sid)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
        async with http.post(_url(run), json=kill) as again:
            assert again.status == 404


async def test_a_hundred_sessions_at_once_all_answer_and_leave_nothing(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running
    listing = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one(i: int) -> tuple[bytes, int]:
            out, _err, status = await _session(http, run, parent,
                                               {"value": f"echo {i}; sleep 0.2; exit {i % 7}"})
            return out, status

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 120)
        for i, (out, status) in enumerate(results):
            assert out == f"{i}\n".encode()
            assert os.WEXITSTATUS(status) == i % 7
        async with http.post(_url(run), json=listing) as containers:
            nested = [c for c in (await containers.json())["get_containers"]["containers"]
                      if c["container_id"].get("parent") == parent]
        assert nested == []  # no session is left
    assert not any(b"sleep\x000.2" in _cmdline(p) for p in _pids())


async def test_without_tar_in_the_view_kubectl_cp_gets_127_and_why(
        running: tuple[fm.Running, dict[str, Any]]) -> None:
    run, parent = running  # the test image has no tar: what `kubectl cp` runs fails clearly
    async with aiohttp.ClientSession() as http:
        out, err, status = await _session(
            http, run, parent, {"shell": False, "value": "tar",
                                "arguments": ["tar", "cf", "-", "/tmp"]})
    assert os.WEXITSTATUS(status) == 127 and out == b""
    assert b"tar" in err and b"No such file" in err
