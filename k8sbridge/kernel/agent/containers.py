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

__all__ = ["ContainerError", "ExecutorClient"]

log = logging.getLogger(__name__)

_REPO_ROOT = str(Path(__file__).resolve().parents[3])


class ContainerError(Exception):
    """The executor supervisor could not be started or reached."""


EventSink = Callable[[dict[str, Any]], None]


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

    async def launch(self, spec: dict[str, Any]) -> None:
        """Write the spec, start the supervisor (it detaches) and attach to it."""
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.spec_path.write_text(json.dumps({**spec, **self.spec_base()}))
        env = dict(os.environ)
        env["PYTHONPATH"] = _REPO_ROOT + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "k8sbridge.kernel.agent.executor", str(self.spec_path),
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )
            _, err = await asyncio.wait_for(proc.communicate(), timeout=30.0)
        except (OSError, TimeoutError) as e:
            raise ContainerError(f"cannot start the executor: {e}") from e
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip()[-500:]
            raise ContainerError(f"the executor did not start ({proc.returncode}): {text}")
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
