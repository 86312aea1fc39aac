"""One container's supervisor inside the container daemon: starts its tasks inside their
cgroups, waits for them on pidfds, kills them with a grace, and streams their events to the
agent (and to ``events.jsonl`` for a checkpointed container).

Why apart from the daemon (``executor``): the daemon is the process's plumbing (control socket,
spawn requests, daemonizing); this is what Mesos' executors do for one container -- the
command executor for one task, the DEFAULT executor for a task group (tasks start together, a
failed or killed task takes the group down; a task over the memory limit of cgroups of its own
is reported with the limitation). See ``executor`` for the wire protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import capabilities, cgroups, confinement, switchboard, views

__all__ = ["Followed", "Supervisor", "killpg", "set_task_view", "socket_address", "wait_status"]


_ATTACH_TIMEOUT_SECONDS = 30.0


@contextlib.contextmanager
def _inside(cgroup: cgroups.CgroupSet | None) -> Iterator[Any]:
    """Run the block with this daemon inside the container's cgroups; yields the pre-exec hook
    that spawns in the block must use (None normally).

    Why the daemon steps into the container's cgroups around its spawns: a child is born in its
    parent's cgroups, so the command starts confined (nothing it runs can escape the limits)
    with neither a pre-exec hook (which turns every spawn into a full fork of this growing
    daemon instead of a vfork) nor a wrapper shell (an extra exec per task). The block must not
    await, so no other container's spawn can interleave; the daemon goes back to its own
    cgroups when it ends. Where the daemon's own cgroups cannot be found (a hierarchy that is
    not a mount), the block gets the pre-exec hook instead. Joining fails with ``OSError``.
    """
    homes: list[tuple[str, str]] = []
    preexec: Any = None
    if cgroup is not None:
        try:
            homes = cgroup.homes_of_self()
        except OSError:
            preexec = cgroup.join_self
    joined: list[str] = []
    # The spawning thread alone where cgroup v1 allows it (``cgroups.join_dirs``).
    thread_only = cgroup is not None and cgroup.version == 1
    try:
        for target, home in homes:
            cgroups.join_dirs([target], thread_only=thread_only)
            joined.append(home)
        yield preexec
    finally:
        for home in joined:
            try:
                cgroups.join_dirs([home], thread_only=thread_only)
            except OSError as e:  # the next spawn retries; the container's rmdir would fail
                print(f"container daemon: cannot go back to cgroup {home}: {e}",
                      file=sys.stderr, flush=True)


_VIEW: list[confinement.CgroupView] = []  # the tasks' read-only cgroup view, once made


def set_task_view(view: confinement.CgroupView) -> None:
    """Spawn every later task in ``view`` (the daemon makes it once, at start)."""
    _VIEW[:] = [view]


@contextlib.contextmanager
def _viewed(preexec: Any) -> Iterator[Any]:
    """Spawns in the block are born in the tasks' view of the cgroup file system (read-only);
    with a pre-exec hook (the fork fallback) the child enters it after joining its cgroups."""
    if not _VIEW:
        yield preexec
        return
    view = _VIEW[0]
    if preexec is None:
        with view.entered():
            yield None
        return

    def hook() -> None:
        preexec()
        view.enter_in_child()

    yield hook


class _Child:
    """A spawned task process (the Popen of the fallback path is kept: Popen reaps its own)."""

    __slots__ = ("pid", "popen")

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen

    def wait(self) -> int:
        """Reap it; the return code as Popen gives it (``-N`` for a signal)."""
        if self.popen is not None:
            return self.popen.wait()
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_CWD: list[int] = []  # the daemon's own working directory, to come back to after a spawn


def _start(task: dict[str, Any], *, preexec: Any,
           tty: switchboard.Switchboard | None = None) -> _Child:
    """Start one task's command in its own session, stdin from /dev/null, output appended to
    its sandbox files.

    Why ``posix_spawn``: the child opens its ``stdout``/``stderr`` itself, so those two file
    creations (the daemon's largest cost per task on a busy ext4) are not the daemon's; the
    daemon steps into the task's directory around the spawn (no await in between) because
    Python's ``posix_spawn`` has no ``chdir`` action. The pre-exec-hook fallback uses Popen.
    """
    argv = [str(a) for a in task["argv"]]
    env = task["env"]
    # A task with a user or capabilities of its own switches in its child (``capabilities``):
    # posix_spawn cannot, so it is a Popen with a pre-exec hook too.
    switch = capabilities.become(task.get("user"), task.get("caps"))
    if tty is not None:  # stdin, stdout and stderr on the terminal (``switchboard``)
        return _start_on_terminal(task, preexec=preexec, switch=switch, tty=tty)
    if preexec is not None or switch is not None:
        hooked = preexec is not None  # else this thread is already where the task is born
        out_at = task.get("host_stdout", task["stdout"]) if hooked else task["stdout"]
        err_at = task.get("host_stderr", task["stderr"]) if hooked else task["stderr"]

        def hook() -> None:
            if preexec is not None:
                preexec()
            if switch is not None:
                switch()

        with open(out_at, "ab") as out, open(err_at, "ab") as err:
            proc = subprocess.Popen(
                argv, executable=task.get("executable"), env=env,
                cwd=None if hooked and "fs" in task else task["cwd"],
                stdin=_devnull(), stdout=out, stderr=err, start_new_session=True,
                preexec_fn=hook,
            )
        return _Child(proc.pid, proc)
    program = str(task.get("executable") or argv[0])
    if not _CWD:
        _CWD.append(os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    os.chdir(task["cwd"])
    try:
        if "/" not in program:  # looked up in the task's PATH, as exec*p and Popen do
            found = shutil.which(program, path=env.get("PATH", os.defpath))
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)
            program = found
        pid = os.posix_spawn(
            program, argv, env,
            file_actions=[(os.POSIX_SPAWN_DUP2, _devnull(), 0),
                          (os.POSIX_SPAWN_OPEN, 1, task["stdout"], _APPEND, 0o666),
                          (os.POSIX_SPAWN_OPEN, 2, task["stderr"], _APPEND, 0o666)],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as Popen restores them
        )
    finally:
        os.fchdir(_CWD[0])
    return _Child(pid)


def _start_on_terminal(task: dict[str, Any], *, preexec: Any, switch: Any,
                       tty: switchboard.Switchboard) -> _Child:
    def hook() -> None:
        tty.child_setup()
        if preexec is not None:
            preexec()
        if switch is not None:
            switch()

    proc = subprocess.Popen(
        [str(a) for a in task["argv"]], executable=task.get("executable"), env=task["env"],
        cwd=None if preexec is not None and "fs" in task else task["cwd"],
        stdin=tty.slave, stdout=tty.slave, stderr=tty.slave, start_new_session=True,
        preexec_fn=hook,
    )
    return _Child(proc.pid, proc)


_DEVNULL: list[int] = []


def _devnull() -> int:
    """One ``/dev/null`` descriptor for every task's stdin (not an open and close per spawn)."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


async def _wait(proc: _Child) -> int:
    """Wait for ``proc`` without a thread or a SIGCHLD handler: its pidfd becomes readable."""
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(proc.pid)
    done: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, exited)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.wait()


