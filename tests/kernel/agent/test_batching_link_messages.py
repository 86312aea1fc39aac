"""A burst of link messages travels in BATCH frames and arrives one by one, in order; a message
that cannot be encoded fails alone."""

from __future__ import annotations

import asyncio

import pytest

from k8sbridge.kernel import link


async def test_a_burst_arrives_in_order_in_fewer_frames() -> None:
    frames: list[int] = []

    async def echo(stream: link.AgentStream) -> None:
        async for message in stream:
            await stream.send({"type": "ECHO", "n": message["n"]})

    server = link.LinkServer(host="127.0.0.1", port=0, handler=echo)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        write = stream._write

        async def counting_write(frame: link.Message | bytes) -> None:
            frames.append(1)
            await write(frame)

        stream._write = counting_write
        n = 3000
        big = "y" * 3000  # 3,000 x 3 KB: more than one batch by size
        for i in range(n):
            assert stream.post({"type": "PONG", "n": i, "pad": big})
        got: list[int] = []
        async with asyncio.timeout(30):
            async for message in stream:
                got.append(message["n"])
                if len(got) == n:
                    break
        assert got == list(range(n))
        assert 2 <= len(frames) < n // 10
        await stream.close()
    finally:
        await server.stop()


async def test_an_unencodable_message_fails_alone_and_a_batch_frame_from_a_peer_unpacks(
) -> None:
    received: list[link.Message] = []

    async def collect(stream: link.AgentStream) -> None:
        async for message in stream:
            received.append(message)

    server = link.LinkServer(host="127.0.0.1", port=0, handler=collect)
    port = await server.start()
    try:
        stream = await link.connect(f"127.0.0.1:{port}")
        first = asyncio.ensure_future(stream.send({"type": "A"}))
        bad = asyncio.ensure_future(stream.send({"type": "B", "x": object()}))
        last = asyncio.ensure_future(stream.send({"type": "C", "last": True}))
        await first
        with pytest.raises(link.LinkError, match="cannot encode"):
            await bad
        await last
        # A peer may also send a BATCH frame itself; junk inside it is dropped, not fatal.
        await stream.send({"type": link.BATCH, "messages": [
            {"type": "D"}, 7, {"no": "type"}, {"type": "E", "last": True}]})
        async with asyncio.timeout(10):
            while len(received) < 4:
                await asyncio.sleep(0.01)
        assert [m["type"] for m in received] == ["A", "C", "D", "E"]
        assert not stream.gone
        await stream.close()
    finally:
        await server.stop()
