"""The per-container supervisor process: starts a container's tasks, reaps them, kills trees.

Why a separate process (as Mesos runs an executor per container): tasks of checkpointing
frameworks must outlive an agent restart. The agent starts ``python -m
k8sbridge.kernel.agent.executor SPEC`` which detaches into its own session and owns the task
processes; the agent talks to it over an abstract Unix socket (newline-delimited JSON) and a new
agent process reconnects to it after a restart. Every event is also appended to
``events.jsonl`` in the container's meta directory, so a container that finished while no agent
was listening is still accounted for.

Events (executor -> agent): ``LAUNCHED{task_id,pid}``, ``EXITED{task_id,status,error,oom,killed}``
(``status`` is a wait status: ``code << 8`` or the signal number), ``TERMINATED{}``.
Commands (agent -> executor): ``KILL{task_id,grace}``, ``SHUTDOWN{grace}``.

Semantics: tasks of a group start together; in a group, a task that fails or is killed takes the
others down with it (Mesos' DEFAULT executor). A kill sends SIGTERM to the task's process group,
then SIGKILL after the grace; when a task's main process exits, whatever is left of its process
group is killed, and when the container ends, whatever is left in its cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups

__all__ = ["main", "socket_address", "wait_status"]


def socket_address(name: str) -> str:
    """The abstract-namespace address (no file, no path-length limit) for ``name``."""
    return "\0" + name


def wait_status(returncode: int) -> int:
    """A Popen return code as a POSIX wait status (what Mesos reports)."""
    return -returncode if returncode < 0 else (returncode & 0xFF) << 8


class _Supervisor:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.group = bool(spec.get("group"))
        self.tasks: list[dict[str, Any]] = list(spec["tasks"])
        self.cgroup = cgroups.CgroupSet.from_raw(spec.get("cgroups"))
        self.events: list[dict[str, Any]] = []
        self.events_file = open(spec["events_path"], "a", encoding="utf-8")  # noqa: SIM115
        self.clients: set[asyncio.StreamWriter] = set()
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.exited: dict[str, asyncio.Event] = {t["task_id"]: asyncio.Event() for t in self.tasks}
        self.killing: dict[str, bool] = {}
        self.launched = asyncio.Event()
        self.attached = asyncio.Event()  # the agent connected once: no event can be missed
        self.connected = asyncio.Event()  # an agent is connected right now
        self.checkpoint = bool(spec.get("checkpoint", False))
        self.recovery_timeout = float(spec.get("recovery_timeout", 900.0))
        self.orphan_task: asyncio.Task[None] | None = None
        self.kill_tasks: set[asyncio.Task[None]] = set()
        self.default_grace = float(spec.get("kill_grace", 3.0))

    # -- events --------------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        event = {**event, "time": time.time()}
        self.events.append(event)
        line = json.dumps(event, separators=(",", ":"))
        self.events_file.write(line + "\n")
        self.events_file.flush()
        for writer in list(self.clients):
            try:
                writer.write(line.encode() + b"\n")
            except (ConnectionError, RuntimeError):
                self.clients.discard(writer)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for event in self.events:
            writer.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.clients.add(writer)
        self.attached.set()
        self.connected.set()
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
            self.clients.discard(writer)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()
            if not self.clients:
                self.connected.clear()
                if self.orphan_task is None or self.orphan_task.done():
                    self.orphan_task = asyncio.create_task(self.orphaned())

    async def orphaned(self) -> None:
        """The agent went away. As Mesos' executors: without checkpointing the tasks go at once;
        with it, they wait ``recovery_timeout`` for a restarted agent to reconnect."""
        timeout = self.recovery_timeout if self.checkpoint else 0.0
        try:
            await asyncio.wait_for(self.connected.wait(), timeout=timeout)
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
        print(f"{stamp} executor: {text}", file=sys.stderr, flush=True)

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
        _killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited[task_id].wait(), timeout=max(0.0, grace))
        except TimeoutError:
            self.log(f"task {task_id} still running after {grace}s: SIGKILL")
            _killpg(proc.pid, signal.SIGKILL)

    async def run_task(self, task: dict[str, Any]) -> None:
        task_id = task["task_id"]
        Path(task["stdout"]).parent.mkdir(parents=True, exist_ok=True)
        argv: list[str] = list(task["argv"])
        executable = task.get("executable")
        try:
            with open(task["stdout"], "ab") as out, open(task["stderr"], "ab") as err:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    executable=executable,
                    env=task["env"],
                    cwd=task["cwd"],
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=self.cgroup.join_self if self.cgroup else None,
                )
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            self.emit({"type": "EXITED", "task_id": task_id, "status": None,
                       "error": f"Failed to launch the command: {e}", "oom": False,
                       "killed": False})
            self.exited[task_id].set()
            return
        self.procs[task_id] = proc
        self.emit({"type": "LAUNCHED", "task_id": task_id, "pid": proc.pid})
        returncode = await proc.wait()
        _killpg(proc.pid, signal.SIGKILL)  # leftovers of the task's process group
        # The kernel killed something in the container for memory: the container is over its
        # limit (the killed process may be a child of the task's shell, hence no rc check).
        oom = returncode != 0 and self.cgroup is not None and self.cgroup.oom_kills() > 0
        self.emit({"type": "EXITED", "task_id": task_id, "status": wait_status(returncode),
                   "error": None, "oom": oom, "killed": bool(self.killing.get(task_id))})
        self.exited[task_id].set()
        failed = returncode != 0
        if oom:
            for other in self.tasks:  # a container limitation destroys the container
                self.spawn_kill(other["task_id"], 0.0)
        elif self.group and failed:
            for other in self.tasks:
                self.spawn_kill(other["task_id"], self.default_grace)

    async def run(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.attached.wait(), timeout=30.0)
        runners = [asyncio.create_task(self.run_task(t)) for t in self.tasks]
        # Every task has been spawned (or failed to) before any kill is acted upon.
        while not all(t["task_id"] in self.procs or self.exited[t["task_id"]].is_set()
                      for t in self.tasks):
            await asyncio.sleep(0.005)
        self.launched.set()
        await asyncio.gather(*runners)
        if self.kill_tasks:
            await asyncio.gather(*self.kill_tasks)
        if self.orphan_task is not None:
            self.orphan_task.cancel()
        if self.cgroup is not None:
            for pid in self.cgroup.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not self.cgroup.pids():
                    break
                await asyncio.sleep(0.02)
            self.cgroup.remove()
        self.emit({"type": "TERMINATED"})


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _serve(spec: dict[str, Any], ready_fd: int | None) -> int:
    supervisor = _Supervisor(spec)
    server = await asyncio.start_unix_server(
        supervisor.client, path=socket_address(spec["socket"])
    )
    Path(spec["pid_path"]).write_text(str(os.getpid()))
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    try:
        await supervisor.run()
        # Let a connected agent read the last events before the socket goes away.
        for writer in list(supervisor.clients):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await asyncio.wait_for(writer.drain(), timeout=2.0)
        if supervisor.clients:
            await asyncio.sleep(0.2)
    finally:
        server.close()
        supervisor.events_file.close()
    return 0


def _become_supervisor(spec: dict[str, Any], ready_fd: int) -> None:
    """In a freshly forked child: detach, point stdio at the log, supervise, never return."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the agent's terminal is not ours
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    log_fd = os.open(spec["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    try:
        code = asyncio.run(_serve(spec, ready_fd))
    except BaseException as e:  # the supervisor's log is the only place left to tell
        print(f"executor failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        code = 1
    os._exit(code)


def spawn_detached(spec_path: str) -> int:
    """Double-fork a supervisor for ``spec_path``; returns its pid once it listens.

    The intermediate child exits at once, so the supervisor is nobody's child here (it is
    re-parented to init and outlives us); raises ``OSError`` when it does not come up.
    """
    spec = json.loads(Path(spec_path).read_text())
    read_fd, write_fd = os.pipe()
    pid_r, pid_w = os.pipe()
    first = os.fork()
    if first == 0:  # intermediate
        os.close(read_fd)
        os.close(pid_r)
        second = os.fork()
        if second == 0:
            os.close(pid_w)
            _become_supervisor(spec, write_fd)
        os.write(pid_w, str(second).encode())
        os._exit(0)
    os.close(write_fd)
    os.close(pid_w)
    os.waitpid(first, 0)
    try:
        pid = int(os.read(pid_r, 32) or b"0")
        ok = os.read(read_fd, 1) == b"1"
    finally:
        os.close(pid_r)
        os.close(read_fd)
    if not ok:
        raise OSError(f"the supervisor for {spec_path} did not come up (see its log)")
    return pid


def zygote() -> int:
    """Serve spawn requests: one spec path per stdin line -> ``ok PID`` or ``error TEXT``.

    Why: a new Python process per container costs ~100 ms of interpreter start and imports;
    forking this warmed-up process costs a few milliseconds. The agent keeps one zygote.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            reply = f"ok {spawn_detached(path)}"
        except (OSError, ValueError, KeyError) as e:
            reply = "error " + f"{type(e).__name__}: {e}".replace("\n", " ")
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    """``executor --zygote`` (spawn server) or ``executor SPEC_PATH`` (one supervisor)."""
    if len(argv) == 2 and argv[1] == "--zygote":
        return zygote()
    if len(argv) != 2:
        print("usage: python -m k8sbridge.kernel.agent.executor (--zygote | SPEC_PATH)",
              file=sys.stderr)
        return 2
    try:
        spawn_detached(argv[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"executor: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
