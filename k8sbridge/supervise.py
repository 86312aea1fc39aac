"""Child processes of ``k8sbridge run``: started to die with their parent, restarted when they
crash, logged, stopped in order.

Why: the embedded default runs the kernel, devkube and the bridge as separate processes (as Mesos,
kube-apiserver and the bridge are in production), so each gets its own interpreter and core and a
burst in one cannot starve the others' event loops. A supervisor then has four duties, all here:

* a child must not outlive ``k8sbridge run``, even when that is SIGKILLed: on Linux each child
  asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, set between fork and
  exec), so it still stops cleanly (the kernel kills its tasks);
* each child is in its own process group, so a terminal's Ctrl-C reaches only the supervisor,
  which stops the children one by one in the order it chooses, each within a bounded time;
* a child that exits on its own is reported with its name, pid and exit code, and restarted
  with back-off (``Group.keep_running``): a crash of one part is not an outage of the others,
  and the pods' task processes (which live under the kernel's agents) keep running while the
  bridge or devkube is away — only Ctrl-C/SIGTERM (``Group.stop``) stops everything;
* a child's output (stdout and stderr) goes to its log file, which the supervisor follows to
  show it labelled on the terminal and to see the child's ready line, and rotates by size
  (``LogRotation``: copy then truncate, as logrotate's copytruncate, since the child keeps
  the file open and appends).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import dataclasses
import datetime
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "Child",
    "ChildError",
    "ChildExited",
    "ChildSpec",
    "Group",
    "Interrupted",
    "LogRotation",
    "RestartPolicy",
    "describe_exit",
]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
TAIL_LINES = 30  # last output lines kept per child for the report of an unexpected exit
FOLLOW_SECONDS = 0.1  # how often a child's log file is read for new lines
_CHUNK = 65536


class ChildError(RuntimeError):
    """A child process could not be started or did not become ready."""


class ChildExited(ChildError):
    """A child process exited while it was expected to run."""

    def __init__(self, child: Child) -> None:
        self.child = child
        tail = "".join(f"    {line}\n" for line in child.tail)
        super().__init__(
            f"{child.spec.name} (pid {child.pid}) exited unexpectedly with "
            f"{describe_exit(child.returncode)}; its log: {child.spec.log_file}"
            + (f"\n  its last lines:\n{tail}" if tail else "")
        )


class Interrupted(ChildError):
    """The stop event was set while a child was starting."""


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``signal SIGKILL`` (asyncio reports a signal as a negative code)."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str  # the label in the terminal and in messages ("kernel", "devkube", "bridge")
    argv: tuple[str, ...]
    log_file: Path
    ready: re.Pattern[str]  # an output line matching this says the child is ready
    stop_grace_seconds: float  # after SIGTERM, this long before SIGKILL
    env: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LogRotation:
    """Size-based rotation of the children's log files: past ``max_bytes`` (0: never) a file
    is copied to ``LOG.1`` (older copies shift to ``.2``... up to ``keep``) and emptied."""

    max_bytes: int = 0
    keep: int = 5


def rotate(path: Path, keep: int) -> None:
    """LOG → LOG.1 (LOG.1 → LOG.2 ..., the oldest dropped), then LOG emptied in place: the
    child's descriptor (O_APPEND) goes on writing at its new end. ``keep`` 0: just emptied."""
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    if keep > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)