def socket_address(name: str) -> str:
    """The abstract-namespace address (no file, no path-length limit) for ``name``."""
    return "\0" + name


def wait_status(returncode: int) -> int:
    """A Popen return code as a POSIX wait status (what Mesos reports)."""
    return -returncode if returncode < 0 else (returncode & 0xFF) << 8


class Supervisor:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.group = bool(spec.get("group"))
        self.tasks: list[dict[str, Any]] = list(spec["tasks"])
        self.cgroup = cgroups.CgroupSet.from_raw(spec.get("cgroups"))
        self.events: list[dict[str, Any]] = []
        # The event log on disk lets a restarted agent replay what it missed: only checkpointed
        # containers outlive their agent, so only they keep one (and a pid file).
        events_path = spec.get("events_path")
        self.events_file = (
            os.fdopen(os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                              0o600), "a", encoding="utf-8")
            if events_path else None)
        self.clients: set[asyncio.StreamWriter] = set()
        self.procs: dict[str, _Child] = {}
        self.exited: dict[str, asyncio.Event] = {t["task_id"]: asyncio.Event() for t in self.tasks}
        self.killing: dict[str, bool] = {}
        self.launched = asyncio.Event()
        self.attached = asyncio.Event()  # the agent connected once: no event can be missed
        self.connected = asyncio.Event()  # an agent is connected right now
        self.checkpoint = bool(spec.get("checkpoint", False))
        self.recovery_timeout = float(spec.get("recovery_timeout", 900.0))
        self.orphan_task: asyncio.Task[None] | None = None
        self.kill_tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.default_grace = float(spec.get("kill_grace", 3.0))
        self.views = views.Views(self.tasks)  # tasks with a view of their own (``fs``)
        # the terminals of tasks launched with a TTY (``switchboard``), by task id
        self.boards: dict[str, switchboard.Switchboard] = {}

    # -- events --------------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        event = {**event, "time": time.time()}
        self.events.append(event)
        line = json.dumps(event, separators=(",", ":"))
        if self.events_file is not None:
            self.events_file.write(line + "\n")
            self.events_file.flush()
        for writer in list(self.clients):
            try:
                writer.write(line.encode() + b"\n")
            except (ConnectionError, RuntimeError):
                self.clients.discard(writer)

    def add_client(self, writer: Any) -> None:
        """``writer`` (a stream, or the agent's control connection for this container) gets
        every event so far, then each new one."""
        for event in self.events:
            writer.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.clients.add(writer)
        self.attached.set()
        self.connected.set()

    def remove_client(self, writer: Any) -> None:
        """``writer``'s agent went away: without any agent left, the tasks are orphaned."""
        if writer not in self.clients:
            return
        self.clients.discard(writer)
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()
        if not self.clients:
            self.connected.clear()
            if self.orphan_task is None or self.orphan_task.done():
                self.orphan_task = asyncio.create_task(self.orphaned())

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.add_client(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    command = json.loads(line)
                except json.JSONDecodeError:
                    self.log(f"ignored a malformed command: {line[:200]!r}")
                    continue
                if isinstance(command, dict):
                    self.command(command)
        except ConnectionError:
            return
        finally:
            self.remove_client(writer)

    async def orphaned(self) -> None:
        """The agent went away. As Mesos' executors: without checkpointing the tasks go at once;
        with it, they wait ``recovery_timeout`` for a restarted agent to reconnect."""
        timeout = self.recovery_timeout if self.checkpoint else 0.0
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
        except TimeoutError:
            if not self.clients:
                self.log(f"agent gone ({'checkpointed, ' if self.checkpoint else ''}waited "
                         f"{timeout:g}s): shutting the tasks down")
                for t in self.tasks:
                    self.spawn_kill(t["task_id"], self.default_grace)

    def command(self, command: dict[str, Any]) -> None:
        kind = command.get("type")
        grace = command.get("grace")
        grace_s = float(grace) if isinstance(grace, int | float) else self.default_grace
        if kind == "KILL":
            task_id = str(command.get("task_id", ""))
            targets = [t["task_id"] for t in self.tasks] if self.group else [task_id]
            for tid in targets:
                self.spawn_kill(tid, grace_s)
        elif kind == "SHUTDOWN":
            for t in self.tasks:
                self.spawn_kill(t["task_id"], grace_s)
        else:
            self.log(f"ignored an unknown command {kind!r}")

    def log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.spec["log_path"], "a", encoding="utf-8") as f:
                f.write(f"{stamp} executor: {text}\n")
        except OSError:
            print(f"{stamp} executor {self.spec.get('container_id')}: {text}", file=sys.stderr)

    # -- tasks ---------------------------------------------------------------------------------

    def spawn_kill(self, task_id: str, grace: float) -> None:
        if task_id not in self.exited or self.exited[task_id].is_set():
            return
        if self.killing.get(task_id):
            return
        self.killing[task_id] = True
        task = asyncio.create_task(self.kill(task_id, grace))
        self.kill_tasks.add(task)
        task.add_done_callback(self.kill_tasks.discard)

    async def kill(self, task_id: str, grace: float) -> None:
        await self.launched.wait()
        proc = self.procs.get(task_id)
        if proc is None or self.exited[task_id].is_set():
            return
        self.log(f"sending SIGTERM to task {task_id} (process group {proc.pid}), grace {grace}s")
        killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(max(0.0, grace)):
                await self.exited[task_id].wait()
        except TimeoutError:
            self.log(f"task {task_id} still running after {grace}s: SIGKILL")
            killpg(proc.pid, signal.SIGKILL)

    def spawn_all(self) -> dict[str, _Child]:
        """Start every task in one step (a group's tasks start together), inside the cgroups.

        A task that cannot be started is reported EXITED with the error; the others run.
        """
        started: dict[str, _Child] = {}
        failed: dict[str, str] = {}
        # Tasks that share the container's cgroups start together; each task with cgroups of
        # its own (``share_cgroups: false``) is born in them.
        batches: dict[tuple[int, bool], tuple[cgroups.CgroupSet | None,
                                               list[dict[str, Any]]]] = {}
        for task in self.tasks:
            where = self.cgroup.of_task(task["task_id"]) if self.cgroup is not None else None
            batches.setdefault((id(where), "fs" in task), (where, []))[1].append(task)
        for (_, own_view), (where, batch) in batches.items():
            try:
                with _inside(where) as joined, \
                        (contextlib.nullcontext(joined) if own_view else _viewed(joined)) \
                        as preexec:
                    for task in batch:
                        try:
                            # A task with a view of its own is born in it (``views``).
                            with self.views.entered(task["task_id"], preexec) as hook:
                                started[task["task_id"]] = _start(
                                    task, preexec=hook, tty=self.boards.get(task["task_id"]))
                        except (OSError, ValueError, subprocess.SubprocessError) as e:
                            failed[task["task_id"]] = str(e)
            except OSError as e:  # the container's cgroups cannot be joined
                failed.update({t["task_id"]: f"cannot join the container's cgroups: {e}"
                               for t in batch if t["task_id"] not in started})
        for task_id, why in failed.items():
            self.emit({"type": "EXITED", "task_id": task_id, "status": None,
                       "error": f"Failed to launch the command: {why}", "oom": False,
                       "killed": False})
            self.exited[task_id].set()
        for board in self.boards.values():
            board.spawned()
        for task_id, proc in started.items():
            self.procs[task_id] = proc
            self.emit({"type": "LAUNCHED", "task_id": task_id, "pid": proc.pid})
        return started

    async def watch(self, task_id: str, proc: _Child) -> None:
        returncode = await _wait(proc)
        killpg(proc.pid, signal.SIGKILL)  # leftovers of the task's process group
        # The kernel killed something in the task's cgroup for memory: it is over its limit
        # (the killed process may be a child of the task's shell, hence no rc check). Its
        # report is read now, while the cgroup is still there.
        oom: dict[str, Any] | bool = False
        if returncode != 0 and self.cgroup is not None:
            own = self.cgroup.children.get(task_id)
            if own is not None and own.oom_kills() > 0:
                oom = {**own.oom_report(), "nested": True}
            elif own is None and self.cgroup.own_oom_kills() > 0:
                oom = self.cgroup.oom_report()
                oom = oom or True
        self.emit({"type": "EXITED", "task_id": task_id, "status": wait_status(returncode),
                   "error": None, "oom": oom, "killed": bool(self.killing.get(task_id))})
        self.exited[task_id].set()
        failed = returncode != 0
        if oom and not (isinstance(oom, dict) and oom.get("nested")):
            for other in self.tasks:  # a container limitation destroys the container
                self.spawn_kill(other["task_id"], 0.0)
        elif self.group and failed:
            for other in self.tasks:
                self.spawn_kill(other["task_id"], self.default_grace)

    async def run(self) -> None:
        try:
            async with asyncio.timeout(_ATTACH_TIMEOUT_SECONDS):
                await self.attached.wait()
        except TimeoutError:
            # The agent died or gave up while launching: nobody would ever control these tasks.
            self.log("no agent attached: the tasks are not started")
            await self.fail_all("the agent never attached to the executor")
            return
        why = await self.views.start(self.cgroup.dirs() if self.cgroup is not None else []) \
            if self.views else None
        if why is not None:  # as Mesos: the container's launch failed, for all its tasks
            self.log(why)
            await self.fail_all(why)
            return
        for task in self.tasks:
            if task.get("tty") is not None:
                board = switchboard.Switchboard.for_task(task, container_socket=self.spec["socket"])
                self.boards[task["task_id"]] = board
                await board.start()
        # Every task has been spawned (or failed to) before any kill is acted upon.
        runners = [asyncio.create_task(self.watch(task_id, proc))
                   for task_id, proc in self.spawn_all().items()]
        self.launched.set()
        await asyncio.gather(*runners)
        for board in self.boards.values():
            await board.close()
        if self.kill_tasks:
            await asyncio.gather(*self.kill_tasks)
        if self.orphan_task is not None:
            self.orphan_task.cancel()
        await self.views.stop()
        if self.cgroup is not None:
            await self.remove_cgroups(self.cgroup)
        self.emit({"type": "TERMINATED"})

    async def fail_all(self, why: str) -> None:
        """No task is started: each is reported EXITED with ``why``, the container ends."""
        for t in self.tasks:
            self.emit({"type": "EXITED", "task_id": t["task_id"], "status": None,
                       "error": why, "oom": False, "killed": False})
            self.exited[t["task_id"]].set()
        await self.views.stop()
        if self.cgroup is not None:
            await self.remove_cgroups(self.cgroup)
        self.emit({"type": "TERMINATED"})

    async def remove_cgroups(self, cgroup: cgroups.CgroupSet) -> None:
        """Kill what is left in the container's cgroups and remove them (``cgroups.destroy``)."""
        why = await cgroups.destroy(cgroup)
        if why is not None:
            self.log(f"cannot remove the container's cgroups after "
                     f"{cgroups.REMOVE_SECONDS:g}s: {why}")

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(
            self.client, path=socket_address(self.spec["socket"])
        )
        if self.spec.get("pid_path"):
            Path(self.spec["pid_path"]).write_text(str(os.getpid()))

    async def serve(self) -> None:
        try:
            await self.run()
            # Let a connected agent read the last events before the socket goes away.
            for writer in list(self.clients):
                with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await writer.drain()
            if any(not isinstance(w, Followed) for w in self.clients):
                await asyncio.sleep(0.2)
        finally:
            if self.server is not None:
                self.server.close()
            for writer in list(self.clients):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.close()
            if self.events_file is not None:
                self.events_file.close()


class Followed:
    """One container's events on the agent's control connection: ``event CID JSON`` lines,
    and ``gone CID`` once the supervisor is done (stream-writer shaped for ``emit``)."""

    __slots__ = ("_closed", "_follows", "_prefix", "container_id", "writer")

    def __init__(self, writer: asyncio.StreamWriter, container_id: str,
                 follows: dict[str, tuple[Supervisor, Followed]]) -> None:
        self.writer = writer
        self.container_id = container_id
        self._prefix = f"event {container_id} ".encode()
        self._follows = follows
        self._closed = False

    def write(self, data: bytes) -> None:
        if not self._closed:
            self.writer.write(self._prefix + data)

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        """The supervisor is done with it (or the agent went away)."""
        if self._closed:
            return
        self._closed = True
        self._follows.pop(self.container_id, None)
        if not self.writer.is_closing():
            self.writer.write(f"gone {self.container_id}\n".encode())


def killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


