"""Reads termination messages through the Mesos agents' files API, bounded and apart.

Why its own reader: the lifecycle decides *what* to read (``lifecycle.termination``: a file
in the executor's sandbox under an emptyDir, the tail of the task's log); this module reads it
over the same files API ``kubectl logs`` uses (``/files/read`` on the agent, virtual path
``/frameworks/<fid>/executors/<eid>/runs/latest/...``, which Mesos keeps attached until the
sandbox is garbage collected), so it works against real Mesos. It must never hold the status
path: a slow or unreachable agent costs one bounded read (``ATTEMPT_SECONDS`` per attempt,
``READ_SECONDS`` in all, at most ``CONCURRENT_READS`` reads at once), and what cannot be read
becomes the kubelet's own text (``Error on reading termination message from logs: ...``).
Only the last bytes that can matter are read: 4096 of the file, 2048 of each log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.lifecycle import intents, termination

__all__ = ["ATTEMPT_SECONDS", "CONCURRENT_READS", "READ_SECONDS", "Read", "TerminationReader",
           "read_all"]

log = logging.getLogger(__name__)

ATTEMPT_SECONDS = 5.0  # one attempt (its files API calls) at most
READ_SECONDS = 30.0  # every attempt of one message at most
CONCURRENT_READS = 16  # reads in flight at once (a burst of failed pods queues here)
RETRY_SECONDS = 1.0  # the first wait between attempts (doubling)


Read = Callable[[intents.ReadTerminationMessage], Awaitable[str]]


async def read_all(
    reads: list[intents.ReadTerminationMessage], *, read: Read, hold: float,
    take: Callable[[intents.ReadTerminationMessage, str], None], release: Callable[[], None],
) -> None:
    """Read each message and ``take`` it; ``release`` the write held for them once all are
    in, or after ``hold`` seconds (the rest are taken when they come: ``read`` is bounded)."""
    tasks: dict[asyncio.Task[str], intents.ReadTerminationMessage] = {
        asyncio.ensure_future(read(r)): r for r in reads}

    def taken(done: set[asyncio.Task[str]]) -> None:
        for task in done:
            if task.exception() is not None:
                log.warning("reading the termination message of %s failed: %r",
                            tasks[task].task_id, task.exception())
            else:
                take(tasks[task], task.result())

    try:
        done, rest = await asyncio.wait(tasks, timeout=hold)
        taken(done)
        release()
        if rest:
            done, _ = await asyncio.wait(rest)
            taken(done)
    finally:
        for task in tasks:
            task.cancel()


class AgentLookup(Protocol):
    @property
    def agents(self) -> Mapping[Any, mesos_agents.AgentInfo]: ...


class _Unreadable(Exception):
    """The agent could not be asked or did not answer (worth another attempt)."""


class TerminationReader:
    """``await read(intent)`` gives the message of one ended task ("" when there is none)."""

    def __init__(
        self, *, reader: mesos_agents.MesosReader, agents: AgentLookup,
        framework_id: Callable[[], str | None],
        attempt_seconds: float = ATTEMPT_SECONDS, read_seconds: float = READ_SECONDS,
        concurrent: int = CONCURRENT_READS,
    ) -> None:
        self._reader = reader
        self._agents = agents
        self._framework_id = framework_id
        self._attempt_seconds = attempt_seconds
        self._read_seconds = read_seconds
        self._slots = asyncio.Semaphore(concurrent)

    async def read(self, want: intents.ReadTerminationMessage) -> str:
        async with self._slots:
            wait = RETRY_SECONDS
            loop = asyncio.get_running_loop()
            give_up = loop.time() + self._read_seconds
            while True:
                try:
                    async with asyncio.timeout(self._attempt_seconds):
                        return await self._read_once(want)
                except (_Unreadable, TimeoutError) as e:
                    problem = str(e) or f"no answer within {self._attempt_seconds:.0f}s"
                if loop.time() + wait >= give_up:
                    log.info("termination message of task %s not read: %s", want.task_id,
                             problem)
                    if want.logs:
                        return f"Error on reading termination message from logs: {problem}"
                    return f"Error on reading termination log {want.file}: {problem}"
                await asyncio.sleep(wait)
                wait *= 2

    async def _read_once(self, want: intents.ReadTerminationMessage) -> str:
        agent = self._agents.agents.get(want.agent_id)
        fid = self._framework_id()
        if agent is None or not fid:
            raise _Unreadable(f"agent {want.agent_id} is not known")
        base = f"/frameworks/{fid}/executors/{want.executor_id}/runs/latest"
        if want.file is not None:
            data = await self._tail(agent.address, f"{base}/{want.file}",
                                    termination.MAX_FILE_BYTES)
            if data:
                return termination.file_message(data)
        if not want.logs:
            return ""
        task = f"{base}/tasks/{want.task_id}"
        stdout = await self._tail(agent.address, f"{task}/stdout", termination.MAX_LOG_BYTES)
        stderr = await self._tail(agent.address, f"{task}/stderr", termination.MAX_LOG_BYTES)
        return termination.log_message(stdout, stderr)

    async def _tail(self, address: str, path: str, most: int) -> bytes:
        """The last ``most`` bytes of a sandbox file (b"" when it does not exist)."""
        try:
            _, size = await self._reader.read_file(address, path=path, offset=-1)
            start = max(0, size - most)
            out = b""
            while start + len(out) < size:
                data, _ = await self._reader.read_file(
                    address, path=path, offset=start + len(out), length=size - start - len(out))
                if not data:
                    break
                out += data.encode("utf-8", "surrogateescape")
            return out[-most:]
        except mesos_agents.FileNotFound:
            return b""
        except mesos_agents.AgentsError as e:
            raise _Unreadable(str(e)) from e
