"""The agent's side of an executor supervisor: launch it, follow its events, send it commands.

Why a thin client: the supervisor process (``executor.py``) owns the task processes so that they
can outlive the agent; this class only starts it, reconnects to it (also from a new agent process
after a restart), replays its event log, and tells the agent once the container is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import executor as executor_mod

__all__ = ["ContainerError", "ExecutorClient", "Zygote"]

log = logging.getLogger(__name__)

_REPO_ROOT = str(Path(__file__).resolve().parents[3])


class ContainerError(Exception):
    """The executor supervisor could not be started or reached."""


EventSink = Callable[[dict[str, Any]], None]


class Zygote:
    """A warmed-up ``executor --zygote`` process that forks supervisors on request.

    Requests are served one at a time by a single worker task (the zygote answers in order).
    """

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._queue: asyncio.Queue[tuple[Path, asyncio.Future[int]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def _start(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PYTHONPATH"] = _REPO_ROOT + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "k8sbridge.kernel.agent.executor", "--zygote",
                env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise ContainerError(f"cannot start the executor zygote: {e}") from e

    async def spawn(self, spec_path: Path) -> int:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="executor-zygote")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((spec_path, done))
        return await done

    async def _work(self) -> None:
        while True:
            spec_path, done = await self._queue.get()
            try:
                done.set_result(await self._request(spec_path))
            except ContainerError as e:
                if not done.done():
                    done.set_exception(e)

    async def _request(self, spec_path: Path) -> int:
        for attempt in (1, 2):  # a dead zygote is replaced once
            proc = self._proc
            if proc is None or proc.returncode is not None:
                proc = self._proc = await self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(str(spec_path).encode() + b"\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=30.0)
            except (ConnectionError, TimeoutError) as e:
                await self._kill(proc)
                if attempt == 2:
                    raise ContainerError(f"the executor zygote failed: {e}") from e
                continue
            if not line:
                await self._kill(proc)
                if attempt == 2:
                    raise ContainerError("the executor zygote exited")
                continue
            text = line.decode(errors="replace").strip()
            if text.startswith("ok "):
                return int(text[3:])
            raise ContainerError(f"the executor did not start: {text.removeprefix('error ')}")
        raise ContainerError("the executor zygote failed")

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._proc is proc:
            self._proc = None

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5.0)
        except TimeoutError:
            await self._kill(proc)


class ExecutorClient:
    """Connection to one container's supervisor. ``on_event`` gets every event, possibly twice
    (replays after reconnects), and finally ``{"type": "GONE"}`` once the supervisor is gone."""

    def __init__(self, *, container_id: str, meta_dir: Path, on_event: EventSink) -> None:
        self.container_id = container_id
        self.meta_dir = meta_dir
        self.socket_name = f"k8sbridge-executor-{container_id}"
        self._on_event = on_event
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.gone = asyncio.Event()

    @property
    def spec_path(self) -> Path:
        return self.meta_dir / "spec.json"

    @property
    def events_path(self) -> Path:
        return self.meta_dir / "events.jsonl"

    def spec_base(self) -> dict[str, Any]:
        return {
            "socket": self.socket_name,
            "events_path": str(self.events_path),
            "pid_path": str(self.meta_dir / "executor.pid"),
        }

    async def launch(self, spec: dict[str, Any], *, zygote: Zygote) -> None:
        """Write the spec, have the zygote start the supervisor (detached) and attach to it."""
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.spec_path.write_text(json.dumps({**spec, **self.spec_base()}))
        await zygote.spawn(self.spec_path)
        if not await self.attach():
            if not self.events_path.exists():
                raise ContainerError("the executor started but cannot be reached")
            self.replay_log()  # it already ran and left (should not happen: it waits for us)

    async def attach(self) -> bool:
        """Connect to a running supervisor; False when it is not there (anymore)."""
        try:
            reader, writer = await asyncio.open_unix_connection(
                executor_mod.socket_address(self.socket_name)
            )
        except OSError:
            return False
        self._writer = writer
        self._reader_task = asyncio.create_task(
            self._follow(reader), name=f"executor {self.container_id}"
        )
        return True

    def replay_log(self) -> None:
        """Feed the events the supervisor left on disk (it is gone), then GONE."""
        for event in _read_events(self.events_path):
            self._on_event(event)
        self._finish()

    async def _follow(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("executor %s sent a malformed event", self.container_id)
                    continue
                if isinstance(event, dict):
                    self._on_event(event)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            log.info("executor %s connection ended: %s", self.container_id, e)
        finally:
            self._close_writer()
        # The supervisor is gone (or we were detached): whatever it logged is on disk.
        if not self._detaching:
            for event in _read_events(self.events_path):
                self._on_event(event)
            self._finish()

    _detaching = False

    def _finish(self) -> None:
        if not self.gone.is_set():
            self.gone.set()
            self._on_event({"type": "GONE"})

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def send(self, command: dict[str, Any]) -> bool:
        writer = self._writer
        if writer is None:
            return False
        try:
            writer.write(json.dumps(command).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, RuntimeError) as e:
            log.info("executor %s unreachable: %s", self.container_id, e)
            return False
        return True

    async def kill(self, *, task_id: str, grace: float) -> bool:
        return await self.send({"type": "KILL", "task_id": task_id, "grace": grace})

    async def shutdown(self, *, grace: float) -> bool:
        return await self.send({"type": "SHUTDOWN", "grace": grace})

    async def detach(self) -> None:
        """Drop the connection but leave the supervisor and its tasks running (agent restart)."""
        self._detaching = True
        task, self._reader_task = self._reader_task, None
        self._close_writer()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _read_events(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if isinstance(event, dict):
                out.append(event)
    return out
