"""Benchmark: launch N `sleep 600` tasks on the embedded kernel, ACCEPT -> all TASK_RUNNING.

Runs a real master and real in-process agents (tasks are real processes) and drives them over
the v1 scheduler API like any framework (SUBSCRIBE, ACCEPT, ACKNOWLEDGE). For comparison it
measures, in the same run on the same machine, the raw rate of spawning the same number of
`sleep 600` processes with asyncio (no kernel at all).

Modes: ``command`` = N command tasks (LAUNCH; one executor process per task, as Mesos' command
executor), ``group`` = the same N tasks as one LAUNCH_GROUP per agent (DEFAULT executor: one
executor process per group, as the bridge launches pods).

Layouts: ``processes`` (default) runs the master (``k8sbridge kernel master``) and every agent
(``k8sbridge kernel agent --master ...``) as processes of their own, the framework in this
process, as a Mesos cluster runs (agents are separate processes, usually on other machines);
``inprocess`` hosts master and agents in this process (``running_kernel``, one GIL for
framework, master and all agents). Either way every agent has its container daemon (a process).
Both print the CPU seconds each part used during the launch (from /proc), per task.

Raw figures, same run, same machine, N processes each, spawned one after the other by this
one process: ``sleep 600`` with ``asyncio.create_subprocess_exec`` (the historical baseline:
vfork+exec plus a child-watcher thread per process); ``sleep 600`` with ``os.posix_spawn`` (the
call the container daemon uses, without sandbox, cgroups or files); and ``/bin/sh -c 'sleep
600'`` with ``os.posix_spawn``: what a shell command task (the bench's tasks) really starts,
a shell that forks ``sleep``. The ratio is given against each. A fourth figure shows what
confinement alone costs: ``sleep 600`` by ``os.posix_spawn``, each born in fresh memory and cpu
cgroups with limits, as every task is (no sandbox, no events, no status updates).

    python bench/bench_kernel_launch.py [--tasks 1000] [--agents 10] [--mode both] [--runs 1]
        [--layout processes|inprocess]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8sbridge.kernel import main  # noqa: E402
from k8sbridge.kernel.agent import cgroups  # noqa: E402
from k8sbridge.kernel.agent.config import AgentConfig  # noqa: E402
from k8sbridge.kernel.master.config import MasterConfig  # noqa: E402

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Framework:
    """A minimal v1 scheduler: SUBSCRIBE stream parsed by hand, calls on other connections."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.framework_id = ""
        self.stream_id = ""
        self._resp: aiohttp.ClientResponse | None = None
        self._buf = b""

    async def subscribe(self) -> None:
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "bench", "name": "bench-launch", "failover_timeout": 60}}}
        self._resp = await self.session.post(f"{self.url}/api/v1/scheduler",
                                             data=json.dumps(body), headers=JSON)
        self.stream_id = self._resp.headers["Mesos-Stream-Id"]
        event = await self.event()
        self.framework_id = event["subscribed"]["framework_id"]["value"]

    async def event(self) -> dict[str, Any]:
        assert self._resp is not None
        while True:
            if b"\n" in self._buf:
                head, rest = self._buf.split(b"\n", 1)
                n = int(head)
                if len(rest) >= n:
                    self._buf = rest[n:]
                    event: dict[str, Any] = json.loads(rest[:n])
                    return event
            chunk = await self._resp.content.readany()
            if not chunk:
                raise EOFError("stream ended")
            self._buf += chunk

    async def call(self, body: dict[str, Any]) -> None:
        body = {"framework_id": {"value": self.framework_id}, **body}
        async with self.session.post(
            f"{self.url}/api/v1/scheduler", data=json.dumps(body),
            headers={**JSON, "Mesos-Stream-Id": self.stream_id},
        ) as resp:
            if resp.status != 202:
                raise RuntimeError(f"{body['type']}: {resp.status} {await resp.text()}")

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()


def _task(task_id: str, agent_id: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}}],
        "command": {"value": "sleep 600"},
    }


async def raw_spawn_rate(n: int) -> float:
    """Spawn n `sleep 600` processes as fast as asyncio allows; tasks/s."""
    start = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            "sleep", "600", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.kill()
    for p in procs:
        await p.wait()
    return n / elapsed


