"""The agent's side of an executor supervisor: launch it, follow its events, send it commands.

Why a thin client: the supervisor process (``executor.py``) owns the task processes so that they
can outlive the agent; this class only starts it, reconnects to it (also from a new agent process
after a restart), replays its event log, and tells the agent once the container is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import reaping, supervisor
from k8sbridge.kernel.agent.errors import ContainerError

__all__ = ["ContainerError", "Daemon", "ExecutorClient", "Spawned", "socket_name"]

log = logging.getLogger(__name__)

_REPO_ROOT = str(Path(__file__).resolve().parents[3])
_BOOT_TIMEOUT = 30.0  # a new supervisor must listen within this (generous under load)


EventSink = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Spawned:
    """The daemon's answer to a spawn request: its pid and the cgroups it made (if asked to)."""

    pid: int | None
    cgroups: dict[str, object] | None


class Daemon:
    """The agent's connection to its container daemon (``executor.py``), started on demand.

    Spawn requests are sent by a single worker task, pipelined: whatever is queued goes out in
    one write and the daemon answers in order. The daemon outlives the agent (it is nobody's
    child here) and a restarted agent with the same work dir finds it again by name.
    """

    def __init__(self, *, work_dir: Path, log_path: Path) -> None:
        digest = hashlib.sha1(str(work_dir).encode()).hexdigest()[:16]
        self.name = f"k8sbridge-containers-{digest}"
        self._log_path = log_path
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[Spawned | None]]] = \
            asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # The control connection also carries the events of the containers it follows: one
        # reader task sorts answers (in request order) from events.
        self._reader: asyncio.Task[None] | None = None
        self._answers: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._followers: dict[str, ExecutorClient] = {}

    def follow(self, client: ExecutorClient) -> None:
        """Route the events of ``client``'s container (spawned with ``follow``) to it."""
        self._followers[client.container_id] = client

    def unfollow(self, container_id: str) -> None:
        self._followers.pop(container_id, None)

    async def command(self, container_id: str, command: dict[str, Any]) -> bool:
        """Send a followed container's supervisor a command; False without a connection."""
        conn = self._conn
        if conn is None:
            return False
        line = json.dumps({**command, "container_id": container_id}, separators=(",", ":"))
        try:
            conn[1].write(b"!" + line.encode() + b"\n")
            await conn[1].drain()
        except (ConnectionError, RuntimeError) as e:
            log.info("container daemon unreachable: %s", e)
            return False
        return True

    async def _read(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        reader = conn[0]
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line.startswith(b"event "):
                    _, cid, body = line.split(b" ", 2)
                    follower = self._followers.get(cid.decode(errors="replace"))
                    if follower is not None:
                        follower.event_line(body)
                elif line.startswith(b"gone "):
                    follower = self._followers.pop(line[5:].strip().decode(errors="replace"),
                                                   None)
                    if follower is not None:
                        follower.supervisor_gone()
                elif self._answers:
                    answer = self._answers.popleft()
                    if not answer.done():
                        answer.set_result(line)
                else:
                    log.warning("the container daemon sent an unexpected line: %r", line[:200])
        except (ConnectionError, ValueError) as e:  # ValueError: a line over the limit
            log.info("container daemon connection ended: %s", e)
        if self._conn is conn:
            self._drop()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_unix_connection(supervisor.socket_address(self.name))
        except OSError:
            return None

    async def _ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is not None:
            return self._conn
        conn = await self._connect()
        if conn is None:
            await self._launch()
            conn = await self._connect()
        if conn is None:
            raise ContainerError("the container daemon started but cannot be reached")
        self._conn = conn
        self._reader = asyncio.create_task(self._read(conn), name="container-daemon-read")
        return conn

    async def _launch(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _REPO_ROOT + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "k8sbridge.kernel.agent.executor", "--daemon", self.name,
                str(self._log_path), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise ContainerError(f"cannot start the container daemon: {e}") from e
        try:
            async with asyncio.timeout(60.0):
                _, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError) as e:
            # Never leave the launcher behind un-reaped (it only forks and exits).
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await reaping.wait_killed(proc)
            if isinstance(e, asyncio.CancelledError):
                raise
            raise ContainerError(f"cannot start the container daemon: {e}") from e
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip()[-500:]
            raise ContainerError(f"the container daemon did not start ({proc.returncode}); "
                                 f"see {self._log_path}: {text}")

    async def running_containers(self) -> dict[str, list[str]] | None:
        """The containers a running daemon supervises (id -> task ids), on a connection of
        its own; None when no daemon runs (one is not started for this)."""
        conn = await self._connect()
        if conn is None:
            return None
        reader, writer = conn
        try:
            writer.write(b"?list\n")
            await writer.drain()
            async with asyncio.timeout(10.0):
                line = await reader.readline()
        except (ConnectionError, TimeoutError, ValueError) as e:
            log.warning("cannot list the container daemon's containers: %s", e)
            return None
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await writer.wait_closed()
        if not line.startswith(b"containers "):
            log.warning("the container daemon answered ?list with %r", line[:200])
            return None
        try:
            listing = json.loads(line[len(b"containers "):])
        except ValueError:
            return None
        if not isinstance(listing, dict):
            return None
        return {str(k): [str(t) for t in v] if isinstance(v, list) else []
                for k, v in listing.items()}

    async def warm_up(self) -> None:
        """Start (or find) the daemon now, so the first launch does not pay for it."""
        with contextlib.suppress(ContainerError):
            await self.spawn(None)

    async def spawn(self, spec: dict[str, Any] | None) -> Spawned | None:
        """Have the daemon start a supervisor for ``spec`` (None: only make sure it runs)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="container-daemon")
        done: asyncio.Future[Spawned | None] = asyncio.get_running_loop().create_future()
        line = b"" if spec is None else json.dumps(spec, separators=(",", ":")).encode() + b"\n"
        await self._queue.put((line, done))
        return await done

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                pids = await self._request([line for line, _ in batch])
            except ContainerError as e:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            for (_, done), outcome in zip(batch, pids, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, ContainerError):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    async def _request(self, lines: list[bytes]) -> list[Spawned | None | ContainerError]:
        """Send the requests in one write and read the answers (in order); empty lines are
        warm-ups that only make sure the daemon runs."""
        out: list[Spawned | None | ContainerError] = [None] * len(lines)
        todo = [i for i, line in enumerate(lines) if line]
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):  # a vanished daemon is replaced once
            _, writer = await self._ensure()
            if not todo:
                return out
            answers = [loop.create_future() for _ in todo]
            self._answers.extend(answers)
            try:
                writer.write(b"".join(lines[i] for i in todo))
                await writer.drain()
                while todo:
                    async with asyncio.timeout(30.0):  # per answer
                        answer = await answers[0]
                    answers.pop(0)
                    out[todo.pop(0)] = _outcome(answer)
            except (ConnectionError, TimeoutError) as e:
                self._drop()
                if attempt == 2:
                    raise ContainerError(f"the container daemon failed: {e}") from e
        return out

    def _drop(self, *, notify: bool = True) -> None:
        """Forget the control connection: pending answers fail, and the containers it
        followed go back to their own sockets (``notify``)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                conn[1].close()
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        answers, self._answers = self._answers, collections.deque()
        for answer in answers:
            if not answer.done():
                answer.set_exception(ConnectionError("the container daemon went away"))
        followers, self._followers = self._followers, {}
        if notify:
            for follower in followers.values():
                follower.connection_lost()

    async def close(self) -> None:
        """Drop the control connection; the daemon exits once its containers are done."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        conn = self._conn
        reader = self._reader
        self._drop(notify=False)  # the agent is stopping: nobody re-attaches
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if conn is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn[1].wait_closed()


def socket_name(container_id: str) -> str:
    """The abstract socket name of a container's supervisor."""
    return f"k8sbridge-executor-{container_id}"


class ExecutorClient:
    """Connection to one container's supervisor. ``on_event`` gets every event, possibly twice
    (replays after reconnects), and finally ``{"type": "GONE"}`` once the supervisor is gone."""

    def __init__(self, *, container_id: str, meta_dir: Path, on_event: EventSink) -> None:
        self.container_id = container_id
        self.meta_dir = meta_dir
        self.socket_name = socket_name(container_id)
        self._on_event = on_event
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._daemon: Daemon | None = None  # set while followed on its control connection
        self._held: list[bytes] | None = None  # while launching: the events that came
        self._gone_while_launching = False  # the supervisor ended while they were held
        self.gone = asyncio.Event()

    @property
    def events_path(self) -> Path:
        return self.meta_dir / "events.jsonl"

    async def launch(self, spec: dict[str, Any], *, daemon: Daemon, checkpoint: bool,
                     on_spawned: Callable[[Spawned | None], None]) -> None:
        """Have the daemon start a supervisor for ``spec`` and attach to it.

        ``on_spawned`` gets the daemon's answer before any event of the container: the
        container's first events can reach the control connection right behind the answer,
        and are held here until the caller has taken the answer in (the executor's pid and
        cgroups belong in the statuses those events become).

        Only a checkpointed container gets files in its meta directory (event log, pid): no
        other container outlives this agent, as in Mesos.
        """
        spec = {**spec, "socket": self.socket_name, "follow": True}
        if checkpoint:
            self.meta_dir.mkdir(parents=True, exist_ok=True)
            spec["events_path"] = str(self.events_path)
            spec["pid_path"] = str(self.meta_dir / "executor.pid")
        self._daemon = daemon
        daemon.follow(self)
        self._held = []  # launching
        try:
            spawned = await daemon.spawn(spec)
        except BaseException:
            self._daemon = None
            daemon.unfollow(self.container_id)
            raise
        finally:
            held, self._held = self._held, None
        on_spawned(spawned)
        for body in held or ():
            self.event_line(body)
        if self._gone_while_launching:  # it ran and ended before we took the answer in
            self._gone_while_launching = False
            if not self._detaching:
                self.replay_log()
            return
        if self.following:
            return  # its events come on the control connection
        # The control connection went away meanwhile: attach through the container's socket.
        if not await self.attach(wait=_BOOT_TIMEOUT):
            if not self.events_path.exists():
                raise ContainerError("the executor started but cannot be reached")
            self.replay_log()  # it already ran and left (should not happen: it waits for us)

    def event_line(self, body: bytes) -> None:
        """One event line of this container (control connection or its own socket)."""
        if self._held is not None:  # launching: after the daemon's answer (see ``launch``)
            self._held.append(body)
            return
        try:
            event = json.loads(body)
        except json.JSONDecodeError:
            log.warning("executor %s sent a malformed event", self.container_id)
            return
        if isinstance(event, dict):
            self._on_event(event)

    def supervisor_gone(self) -> None:
        """The supervisor ended (after its last event on the control connection).

        While launching, its events are still held (``launch``): GONE must come after them, or
        a task that ran and ended before the daemon's answer was taken in would be reported
        failed ("Executor terminated") before its own exit was seen."""
        self._daemon = None
        if self._held is not None:
            self._gone_while_launching = True
            return
        if not self._detaching:
            self.replay_log()

    def connection_lost(self) -> None:
        """The control connection went away: follow the container on its own socket."""
        self._daemon = None
        if self._held is None and not self._detaching:  # not launching (see ``launch``)
            task = asyncio.ensure_future(self._reattach())
            _REATTACHING.add(task)
            task.add_done_callback(_REATTACHING.discard)

    async def _reattach(self) -> None:
        if not await self.attach():
            self.replay_log()

    async def attach(self, *, wait: float = 0.0) -> bool:
        """Connect to a supervisor; False when it is not there (retrying for ``wait`` seconds
        while a just-forked one is still booting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = 0.002
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(
                    supervisor.socket_address(self.socket_name)
                )
                break
            except OSError:
                if loop.time() >= deadline:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
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
                self.event_line(line)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            log.info("executor %s connection ended: %s", self.container_id, e)
        finally:
            self._close_writer()
        # The supervisor is gone (or we were detached): whatever it logged is on disk.
        if not self._detaching:
            self.replay_log()

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

    @property
    def following(self) -> bool:
        """Its events come on the daemon's control connection."""
        return self._daemon is not None

    @property
    def attached(self) -> bool:
        return self._daemon is not None or self._writer is not None

    async def send(self, command: dict[str, Any]) -> bool:
        if self._daemon is not None:
            return await self._daemon.command(self.container_id, command)
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
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            daemon.unfollow(self.container_id)
        task, self._reader_task = self._reader_task, None
        self._close_writer()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_REATTACHING: set[asyncio.Future[None]] = set()  # strong references to re-attach tasks


def _outcome(answer: bytes) -> Spawned | ContainerError:
    """The daemon's answer to one spawn request: ``ok PID CGROUPS`` (older: ``ok``)."""
    text = answer.decode(errors="replace").strip()
    if text != "ok" and not text.startswith("ok "):
        return ContainerError(f"the executor did not start: {text.removeprefix('error ')}")
    parts = text.split(" ", 2)
    pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    made: Any = None
    if len(parts) > 2:
        with contextlib.suppress(json.JSONDecodeError):
            made = json.loads(parts[2])
    return Spawned(pid=pid, cgroups=made if isinstance(made, dict) else None)


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
