"""Nested container sessions (``LAUNCH_NESTED_CONTAINER_SESSION``): a command run inside a
running task's container -- its mount, pid and (on a CNI network) network namespaces, its root,
working directory, cgroups, user and environment -- with its output streamed to the caller and
its input fed by ``ATTACH_CONTAINER_INPUT``, as Mesos' DEBUG nested containers and I/O
switchboard do it (``kubectl exec``, ``dcos task exec``).

Why a process of the agent (``nsenter`` into the task's namespaces, ``checks.in_view``) rather
than one of the container daemon: a session lives only as long as its HTTP connection (Mesos
destroys the container when the client goes away), so nothing of it has to survive an agent
restart; the agent owns the connection and so the process. The process joins the task's
cgroups before it enters the view, so what it uses counts as the container's.

What is kept: a live session by its container id (``find``), and the wait status of the last
ended ones (``status_of``) so that ``WAIT_NESTED_CONTAINER`` answers after the output stream has
ended, as the Mesos containerizer keeps a nested container's termination.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import termios
from collections.abc import Callable, Mapping
from typing import Any

from k8sbridge.kernel.agent import checks
from k8sbridge.kernel.agent.state import Container, Task

__all__ = ["HEARTBEAT_SECONDS", "Session", "SessionError", "Sessions", "cgroup_procs"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0  # the I/O switchboard's heartbeat on output connections
READ_CHUNK = 64 * 1024
KEPT_TERMINATIONS = 1024
DRAIN_SECONDS = 1.0  # output still read after the command exited (what it left in pipes)


class SessionError(Exception):
    """A session cannot be launched or found; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def cgroup_procs(pid: int, *, root: str = "/sys/fs/cgroup") -> list[str]:
    """The ``cgroup.procs`` files of every cgroup ``pid`` is in (v1 hierarchies and v2)."""
    out: list[str] = []
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        mount = root if not controllers else f"{root}/{controllers.removeprefix('name=')}"
        procs = f"{mount}{path.rstrip('/')}/cgroup.procs"
        if os.path.exists(procs):
            out.append(procs)
    return out


_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" 2>/dev/null; shift; done; shift; exec "$@"'


_SETSID = ("/usr/bin/setsid", "/bin/setsid", "/usr/sbin/setsid", "/sbin/setsid")