def raw_posix_spawn_rate(n: int, *, shell: bool = False) -> float:
    """Spawn n `sleep 600` processes with os.posix_spawn (as the container daemon does), or
    with ``shell`` n `/bin/sh -c 'sleep 600'` (what a shell command task runs); /s."""
    sleep = next(str(Path(d) / "sleep") for d in os.environ.get("PATH", "/bin").split(":")
                 if (Path(d) / "sleep").is_file())
    argv = ["/bin/sh", "-c", "sleep 600"] if shell else [sleep, "600"]
    env = dict(os.environ)
    start = time.perf_counter()
    # Each in a session of its own: the shell's `sleep` is a grandchild that killing the
    # shell alone would leave behind (holding the bench's stdout for ten minutes).
    pids = [os.posix_spawn(argv[0], argv, env, setsid=True) for _ in range(n)]
    elapsed = time.perf_counter() - start
    for pid in pids:
        os.killpg(pid, 9)
    for pid in pids:
        os.waitpid(pid, 0)
    return n / elapsed


def raw_confined_spawn_rate(n: int) -> float | None:
    """What confinement alone costs: n `sleep 600` by posix_spawn, each born in fresh memory
    and cpu cgroups with limits (the spawning process joins them around the spawn, as the
    container daemon does), with no sandbox, event or status update; /s. None without
    writable cgroups."""
    found = cgroups.detect()
    if not found.available:
        return None
    sleep = shutil.which("sleep") or "/bin/sleep"
    env = dict(os.environ)
    made: list[cgroups.CgroupSet] = []
    pids: list[int] = []
    start = time.perf_counter()
    try:
        for i in range(n):
            cgroup = found.create(container_id=f"bench-raw-{os.getpid()}-{i}", mem_mb=32,
                                  cpus=0.01)
            if cgroup is None:
                return None
            made.append(cgroup)
            homes = cgroup.homes_of_self()
            cgroups.join_dirs([target for target, _ in homes])
            try:
                pids.append(os.posix_spawn(sleep, [sleep, "600"], env, setsid=True))
            finally:
                cgroups.join_dirs([home for _, home in homes])
        return n / (time.perf_counter() - start)
    finally:
        for pid in pids:
            os.killpg(pid, 9)
        for pid in pids:
            os.waitpid(pid, 0)
        for cgroup in made:
            for _ in range(50):  # a killed process may take a moment to leave
                if not cgroup.remove():
                    break
                time.sleep(0.02)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _threads_cpu(pid: int) -> float:
    """User + system CPU seconds of the threads of ``pid`` other than its main thread."""
    total = 0.0
    with contextlib.suppress(OSError):
        for entry in Path(f"/proc/{pid}/task").iterdir():
            if entry.name != str(pid):
                with contextlib.suppress(OSError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


async def _daemon_pids(work_dirs: list[Path], *, agents: set[int]) -> list[int]:
    """The container daemons of these agent work dirs (found by their socket name), once each
    has finished starting: its launcher (a child of the agent, pid in ``agents``) and the
    intermediate child of its double fork carry the same command line for a moment, so this
    waits (bounded) for one process per name, not the agent's child."""
    names = {"k8sbridge-containers-" + hashlib.sha1(str(w.resolve()).encode()).hexdigest()[:16]
             for w in work_dirs}
    async with asyncio.timeout(60):
        while True:
            found: dict[str, list[int]] = {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                for arg in argv:
                    name = arg.decode(errors="replace")
                    if name in names:
                        found.setdefault(name, []).append(int(entry.name))
                        if _ppid(int(entry.name)) in agents:
                            found[name].append(0)  # still starting: not settled
            if len(found) == len(names) and all(len(p) == 1 for p in found.values()):
                return [pids[0] for pids in found.values()]
            await asyncio.sleep(0.05)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _children_cpu(parents: set[int]) -> tuple[int, float]:
    """(count, CPU seconds) of the live direct children of ``parents`` (the tasks: the
    vfork child's work until exec, exec itself, and the process' own start-up)."""
    count, total = 0, 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in parents:  # a task is one thread: schedstat has its ns on a CPU
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((entry / "schedstat").read_text().split()[0]) / 1e9
                count += 1
    return count, total


class Parts:
    """The processes of one kernel run whose CPU the bench reports."""

    def __init__(self) -> None:
        self.pids: dict[str, list[int]] = {}
        self.daemon_dirs: list[Path] = []
        self.before: dict[str, float] = {}

    def total(self, name: str) -> float:
        if name == "bench":
            return time.process_time()
        if name.endswith(" threads"):  # the CPU of threads other than the main one (gRPC's)
            return sum(_threads_cpu(pid) for pid in self.pids.get(name.split()[0], []))
        return sum(_cpu(pid) for pid in self.pids.get(name, []))

    async def mark(self) -> None:
        """Start counting (once every agent has its container daemon: they are found now)."""
        self.pids["daemons"] = await _daemon_pids(
            self.daemon_dirs, agents=set(self.pids.get("agents", [os.getpid()])))
        names = ["bench"]
        for name in self.pids:
            names.append(name)
            if name in ("master", "agents"):
                names.append(f"{name} threads")
        self.before = {name: self.total(name) for name in names}

    def used(self) -> dict[str, float]:
        return {name: self.total(name) - before for name, before in self.before.items()}


async def _line(proc: asyncio.subprocess.Process, prefix: str, *, timeout: float = 60) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise RuntimeError(f"process {proc.pid} exited before printing {prefix!r}")
            line = raw.decode()
            if line.startswith(prefix):
                return line


@contextlib.asynccontextmanager
async def _kernel_processes(agents: int, resources: str, work: Path, parts: Parts,
                            cprofile: Path | None = None) -> Any:
    """Master and agents as processes of their own; yields the master URL. With ``cprofile``
    every one of them runs under cProfile and writes DIR/master.prof, DIR/agent-I.prof."""
    port = _free_port()
    cmd = [sys.executable, "-m", "k8sbridge", "kernel"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs: list[asyncio.subprocess.Process] = []

    async def start(*argv: str) -> asyncio.subprocess.Process:
        prefix = cmd
        if cprofile is not None:
            cprofile.mkdir(parents=True, exist_ok=True)
            name = argv[0] if argv[0] == "master" else f"agent-{len(procs) - 1}"
            prefix = [sys.executable, "-m", "cProfile", "-o", str(cprofile / f"{name}.prof"),
                      "-m", "k8sbridge", "kernel"]
        proc = await asyncio.create_subprocess_exec(
            *prefix, *argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    work_dirs = [work / f"agent{i}" for i in range(agents)]
    try:
        master = await start("master", "--port", str(port))
        await _line(master, "master:")
        agent_procs = [await start("agent", "--master", f"127.0.0.1:{port}",
                                   "--host", f"127.0.0.{i + 1}", "--work-dir", str(w),
                                   "--resources", resources)
                       for i, w in enumerate(work_dirs)]
        for proc in agent_procs:
            await _line(proc, "agent:")
        parts.pids = {"master": [master.pid], "agents": [p.pid for p in agent_procs]}
        parts.daemon_dirs = work_dirs
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):  # agents first (they kill their tasks), then the master
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=30)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def _kernel_inprocess(agents: int, resources: str, work: Path, parts: Parts) -> Any:
    mcfg = MasterConfig(port=_free_port(), allocation_interval=0.2, heartbeat_interval=15.0)
    acfgs = [AgentConfig(master="127.0.0.1:0", work_dir=work / f"agent{i}", resources=resources)
             for i in range(agents)]
    async with main.running_kernel(master=mcfg, agents=acfgs) as kernel:
        parts.daemon_dirs = [a.work_dir for a in acfgs]
        yield kernel.master_url


async def _spy(parts: Parts, out: Path) -> list[asyncio.subprocess.Process]:
    """py-spy (sampling, collapsed stacks) on the bench, the master, one agent, one daemon."""
    out.mkdir(parents=True, exist_ok=True)
    targets = {"bench": os.getpid(), **{name: pids[0] for name, pids in parts.pids.items()}}
    spies = [await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
        "--output", str(out / f"{name}.txt"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in targets.items()]
    await asyncio.sleep(1.0)  # let them attach
    return spies


async def kernel_launch_rate(n: int, agents: int, mode: str, work: Path, layout: str,
                             profile: Path | None = None, cprofile: Path | None = None
                             ) -> tuple[float, dict[str, float], tuple[int, float]]:
    """tasks/s, CPU seconds per part during the launch, and (tasks, their CPU seconds)."""
    per_agent = -(-n // agents)
    resources = f"cpus:{per_agent * 0.01 + 1:.2f};mem:{per_agent + 256};disk:1024;" \
                "ports:[31000-31099]"
    parts = Parts()
    starter = (functools.partial(_kernel_processes, cprofile=cprofile)
               if layout == "processes" else _kernel_inprocess)
    async with starter(agents, resources, work / mode, parts) as master_url, \
            aiohttp.ClientSession() as session:
        fw = Framework(session, master_url)
        await fw.subscribe()
        offers: dict[str, dict[str, Any]] = {}
        while len(offers) < agents:
            event = await asyncio.wait_for(fw.event(), timeout=30)
            if event["type"] == "OFFERS":
                for offer in event["offers"]["offers"]:
                    offers[offer["agent_id"]["value"]] = offer
        spies = await _spy(parts, profile) if profile is not None else []
        await parts.mark()
        start = time.perf_counter()
        left = n
        for idx, (agent_id, offer) in enumerate(sorted(offers.items())):
            count = min(per_agent, left)
            left -= count
            tasks = [_task(f"t{idx}-{j}", agent_id) for j in range(count)]
            if mode == "command":
                op = {"type": "LAUNCH", "launch": {"task_infos": tasks}}
            else:
                executor = {"type": "DEFAULT", "executor_id": {"value": f"group-{idx}"},
                            "framework_id": {"value": fw.framework_id},
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                                {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}]}
                op = {"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": tasks}}}
            await fw.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                                                        "operations": [op]}})
        running: set[str] = set()
        acks = []
        async with asyncio.timeout(300):  # one deadline for the run, not a timer per event
            while len(running) < n:
                event = await fw.event()
                if event["type"] != "UPDATE":
                    continue
                status = event["update"]["status"]
                if status["state"] == "TASK_RUNNING":
                    running.add(status["task_id"]["value"])
                elif status["state"] not in ("TASK_STARTING", "TASK_STAGING"):
                    raise RuntimeError(f"task failed: {status}")
                if "uuid" in status:
                    acks.append(asyncio.create_task(fw.call({
                        "type": "ACKNOWLEDGE", "acknowledge": {
                            "agent_id": status["agent_id"], "task_id": status["task_id"],
                            "uuid": status["uuid"]}})))
        elapsed = time.perf_counter() - start
        await asyncio.gather(*acks)
        used = parts.used()
        for spy in spies:  # py-spy writes its profile on SIGINT
            spy.send_signal(2)
        for spy in spies:
            await spy.wait()
        task_cpu = _children_cpu(set(parts.pids.get("daemons", [])))
        await fw.call({"type": "TEARDOWN"})
        fw.close()
        return n / elapsed, used, task_cpu


