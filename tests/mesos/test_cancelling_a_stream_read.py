"""A cancelled read of the event stream ends cancelled, even when an event arrived at that instant.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that lands in the same loop
iteration as the inner future's result: the caller gets the event instead of CancelledError.
The framework's reader loop then read on, and ``Framework.run`` did not stop (CI saw it hang
for 10 s twice). The stream is fed by hand here so that the two can be made to coincide.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import yarl

from k8sbridge.mesos import client, events
from k8sbridge.mesos.metrics import Metrics

HEARTBEAT = b'{"type":"HEARTBEAT"}'
RECORD = str(len(HEARTBEAT)).encode() + b"\n" + HEARTBEAT


class HandFedContent:
    """The ``content`` of a response whose next chunk the test hands over."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[bytes] | None = None

    async def readany(self) -> bytes:
        self.pending = asyncio.get_running_loop().create_future()
        return await self.pending


class HandFedResponse:
    def __init__(self) -> None:
        self.content = HandFedContent()

    def close(self) -> None:
        pass


def open_stream() -> tuple[client.EventStream, HandFedContent]:
    response = HandFedResponse()
    stream = client.EventStream(
        response=cast(Any, response),
        stream_id="s",
        master=yarl.URL("http://127.0.0.1:5050/"),
        max_record_size=1 << 20,
        metrics=Metrics(),
    )
    return stream, response.content


@pytest.mark.parametrize("ticks", range(6))
async def test_a_cancel_that_meets_an_arriving_event_is_not_lost(ticks: int) -> None:
    stream, content = open_stream()
    reader = asyncio.create_task(stream.next_event(timeout=30))
    while content.pending is None:
        await asyncio.sleep(0)
    content.pending.set_result(RECORD)
    for _ in range(ticks):
        await asyncio.sleep(0)
    if reader.cancel():
        # The task took the cancellation: it must end cancelled, not with the event.
        with pytest.raises(asyncio.CancelledError):
            await reader
    else:
        assert isinstance(reader.result(), events.Heartbeat)


async def test_an_event_is_returned_when_nobody_cancels() -> None:
    stream, content = open_stream()
    reader = asyncio.create_task(stream.next_event(timeout=30))
    while content.pending is None:
        await asyncio.sleep(0)
    content.pending.set_result(RECORD)
    assert isinstance(await reader, events.Heartbeat)
