"""A task launched with ``ContainerInfo.tty_info`` gets a terminal and an I/O switchboard, as
Mesos gives it: ATTACH_CONTAINER_OUTPUT follows the terminal, ATTACH_CONTAINER_INPUT types
into it (one input connection at a time, TTY_INFO resizes it), the output is in the sandbox's
stdout too; a task without a TTY has no switchboard and the agent says so, as Mesos does."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel.agent import filesystems, http_attach
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


Ids = dict[str, dict[str, Any]]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[fm.Running, Ids]]:
    busybox_archive(tmp_path / "registry")
    image = {"type": "DOCKER", "docker": {"name": "busybox"}}
    shell = fm.command_task("shell", "")
    shell["command"] = {"shell": False, "value": "/bin/sh", "arguments": ["sh"]}
    shell["container"] = {"type": "MESOS", "mesos": {"image": image},
                          "tty_info": {"window_size": {"rows": 24, "columns": 80}}}
    plain = fm.command_task("plain", "exec sleep 60")
    plain["container"] = {"type": "MESOS", "mesos": {"image": image}}
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION,
                                image_providers="docker",
                                docker_registry=str(tmp_path / "registry"),
                                docker_store_dir=tmp_path / "store") as run:
        await run.master.send(_group(shell, plain))
        ids = {}
        for name in ("shell", "plain"):
            status = await run.master.wait_state(name, "TASK_RUNNING")
            ids[name] = status["container_status"]["container_id"]
        yield run, ids


def _url(run: fm.Running) -> str:
    return f"http://{run.agent.http_address}/api/v1"


def _output_call(container: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ATTACH_CONTAINER_OUTPUT",
            "attach_container_output": {"container_id": container}}


def _data_records(container_id: str, chunks: list[bytes]) -> bytes:
    whole = sc.input_records(container_id, chunks, eof=False)
    first = sc.input_records(container_id, [], eof=False)
    return whole[len(first):]


async def _read_until(records: AsyncIterator[dict[str, Any]], seen: bytearray,
                      wanted: bytes) -> None:
    async with asyncio.timeout(20):
        while wanted not in seen:
            record = await anext(records)
            if record.get("type") == "DATA":
                seen += base64.b64decode(record["data"]["data"])


async def test_a_tty_task_is_typed_into_resized_and_followed(
        running: tuple[fm.Running, Ids], tmp_path: Path) -> None:
    run, ids = running
    shell = ids["shell"]
    first = sc.input_records(shell["value"], [], eof=False)
    resize = sc.input_records(shell["value"], [], eof=False, window=(40, 120))[len(first):]
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(run), json=_output_call(shell),
                             headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 200, await reply.text()
            assert reply.headers["Content-Type"] == sc.RECORDIO
            records = sc.records(reply)
            seen = bytearray()
            typing_in = asyncio.Event()

            async def body() -> AsyncIterator[bytes]:
                yield first + _data_records(shell["value"], [b"stty size; echo h''i\n"])
                await typing_in.wait()
                yield resize + _data_records(shell["value"], [b"stty size; exit\n"])

            sending = asyncio.ensure_future(http.post(_url(run), data=body(), headers={
                "Content-Type": sc.RECORDIO, "Message-Content-Type": "application/json"}))
            await _read_until(records, seen, b"hi\r\n")
            assert b"24 80" in seen
            # one input connection at a time, as the switchboard allows
            assert await sc.send_input(http, _url(run), first) == 409
            typing_in.set()
            await _read_until(records, seen, b"40 120")
            async with asyncio.timeout(20):
                async for _ in records:  # the terminal closes when the shell exits
                    pass
            answer = await sending
            assert answer.status == 200
            answer.release()
        await run.master.wait_state("shell", "TASK_FINISHED")
    [log] = [p for p in (tmp_path / "work").rglob("stdout") if "shell" in str(p.parent)]
    assert b"hi\r\n" in log.read_bytes()  # the logger gets the terminal's output too


async def test_a_task_without_a_tty_has_no_switchboard(
        running: tuple[fm.Running, Ids]) -> None:
    run, ids = running
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(run), json=_output_call(ids["plain"]),
                             headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 500
            assert await reply.text() == http_attach.DISABLED
        async with http.post(_url(run), data=sc.input_records(ids["plain"]["value"], [b"x"]),
                             headers={"Content-Type": sc.RECORDIO,
                                      "Message-Content-Type": "application/json"}) as reply:
            assert reply.status == 500
            assert await reply.text() == http_attach.DISABLED
        unknown = {"value": "no-such-container"}
        async with http.post(_url(run), json=_output_call(unknown),
                             headers=sc.STREAM_HEADERS) as reply:
            assert reply.status == 404
            assert await reply.text() == "Container no-such-container cannot be found"


async def test_detaching_leaves_the_task_running_and_attachable(
        running: tuple[fm.Running, Ids]) -> None:
    run, ids = running
    shell = ids["shell"]
    first = sc.input_records(shell["value"], [], eof=False)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # attach, type, detach; again
            async with http.post(_url(run), json=_output_call(shell),
                                 headers=sc.STREAM_HEADERS) as reply:
                assert reply.status == 200, await reply.text()
                assert await sc.send_input(http, _url(run), first + _data_records(
                    shell["value"], [b"echo al''ive\n"])) == 200
                seen = bytearray()
                await _read_until(sc.records(reply), seen, b"alive\r\n")
        # the second round answered: the shell outlived the first detach