def _in_view(pid: int, candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` that the view of the process ``pid`` has."""
    for path in candidates:
        if os.access(f"/proc/{pid}/root{path}", os.X_OK):
            return path
    return None


_TIOCGPTN, _TIOCSPTLCK = 0x80045430, 0x40045431


def _open_pty(pid: int | None) -> tuple[int, int]:
    """A terminal pair from the devpts of the view of ``pid`` (so that the command finds its
    terminal under the view's ``/dev/pts``); from the agent's own without one."""
    if pid is not None:
        root = f"/proc/{pid}/root/dev/pts"
        try:
            master = os.open(f"{root}/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return os.openpty()
        try:
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
            number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
            slave = os.open(f"{root}/{number}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            os.close(master)
            return os.openpty()
        return master, slave
    return os.openpty()


def _record(body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return b"%d\n%s" % (len(data), data)


def data_record(kind: str, data: bytes) -> bytes:
    """A v1 ``ProcessIO`` DATA record (``kind`` STDOUT or STDERR), RecordIO-framed."""
    return _record({"type": "DATA", "data": {"type": kind,
                                             "data": base64.b64encode(data).decode("ascii")}})


def heartbeat_record() -> bytes:
    return _record({"type": "CONTROL", "control": {"type": "HEARTBEAT", "heartbeat": {
        "interval": {"nanoseconds": int(HEARTBEAT_SECONDS * 1e9)}}}})


def _argv(command: Mapping[str, Any]) -> list[str]:
    value = str(command.get("value", ""))
    if command.get("shell", True):
        return ["/bin/sh", "-c", value]
    args = [str(a) for a in command.get("arguments") or []]
    return args or [value]


def _set_window(fd: int, rows: int, columns: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class Session:
    """One running session: its process, its output queue (RecordIO records, None at the
    end), its input end."""

    def __init__(self, *, container_id: str, parent: str, parent_id: dict[str, Any],
                 tty: bool) -> None:
        self.container_id = container_id
        self.parent = parent  # the executor container it lives in
        self.parent_id = parent_id  # the ContainerID it was launched under
        self.tty = tty
        self.output: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None  # the pty's master end (a TTY session)
        self.input_attached = False
        self.done = asyncio.Event()
        self.status: int | None = None
        self._stdin_writer: asyncio.StreamWriter | None = None
        self._runner: asyncio.Task[None] | None = None

    async def write_input(self, data: bytes) -> None:
        """Bytes for the command's stdin (a closed input is ignored)."""
        if self.done.is_set():
            return
        if self.master is not None:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self.master, view)
                except BlockingIOError:
                    await _ready(self.master, write=True)
                    continue
                except OSError:
                    return
                view = view[written:]
            return
        writer = self.proc.stdin if self.proc is not None else None
        if writer is None or writer.is_closing():
            return
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError):
            return

    async def close_input(self) -> None:
        """End of input: EOF on the pipe (on a TTY, the terminal's end-of-file character)."""
        if self.master is not None:
            await self.write_input(b"\x04")
            return
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def resize(self, rows: int, columns: int) -> None:
        if self.master is not None:
            _set_window(self.master, rows, columns)

    def kill(self) -> None:
        """SIGKILL everything of the session (``_members_of``)."""
        if self.proc is None or self.proc.returncode is not None and self.done.is_set():
            return
        leader = self.proc.pid
        for pid in _members_of(leader):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


async def _ready(fd: int, *, write: bool) -> None:
    """Until ``fd`` is writable (or readable)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, settle)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


def _members_of(leader: int) -> list[int]:
    """The session's processes: the leader's descendants, and every process of a session one
    of them leads (a terminal session gets a session of its own inside the pid namespace,
    whose orphans are re-parented to the namespace's init)."""
    table: dict[int, tuple[int, int]] = {}  # pid -> (parent, session)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 3:
            table[int(name)] = (int(fields[1]), int(fields[3]))
    tree = {leader}
    grew = True
    while grew:
        grew = False
        for pid, (parent, sid) in table.items():
            if pid not in tree and (parent in tree or sid in tree):
                tree.add(pid)
                grew = True
    return [leader, *sorted(tree - {leader})]


class Sessions:
    """The agent's live sessions and the wait statuses of ended ones."""

    def __init__(self, *, alive: Callable[[str], bool]) -> None:
        self._alive = alive  # is the parent container (by id) still running
        self._live: dict[str, Session] = {}
        self._ended: collections.OrderedDict[str, int] = collections.OrderedDict()

    def find(self, container_id: str) -> Session | None:
        return self._live.get(container_id)

    def status_of(self, container_id: str) -> int | None:
        return self._ended.get(container_id)

    def live(self) -> list[Session]:
        return list(self._live.values())

    def known(self, container_id: str) -> bool:
        return container_id in self._live or container_id in self._ended

    async def launch(self, *, container_id: str, parent_id: dict[str, Any],
                     container: Container, task: Task, command: Mapping[str, Any], tty: bool,
                     window: tuple[int, int] | None) -> Session:
        """Start the command in ``task``'s view; ``SessionError`` if it cannot be."""
        if self.known(container_id):
            raise SessionError(400, f"Nested container {container_id} already exists")
        if task.terminal or task.pid is None:
            raise SessionError(400, f"Parent container {container.container_id} is not "
                                    "running a task")
        session = Session(container_id=container_id, parent=container.container_id,
                          parent_id=parent_id, tty=tty)
        self._live[container_id] = session
        try:
            await self._start(session, task=task, command=command, window=window)
        except BaseException:
            self._live.pop(container_id, None)
            raise
        session._runner = asyncio.create_task(self._run(session), name=f"session-{container_id}")
        return session

    async def _start(self, session: Session, *, task: Task, command: Mapping[str, Any],
                     window: tuple[int, int] | None) -> None:
        assert task.pid is not None
        view = task.view
        cwd = str(view["cwd"]) if view is not None else task.cwd
        env = dict(view["env"]) if view is not None else dict(task.env)
        for var in (command.get("environment") or {}).get("variables") or []:
            if isinstance(var, dict) and "name" in var:
                env[str(var["name"])] = str(var.get("value", ""))
        user = task.user
        prefix = checks.in_view(task.pid, cwd=cwd, user=user, net=task.network is not None)
        if view is None:  # a task on the host: its sandbox, as its user
            prefix = ["nsenter", f"--wd={cwd}"]
            if user is not None:
                prefix += [f"--setgid={int(user['gid'])}", f"--setuid={int(user['uid'])}"]
            prefix.append("--")
        assert prefix is not None
        # No pre-exec hook (a fork of a threaded agent must exec at once): ``setsid`` makes
        # it a session of its own and the shell joins the task's cgroups before it enters the
        # view. A terminal becomes the controlling one of a session made inside the view (by
        # its ``setsid``, if it has one: else the command runs without job control), so that
        # its process groups are ones the command can see.
        inner, top = _argv(command), ["setsid"]
        if session.tty and view is None:
            top.append("-c")
        elif session.tty:  # its own session with the terminal, inside the pid namespace
            setsid = _in_view(task.pid, _SETSID)
            if setsid is not None:
                inner = [setsid, "-c", *inner]
        argv = [*top, "/bin/sh", "-c", _JOIN, "join", *cgroup_procs(task.pid), "--",
                *prefix, *inner]
        slave: int | None = None
        if session.tty:
            session.master, slave = _open_pty(task.pid if view is not None else None)
            if window is not None:
                _set_window(session.master, *window)
            os.set_blocking(session.master, False)
        stdio: dict[str, Any] = (
            {"stdin": slave, "stdout": slave, "stderr": slave} if slave is not None else
            {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE,
             "stderr": asyncio.subprocess.PIPE})
        try:
            session.proc = await asyncio.create_subprocess_exec(
                *argv, env=env, **stdio)
        except OSError as e:
            if session.master is not None:
                os.close(session.master)
            raise SessionError(500, f"Failed to launch nested container: {e}") from e
        finally:
            if slave is not None:
                os.close(slave)

    async def _run(self, session: Session) -> None:
        """Pump output until the command ends and its output is read, then record its status
        and end the stream."""
        assert session.proc is not None
        proc = session.proc
        pumps: list[asyncio.Task[None]] = []
        if session.master is not None:
            pumps.append(asyncio.create_task(self._pump_fd(session, session.master)))
        else:
            for reader, kind in ((proc.stdout, "STDOUT"), (proc.stderr, "STDERR")):
                if reader is not None:
                    pumps.append(asyncio.create_task(self._pump(session, reader, kind)))
        watch = asyncio.create_task(self._watch_parent(session))
        try:
            code = await proc.wait()
            _done, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
            session.kill()  # what it left behind (background jobs holding the output open)
            for pump in pending:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            session.status = code << 8 if code >= 0 else -code  # a raw wait status, as Mesos
        finally:
            watch.cancel()
            if session.master is not None:
                with contextlib.suppress(OSError):
                    os.close(session.master)
            self._end(session)

    def _end(self, session: Session) -> None:
        self._live.pop(session.container_id, None)
        if session.status is not None:
            self._ended[session.container_id] = session.status
            while len(self._ended) > KEPT_TERMINATIONS:
                self._ended.popitem(last=False)
        session.done.set()
        with contextlib.suppress(asyncio.QueueFull):
            session.output.put_nowait(None)

    async def _watch_parent(self, session: Session) -> None:
        """Mesos destroys nested containers with their parent: so does this."""
        while True:
            await asyncio.sleep(1.0)
            if not self._alive(session.parent):
                log.info("session %s: its container %s ended", session.container_id,
                         session.parent)
                session.kill()
                return

    async def _pump(self, session: Session, reader: asyncio.StreamReader, kind: str) -> None:
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                return
            await session.output.put(data_record(kind, data))

    async def _pump_fd(self, session: Session, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                await _ready(fd, write=False)
                continue
            except OSError:  # EIO: every slave end is closed
                return
            if not data:
                return
            await session.output.put(data_record("STDOUT", data))

    def destroy(self, session: Session) -> None:
        """The caller went away: kill the session (its runner records the status)."""
        session.kill()

    async def close(self) -> None:
        """Agent shutdown: kill every session and wait for their ends."""
        sessions = list(self._live.values())
        for session in sessions:
            session.kill()
        for session in sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await session.done.wait()
