"""The master<->agent gRPC link: JSON round trips, peers vanishing, bad input, clean stops."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import grpc
import grpc.aio
import pytest

from k8sbridge.kernel import link
from tests.conftest import free_port


async def _echo(stream: link.AgentStream) -> None:
    async for message in stream:
        await stream.send({"type": "ECHO", "got": message})


async def test_round_trip_keeps_order_and_json_shapes() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        payloads = [{"type": "PONG", "n": i, "nested": {"value": "ä", "list": [1.5, None]}}
                    for i in range(50)]
        for p in payloads:
            await stream.send(p)
        got = []
        async with asyncio.timeout(10):
            async for message in stream:
                got.append(message["got"])
                if len(got) == len(payloads):
                    break
        assert got == payloads
        await stream.close()
    finally:
        await server.stop()


async def test_concurrent_sends_are_all_delivered() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        await asyncio.gather(*(stream.send({"type": "X", "n": i}) for i in range(200)))
        seen = set()
        async with asyncio.timeout(10):
            async for message in stream:
                seen.add(message["got"]["n"])
                if len(seen) == 200:
                    break
        assert seen == set(range(200))
        await stream.close()
    finally:
        await server.stop()


async def test_connect_to_nothing_raises_link_error() -> None:
    with pytest.raises(link.LinkError):
        await link.connect(f"127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(link.LinkError):
        await link.connect("no-port-here")


async def test_peer_process_killed_mid_stream_ends_master_iteration() -> None:
    ended = asyncio.Event()
    got_one = asyncio.Event()
    received: list[link.Message] = []

    async def handler(stream: link.AgentStream) -> None:
        async for message in stream:
            received.append(message)
            got_one.set()
        ended.set()
        with pytest.raises(link.LinkError):
            await stream.send({"type": "PING"})

    server = link.LinkServer(host="127.0.0.1", port=0, handler=handler)
    port = await server.start()
    script = textwrap.dedent(f"""
        import asyncio, sys
        from k8sbridge.kernel import link
        async def main():
            s = await link.connect("127.0.0.1:{port}", timeout=60)
            await s.send({{"type": "REGISTER"}})
            print("sent", flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            assert (await proc.stdout.readline()).strip() == b"sent"
            await got_one.wait()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        async with asyncio.timeout(15):
            await ended.wait()
        assert received == [{"type": "REGISTER"}]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop()


async def test_server_stop_ends_agent_iteration_and_send_fails() -> None:
    connected = asyncio.Event()

    async def handler(stream: link.AgentStream) -> None:
        connected.set()
        async for _ in stream:
            pass

    server = link.LinkServer(host="127.0.0.1", port=0, handler=handler)
    port = await server.start()
    stream = await link.connect(f"127.0.0.1:{port}")
    await stream.send({"type": "REGISTER"})
    async with asyncio.timeout(5):
        await connected.wait()
    await server.stop(grace=0.5)
    async with asyncio.timeout(10):
        async for _ in stream:
            pytest.fail("no message expected")
    with pytest.raises(link.LinkError):
        await stream.send({"type": "PONG"})
    await stream.close()


async def test_master_closing_the_stream_ends_the_agent_side() -> None:
    async def handler(stream: link.AgentStream) -> None:
        async for message in stream:
            await stream.send({"type": "REGISTERED", "agent_id": {"value": "a"}})
            await stream.close()
            assert message["type"] == "REGISTER"

    server = link.LinkServer(host="127.0.0.1", port=0, handler=handler)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        await stream.send({"type": "REGISTER"})
        got = []
        async with asyncio.timeout(10):
            async for message in stream:
                got.append(message)
        assert got == [{"type": "REGISTERED", "agent_id": {"value": "a"}}]
        await stream.close()
    finally:
        await server.stop()


async def test_malformed_messages_are_dropped_and_the_stream_lives_on() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        call = channel.stream_stream(
            f"/{link.SERVICE}/Connect",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )()
        for raw in (b"not json", b"[1,2]", b'{"no":"type"}', b"\xff\xfe", b'{"type":"OK"}'):
            await call.write(raw)
        async with asyncio.timeout(10):
            reply = await call.read()
        assert reply == b'{"type":"ECHO","got":{"type":"OK"}}'
        call.cancel()
    finally:
        await channel.close()
        await server.stop()


async def test_send_rejects_a_message_without_type() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        with pytest.raises(link.LinkError):
            await stream.send({"no": "type"})
        await stream.close()
    finally:
        await server.stop()


async def test_port_in_use_raises_link_error() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    try:
        other = link.LinkServer(host="127.0.0.1", port=port, handler=_echo)
        with pytest.raises(link.LinkError):
            await other.start()
    finally:
        await server.stop()


async def test_post_keeps_order_with_send_and_reports_a_gone_stream() -> None:
    server = link.LinkServer(host="127.0.0.1", port=0, handler=_echo)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        for i in range(20):
            assert stream.post({"type": "P", "n": i})
        await stream.send({"type": "P", "n": 20})
        got = []
        async with asyncio.timeout(10):
            async for message in stream:
                got.append(message["got"]["n"])
                if len(got) == 21:
                    break
        assert got == list(range(21))
        await stream.close()
        assert stream.post({"type": "P"}) is False
    finally:
        await server.stop()
