"""The container daemon: one process per agent that supervises every container's tasks.

Why a separate process (as Mesos runs executors apart from the agent): tasks of checkpointing
frameworks must outlive an agent restart. The agent starts ``python -m
k8sbridge.kernel.agent.executor --daemon NAME LOG`` once; it detaches into its own session and
serves spawn requests on the abstract Unix socket ``NAME`` (one container spec per line, as JSON
or as the path of a JSON file -> ``ok DAEMON_PID`` or ``error TEXT``). Each container gets a
supervisor inside the daemon with its own abstract socket (newline-delimited JSON) that the
agent -- or a restarted agent -- attaches to. Every event of a checkpointed container is also
appended to ``events.jsonl`` in its meta directory, so a container that finished while no agent
was listening is still accounted for (other containers do not outlive their agent, so they keep
no files outside the sandbox). Why one daemon and not a process per container: forking a Python
process per task costs ~10 ms and megabytes; spawning a task from the daemon costs what
``vfork+exec`` of the command costs (the daemon steps into the container's cgroups around the
spawns, so the command is born confined; see ``_inside``), and its exit is awaited on a pidfd.

A spawn request with ``"follow": true`` makes the requesting control connection the
container's first client: its events come back on that connection as ``event CID JSON`` lines,
then ``gone CID`` when the supervisor ends, and the agent sends it commands there as ``!JSON``
lines (``{"container_id": CID, ...command}``, never answered). Why: a connection (connect,
accept, two stream objects, a reader task on each side) per container cost more than the rest of
a command task's launch in the agent; the container's own socket stays for a restarted agent.

Events (supervisor -> agent): ``LAUNCHED{task_id,pid}``, ``EXITED{task_id,status,error,oom,killed}``
(``status`` is a wait status: ``code << 8`` or the signal number), ``TERMINATED{}``.
Commands (agent -> supervisor): ``KILL{task_id,grace}``, ``SHUTDOWN{grace}``.

Semantics: tasks of a group start together; in a group, a task that fails or is killed takes the
others down with it (Mesos' DEFAULT executor). A kill sends SIGTERM to the task's process group,
then SIGKILL after the grace; when a task's main process exits, whatever is left of its process
group is killed, and when the container ends, whatever is left in its cgroup. A supervisor whose
agent went away shuts its tasks down at once without checkpointing, or after ``recovery_timeout``
with it. The daemon exits once it has no container and no agent connected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import json
import os
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups, confinement, holders, paths, users
from k8sbridge.kernel.agent.supervisor import Followed, Supervisor, set_task_view, socket_address

__all__ = ["main"]

_Answer = str | Callable[[], str]  # an answer, or what makes it (``_Daemon.spawn``)


class _Daemon:
    """Hosts the supervisors; exits when none is left and no agent is connected."""

    def __init__(self) -> None:
        self.supervisors: set[asyncio.Task[None]] = set()
        self.by_id: dict[str, Supervisor] = {}  # running supervisors by container id
        self.hierarchies: dict[str, cgroups.Cgroups] = {}
        self.controls = 0
        self.changed = asyncio.Event()

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.controls += 1
        # The containers this connection follows (spawned with "follow"): their supervisors
        # lose this client when the connection goes.
        follows: dict[str, tuple[Supervisor, Followed]] = {}
        answers: collections.deque[asyncio.Future[_Answer]] = collections.deque()
        answering: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError as e:  # over the limit: that request is dropped, not the rest
                    line = f"error the request is too large: {e}\n".encode()
                    answering = self._queue(answers, answering, _ready(line.decode()), writer)
                    continue
                if not line:
                    return
                if line.startswith(b"!"):
                    self.command(line[1:])
                    continue
                if line.strip() == b"?list":
                    # The containers this daemon supervises, with their tasks: a restarted
                    # agent kills those it has no checkpoint for.
                    listing = {cid: [t["task_id"] for t in sup.tasks]
                               for cid, sup in self.by_id.items()}
                    answering = self._queue(answers, answering, _ready(
                        "containers " + json.dumps(listing) + "\n"), writer)
                    continue
                # Spawns run at the same time (their sandboxes and cgroups are made in
                # threads: blocking file-system calls); the answers go out in request order.
                answering = self._queue(answers, answering, asyncio.ensure_future(self.spawn(
                    line.decode(errors="replace").strip(), writer=writer, follows=follows)),
                    writer)
        except ConnectionError:
            return
        finally:
            if answering is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await answering
            self.controls -= 1
            self.changed.set()
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()
            for supervisor, followed in list(follows.values()):
                supervisor.remove_client(followed)

    def _queue(self, answers: collections.deque[asyncio.Future[_Answer]],
               answering: asyncio.Task[None] | None, answer: asyncio.Future[_Answer],
               writer: asyncio.StreamWriter) -> asyncio.Task[None]:
        """Queue ``answer`` behind the earlier ones; the task that writes them."""
        answers.append(answer)
        if answering is None or answering.done():
            answering = asyncio.create_task(self._answer(answers, writer))
        return answering

    @staticmethod
    async def _answer(answers: collections.deque[asyncio.Future[_Answer]],
                      writer: asyncio.StreamWriter) -> None:
        """Write the spawns' answers in request order, as they complete."""
        while answers:
            try:
                answer = await answers[0]
                text = answer if isinstance(answer, str) else answer()  # even if closed
            except Exception as e:  # an answer still, in its place
                text = "error " + f"{type(e).__name__}: {e}".replace("\n", " ") + "\n"
            answers.popleft()
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(text.encode())
                await writer.drain()

    def command(self, line: bytes) -> None:
        """``{"container_id": CID, "type": ..., ...}`` for the supervisor of CID (if any)."""
        try:
            command = json.loads(line)
        except ValueError:
            print(f"container daemon: ignored a malformed command: {line[:200]!r}",
                  file=sys.stderr, flush=True)
            return
        if not isinstance(command, dict):
            return
        supervisor = self.by_id.get(str(command.get("container_id")))
        if supervisor is not None:
            supervisor.command(command)

    async def spawn(self, request: str, *, writer: asyncio.StreamWriter | None = None,
                    follows: dict[str, tuple[Supervisor, Followed]] | None = None
                    ) -> str | Callable[[], str]:
        """``request`` is the spec as one JSON line, or the path of a file holding it.

        With ``prepare`` in the spec the daemon also makes the sandbox and the cgroups (see
        ``_prepare``); the answer ``ok PID CGROUPS`` carries the cgroups it made (JSON). With
        ``follow`` the container's events go to ``writer`` (see the module docstring). Returns
        the answer (an error), or what starts the supervisor and returns the answer.
        """
        supervisor: Supervisor | None = None
        made: cgroups.CgroupSet | None = None
        try:
            spec = json.loads(request if request.startswith("{") else Path(request).read_text())
            prepare = spec.get("prepare")
            if isinstance(prepare, dict):
                try:
                    made = await asyncio.to_thread(
                        self._prepare, prepare, container_id=str(spec["container_id"]))
                except OSError as e:
                    why = str(e).replace("\n", " ")
                    return f"error cannot create the sandbox or its volumes: {why}\n"
                spec["cgroups"] = made.to_raw() if made is not None else None
            supervisor = Supervisor(spec)
            await supervisor.start()
        except (OSError, ValueError, KeyError, TypeError) as e:
            if supervisor is not None and supervisor.events_file is not None:
                supervisor.events_file.close()
            if made is not None:
                for d, err in made.remove().items():
                    print(f"container daemon: cannot remove cgroup {d}: {err}",
                          file=sys.stderr, flush=True)
            return "error " + f"{type(e).__name__}: {e}".replace("\n", " ") + "\n"
        started = supervisor

        def finish() -> str:
            """Run the supervisor, following it on ``writer``: called right before the answer
            is written, with no await in between, so its first event comes after the answer
            on the control connection (the agent holds events until it has its answer, but
            ``gone`` would end a container it does not know yet)."""
            container_id = str(spec["container_id"])
            if spec.get("follow") and writer is not None and follows is not None:
                followed = Followed(writer, container_id, follows)
                follows[container_id] = (started, followed)
                started.add_client(followed)
            self.by_id[container_id] = started
            task = asyncio.create_task(started.serve())
            self.supervisors.add(task)
            task.add_done_callback(self._done)
            task.add_done_callback(lambda _: self._forget(container_id, started))
            made_raw = json.dumps(spec.get("cgroups"), separators=(",", ":"))
            return f"ok {os.getpid()} {made_raw}\n"

        return finish

    def _prepare(self, prepare: dict[str, Any], *, container_id: str
                 ) -> cgroups.CgroupSet | None:
        """Make the container's sandbox (``runs/latest`` pointing at it), its tasks' dirs and
        its cgroups with their limits.

        Why here and not in the agent: these are a dozen file-system calls per container that
        cost ~0.1-0.5 ms each on a busy box; the agent shares one Python process (one GIL) with
        the master and the other in-process agents, while every daemon is a process of its own.
        """
        sandbox = Path(str(prepare["sandbox"]))
        paths.make_sandbox(sandbox)
        paths.link_latest(sandbox)
        for d in prepare.get("dirs") or []:
            paths.make_sandbox(Path(str(d)))
        for directory, uid, gid in prepare.get("owners") or []:  # as Mesos: the task's user's
            users.chown_tree(str(directory), int(uid), int(gid))
        plan = prepare.get("cgroups")
        if not isinstance(plan, dict):
            return None
        key = json.dumps(plan.get("hierarchy"), sort_keys=True)
        hierarchy = self.hierarchies.get(key)
        if hierarchy is None:  # one per hierarchy, so what it learns (swap limits) is kept
            hierarchy = self.hierarchies[key] = cgroups.Cgroups.from_raw(plan["hierarchy"])
        nested: dict[str, tuple[str, cgroups.Limits]] = {}
        raw_nested = plan.get("nested")
        if isinstance(raw_nested, dict):
            for task_id, entry in raw_nested.items():
                if isinstance(entry, list) and len(entry) == 2:
                    nested[str(task_id)] = (str(entry[0]), cgroups.Limits.from_raw(entry[1]))
        return hierarchy.create(container_id=container_id,
                                limits=cgroups.Limits.from_raw(plan.get("limits")),
                                nested=nested)

    def _forget(self, container_id: str, supervisor: Supervisor) -> None:
        if self.by_id.get(container_id) is supervisor:
            del self.by_id[container_id]

    def _done(self, task: asyncio.Task[None]) -> None:
        self.supervisors.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"supervisor failed: {task.exception()!r}", file=sys.stderr, flush=True)
        self.changed.set()

    async def run(self, name: str, ready_fd: int) -> None:
        view = confinement.CgroupView.make()
        if view is None:
            print(f"container daemon: tasks can write the cgroup file system: "
                  f"{confinement.CgroupView.why_not}", file=sys.stderr, flush=True)
        else:
            set_task_view(view)
            try:  # tasks are spawned from this (the main) thread
                confinement.drop_task_capabilities()
            except OSError as e:
                print(f"container daemon: tasks keep CAP_SYS_ADMIN: {e}", file=sys.stderr,
                      flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        with contextlib.suppress(ValueError, OSError):  # ~4 descriptors per container
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        server = await asyncio.start_unix_server(self.control, path=socket_address(name),
                                                 limit=_MAX_SPEC_BYTES)
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        idle_since = loop.time()
        while not stop.is_set():
            self.changed.clear()
            if self.controls or self.supervisors:
                idle_since = loop.time()
            elif loop.time() - idle_since > _IDLE_EXIT_SECONDS:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.changed.wait()
        server.close()
        if stop.is_set():  # SIGTERM: take every container down, as an agent shutdown would
            for task in list(self.supervisors):
                task.cancel()
        if self.supervisors:
            await asyncio.gather(*self.supervisors, return_exceptions=True)


def _ready(text: str) -> asyncio.Future[_Answer]:
    """An answer known at once, as a future (queued behind the spawns before it)."""
    future: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
    future.set_result(text)
    return future


_IDLE_EXIT_SECONDS = 2.0
_MAX_SPEC_BYTES = 256 * 1024 * 1024  # one spawn request (a whole task group's spec) per line


def _daemonize(name: str, log_path: str) -> int:
    """Double-fork the daemon; returns 0 once it listens (or one already listens on ``name``)."""
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(read_fd)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the agent's terminal
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        code = 0
        try:
            holders.start_maker()  # while this process is small (see ``viewmaker``)
            asyncio.run(_Daemon().run(name, write_fd))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:  # another daemon serves this agent already
                os.write(write_fd, b"1")
            else:
                print(f"container daemon failed: {e}", file=sys.stderr, flush=True)
                code = 1
        except BaseException as e:  # its log is the only place left to tell
            print(f"container daemon failed: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
            code = 1
        os._exit(code)
    os.close(write_fd)
    os.waitpid(first, 0)
    try:
        ok = os.read(read_fd, 1) == b"1"
    finally:
        os.close(read_fd)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    """``executor --daemon NAME LOG_PATH``: start (or find) the container daemon and return."""
    if len(argv) != 4 or argv[1] != "--daemon":
        print("usage: python -m k8sbridge.kernel.agent.executor --daemon NAME LOG_PATH",
              file=sys.stderr)
        return 2
    return _daemonize(argv[2], argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