@dataclasses.dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a crashed child is restarted: after ``initial_seconds``, doubling per crash in a row
    up to ``max_seconds`` (a child that crashes at once is not restarted in a tight loop); a
    child that stayed up ``reset_after_seconds`` starts again from ``initial_seconds``. A
    restarted child has ``ready_timeout_seconds`` to print its ready line, else it is stopped
    and counts as one more crash."""

    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    reset_after_seconds: float = 60.0
    ready_timeout_seconds: float = 120.0

    def delay(self, *, crashes: int) -> float:
        """The wait before restarting after the ``crashes``-th crash in a row (1-based)."""
        return float(min(self.max_seconds,
                         self.initial_seconds * 2.0 ** min(max(crashes - 1, 0), 30)))


def _die_with_parent_hook(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when ``parent`` dies (Linux), or None
    where ``prctl`` does not exist (the children then only stop when told to)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        log.warning("prctl is unavailable: child processes will not follow a killed parent")
        return None

    def hook() -> None:  # runs in the child between fork and exec: no allocations, no locks
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(125)

    return hook


class Child:
    """One supervised child process: its output pump, its readiness and its exit."""

    def __init__(self, *, spec: ChildSpec, echo: BinaryIO | None,
                 rotation: LogRotation = LogRotation()) -> None:
        self.spec = spec
        self._echo = echo
        self._rotation = rotation
        self._label = f"[{spec.name}] ".encode()
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._waiter: asyncio.Task[int] | None = None
        self.ready: asyncio.Future[re.Match[str]] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.stopping = False
        self.started_at = 0.0  # loop time of the last start
        self.starts = 0  # how many times it was started (1 + restarts)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def exited(self) -> asyncio.Task[int]:
        if self._waiter is None:
            raise ChildError(f"{self.spec.name} was not started")
        return self._waiter

    async def start(self) -> None:
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        if self._proc is not None and self._proc.returncode is None:
            raise ChildError(f"{self.spec.name} (pid {self._proc.pid}) is still running")
        self.ready = loop.create_future()
        self.started_at = loop.time()
        self.starts += 1
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        # The child writes straight into its log file (appending), and this process follows
        # the file: the log stays complete even after this process is gone (a pipe would break
        # and the child's last words, e.g. why it stopped, would be lost).
        with self.spec.log_file.open("ab") as out:
            out.write(f"==== {started}: {' '.join(self.spec.argv)}\n".encode())
            out.flush()
            offset = out.tell()
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=dict(self.spec.env) if self.spec.env is not None else None,
                    preexec_fn=_die_with_parent_hook(os.getpid()),
                    process_group=0,  # a terminal's Ctrl-C is for the supervisor, not for us
                )
            except OSError as e:
                raise ChildError(f"cannot start {self.spec.name}: {e}") from e
        if self._pump is not None and not self._pump.done():  # the last incarnation's
            self._pump.cancel()
        self._pump = asyncio.create_task(self._follow(offset), name=f"{self.spec.name}-output")
        self._waiter = asyncio.create_task(self._wait(), name=f"{self.spec.name}-exit")

    async def _wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._pump is not None:  # the last lines (a traceback) belong in the report
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self._pump)
        return code

    async def _follow(self, offset: int) -> None:
        """The child's new log lines → ready detection, the tail kept for reports, and the
        terminal (each line labelled); polls every FOLLOW_SECONDS until the child is gone."""
        with self.spec.log_file.open("rb") as log_file:
            log_file.seek(offset)
            partial = b""
            while True:
                chunk = log_file.read(_CHUNK)
                if not chunk:
                    if self._proc is None or self._proc.returncode is not None:
                        break  # gone, and everything it wrote has been read
                    self._maybe_rotate(log_file)
                    await asyncio.sleep(FOLLOW_SECONDS)
                    continue
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                if len(partial) > _CHUNK:  # a line without end: pass it on in pieces
                    lines.append(partial)
                    partial = b""
                self._lines(lines)
            if partial:
                self._lines([partial])

    def _maybe_rotate(self, log_file: BinaryIO) -> None:
        """Rotate once everything written so far was read and the file is past its size;
        a file emptied by someone else (logrotate) is followed from its start."""
        position = log_file.tell()
        limit = self._rotation.max_bytes
        if limit and position >= limit:
            try:
                rotate(self.spec.log_file, self._rotation.keep)
            except OSError as e:
                log.warning("cannot rotate %s: %s", self.spec.log_file, e)
                return
            log_file.seek(0)
        elif os.fstat(log_file.fileno()).st_size < position:
            log_file.seek(0)

    def _lines(self, lines: list[bytes]) -> None:
        for line in lines[-TAIL_LINES:]:
            self.tail.append(line.decode(errors="replace"))
        if self.ready is not None and not self.ready.done():
            for line in lines:
                match = self.spec.ready.search(line.decode(errors="replace"))
                if match is not None:
                    self.ready.set_result(match)
                    break
        if self._echo is not None and lines:
            try:
                self._echo.write(b"".join(self._label + line + b"\n" for line in lines))
                self._echo.flush()
            except (OSError, ValueError):  # the terminal went away: the log file still has it
                self._echo = None

    def signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_grace_seconds``; returns the exit code."""
        if self._proc is None or self._waiter is None:
            return None
        self.stopping = True
        if self._proc.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(self.spec.stop_grace_seconds):
                    await asyncio.shield(self._waiter)
            except TimeoutError:
                log.warning("%s (pid %s) did not stop within %gs of SIGTERM; killing it",
                            self.spec.name, self.pid, self.spec.stop_grace_seconds)
                self.signal(signal.SIGKILL)
        code = await self._waiter
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        return code


