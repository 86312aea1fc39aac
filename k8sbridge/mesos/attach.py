"""``kubectl attach`` on the Mesos side: ``ATTACH_CONTAINER_OUTPUT`` and
``ATTACH_CONTAINER_INPUT`` of a task's own container, which Mesos serves only for a container
launched with a TTY (its I/O switchboard; any other answers 500 "I/O switchboard server was
disabled for this container").

Why apart from ``sessions``: nothing is launched and nothing is destroyed. Closing the output
connection leaves the task running; the input is the switchboard's one input connection
while it is open. The attach ends when the client's input ends (after the terminal's last
words), as a container runtime ends an attach whose stdin closed. On a terminal the end of
input is the EOT character (Mesos ignores an empty DATA record when there is a TTY), which
``close_input`` sends for a ``stdinOnce`` container: what closing its stdin amounts to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from k8sbridge.mesos import errors, sessions
from k8sbridge.mesos.operator import OPERATOR_PATH, OperatorClient

__all__ = ["EOT", "Attachment", "attach"]

EOT = b"\x04"  # a terminal's end-of-file character
DRAIN_SECONDS = 1.0  # the terminal's output still read after the client's input ended
CLOSE_GRACE = 2.0  # seconds the last input (the EOT) gets to reach the agent on detach


class Attachment:
    """Output of a task's terminal, and (``stdin``) its input: ``sessions.Input``."""

    def __init__(self, *, client: OperatorClient, url: str, container: dict[str, Any],
                 response: aiohttp.ClientResponse, stdin_once: bool) -> None:
        self.container_id = str(container.get("value"))
        self._response = response
        self._once = stdin_once
        self._sent = False
        self._input_ended = asyncio.Event()
        # the end of a stdinOnce input is the terminal's EOT; else the input connection just
        # ends (an empty DATA record, which Mesos ignores on a terminal)
        self._stdin = sessions.ContainerInput(client=client, url=url, container=container,
                                              eof=EOT if stdin_once else None)

    @property
    def refused(self) -> str | None:
        """The agent's answer when it did not take the input."""
        return self._stdin.refused

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """The terminal's output until it closes, or until the client's input has ended and
        the terminal has been quiet for ``DRAIN_SECONDS`` (an attach ends with its stdin, as
        a container runtime ends it)."""
        records = sessions.output_records(self._response, self.container_id)
        ended = asyncio.ensure_future(self._input_ended.wait())
        try:
            while True:
                step = asyncio.ensure_future(anext(records))
                if not ended.done():
                    await asyncio.wait({step, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    try:
                        await asyncio.wait_for(asyncio.shield(step), DRAIN_SECONDS)
                    except StopAsyncIteration:  # the terminal closed while draining (raised
                        return  # out of this generator it would become a RuntimeError)
                    except TimeoutError:
                        step.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await step
                        return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            ended.cancel()
            await records.aclose()

    async def send(self, data: bytes) -> None:
        self._sent = self._sent or bool(data)
        await self._stdin.send(data)

    async def close_input(self) -> None:
        await self._stdin.close_input()
        self._input_ended.set()

    async def resize(self, *, rows: int, columns: int) -> None:
        await self._stdin.resize(rows=rows, columns=columns)

    async def close(self) -> None:
        """Detach: the task keeps running (a stdinOnce terminal that got input gets its EOT
        first, delivered before the input connection ends)."""
        if self._once and self._sent:
            await self._stdin.close_input()
        self._response.close()
        await self._stdin.close(grace=CLOSE_GRACE if self._once else 0.0)


async def attach(client: OperatorClient, address: str, *, container: dict[str, Any],
                 stdin_once: bool = False) -> Attachment:
    """Follow the terminal of the task container ``container`` (its ContainerID with parents)
    on the agent at ``address``; ``errors.OperatorError`` with the agent's answer if refused."""
    url = client.agent_url(address, OPERATOR_PATH)
    call = {"type": "ATTACH_CONTAINER_OUTPUT",
            "attach_container_output": {"container_id": container}}
    headers = client.transport.headers(Accept=sessions.RECORDIO,
                                       **{"Message-Accept": "application/json"})
    try:
        response = await client.transport.session().post(
            url, data=client.transport.encode(call), headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None))
    except (aiohttp.ClientError, OSError) as e:
        raise errors.OperatorError(f"{url}: {e!r}") from e
    if response.status != 200:
        text = (await response.text(errors="replace"))[:500]
        response.release()
        raise errors.OperatorError(f"the agent refused to attach ({response.status}): "
                                   f"{text.strip()}")
    return Attachment(client=client, url=url, container=container, response=response,
                      stdin_once=stdin_once)