async def amain(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"layout: {args.layout} (framework in the bench process; "
          + ("master and each agent in a process of its own)" if args.layout == "processes"
             else "master and agents in the bench process too)"))
    modes = ["command", "group"] if args.mode == "both" else [args.mode]
    for mode in modes:
        raws, spawns, shells, confined, rates = [], [], [], [], []
        cpus: dict[str, list[float]] = {}
        for run in range(args.runs):
            raws.append(await raw_spawn_rate(args.tasks))
            spawns.append(raw_posix_spawn_rate(args.tasks))
            shells.append(raw_posix_spawn_rate(args.tasks, shell=True))
            confined_rate = raw_confined_spawn_rate(args.tasks)
            if confined_rate is not None:
                confined.append(confined_rate)
            with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
                rate, used, (count, task_cpu) = await kernel_launch_rate(
                    args.tasks, args.agents, mode, Path(tmp) / str(run), args.layout,
                    args.profile / f"{mode}-{run}" if args.profile else None,
                    args.cprofile / f"{mode}-{run}" if args.cprofile else None)
            rates.append(rate)
            for name, seconds in {**used, "tasks": task_cpu}.items():
                cpus.setdefault(name, []).append(seconds)
        raw, spawn, shell, rate = (statistics.median(raws), statistics.median(spawns),
                                   statistics.median(shells), statistics.median(rates))
        print(f"{mode:8s} {args.tasks} tasks on {args.agents} agents: ACCEPT->all RUNNING "
              f"median {rate:.1f} tasks/s (runs={args.runs})\n"
              f"         raw spawn, medians: `sleep 600` by asyncio {raw:.1f}/s -> ratio "
              f"{100 * rate / raw:.1f}%; `sleep 600` by posix_spawn {spawn:.1f}/s -> "
              f"{100 * rate / spawn:.1f}%; `sh -c 'sleep 600'` by posix_spawn (the task's "
              f"own processes) {shell:.1f}/s -> {100 * rate / shell:.1f}%")
        if confined:
            fenced = statistics.median(confined)
            print(f"         confinement alone: `sleep 600` by posix_spawn into fresh memory "
                  f"and cpu cgroups {fenced:.1f}/s ({100 * fenced / spawn:.1f}% of plain "
                  f"posix_spawn) -> ratio {100 * rate / fenced:.1f}%")
        label = {"bench": "bench process (framework" + (
            ")" if args.layout == "processes" else " + master + agents)"),
                 "master threads": "(of which gRPC threads", "agents threads":
                 "(of which gRPC threads"}
        cells = [f"{label.get(name, name)} {1000 * statistics.median(v) / args.tasks:.2f}"
                 + (")" if "threads" in name else "") for name, v in cpus.items()]
        total = sum(statistics.median(v) for name, v in cpus.items() if "threads" not in name)
        print(f"         CPU ms per task during the launch (medians): {'; '.join(cells)}; "
              f"sum {1000 * total / args.tasks:.2f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--mode", choices=["command", "group", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--layout", choices=["processes", "inprocess"], default="processes")
    parser.add_argument("--cprofile", type=Path, default=None, metavar="DIR",
                        help="(processes layout) run the master and every agent under "
                        "cProfile, writing DIR/MODE-RUN/master.prof and agent-I.prof")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy (collapsed stacks) of the bench process, the master, "
                        "one agent and one container daemon during each launch, into DIR")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    cli()