async def _first(
    what: asyncio.Future[Any], *, stop: asyncio.Event, also: asyncio.Future[Any] | None = None
) -> bool:
    """Wait for ``what`` (or ``also``) or ``stop``; True unless ``stop`` came first."""
    stopper = asyncio.ensure_future(stop.wait())
    watched: set[asyncio.Future[Any]] = {what, stopper}
    if also is not None:
        watched.add(also)
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    return not stop.is_set()


class Group:
    """Children started in order and stopped in reverse order; a child that exits on its own
    is restarted (``keep_running``) until the group is stopped."""

    def __init__(self, *, echo: BinaryIO | None, rotation: LogRotation = LogRotation()) -> None:
        self._echo = echo
        self._rotation = rotation
        self.children: list[Child] = []

    async def spawn(self, spec: ChildSpec) -> Child:
        child = Child(spec=spec, echo=self._echo, rotation=self._rotation)
        self.children.append(child)
        await child.start()
        log.info("started %s (pid %s): %s", spec.name, child.pid, " ".join(spec.argv))
        return child

    async def wait_ready(
        self, child: Child, *, timeout: float, stop: asyncio.Event | None = None
    ) -> re.Match[str]:
        """The ready line's match; ChildExited if any child of the group exits first,
        Interrupted if ``stop`` is set first, ChildError after ``timeout``."""
        assert child.ready is not None
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        watched: set[asyncio.Future[Any]] = {child.ready}
        watched |= {c.exited for c in self.children}
        if stopper is not None:
            watched.add(stopper)
        try:
            await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopper is not None:
                stopper.cancel()
        if child.ready.done():
            return child.ready.result()
        for other in self.children:
            if other.exited.done():
                raise ChildExited(other)
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped while {child.spec.name} was starting")
        raise ChildError(f"{child.spec.name} (pid {child.pid}) did not become ready within "
                         f"{timeout:g}s; its log: {child.spec.log_file}")

    async def keep_running(
        self,
        *,
        stop: asyncio.Event,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """Until ``stop`` is set, restart every child that exits, with back-off (``policy``),
        leaving the others alone. Each crash and each restart is logged and passed to ``say``
        (the terminal). Returns once ``stop`` is set; ``stop()`` then stops the children."""
        rules = policy if policy is not None else RestartPolicy()
        async with asyncio.TaskGroup() as tasks:
            for child in self.children:
                tasks.create_task(self._keep(child, stop=stop, policy=rules, say=say),
                                  name=f"{child.spec.name}-keeper")

    async def _keep(
        self,
        child: Child,
        *,
        stop: asyncio.Event,
        policy: RestartPolicy,
        say: Callable[[str], None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        crashes = 0
        name = child.spec.name

        def tell(message: str) -> None:
            log.warning("%s", message)
            if say is not None:
                say(message)

        while True:
            if not await _first(child.exited, stop=stop):
                return
            up_for = loop.time() - child.started_at
            crashes = 1 if up_for >= policy.reset_after_seconds else crashes + 1
            delay = policy.delay(crashes=crashes)
            tail = "".join(f"    {line}\n" for line in list(child.tail)[-5:])
            tell(f"{name} (pid {child.pid}) exited unexpectedly with "
                 f"{describe_exit(child.returncode)} after {up_for:.1f}s; restarting it in "
                 f"{delay:g}s (crash {crashes} in a row; the others keep running); its log: "
                 f"{child.spec.log_file}" + (f"\n  its last lines:\n{tail}" if tail else ""))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            if stop.is_set():
                return
            child.tail.clear()
            try:
                await child.start()
            except ChildError as e:
                tell(f"{name}: {e}")
                continue  # its exited task is the last incarnation's: counts as a crash
            log.info("restarted %s (pid %s): %s", name, child.pid, " ".join(child.spec.argv))
            assert child.ready is not None
            try:
                async with asyncio.timeout(policy.ready_timeout_seconds):
                    became_ready = await _first(child.ready, stop=stop, also=child.exited)
            except TimeoutError:
                tell(f"{name} (pid {child.pid}) did not become ready within "
                     f"{policy.ready_timeout_seconds:g}s of its restart; stopping it")
                await child.stop()
                child.stopping = False
                continue
            if stop.is_set():
                return
            if became_ready and child.ready.done():
                tell(f"{name} is back (pid {child.pid}, start {child.starts})")

    async def stop(self) -> None:
        """Stop the children one by one, the last started first (each bounded in time)."""
        for child in reversed(self.children):
            code = await child.stop()
            log.info("%s stopped (%s)", child.spec.name, describe_exit(code))
