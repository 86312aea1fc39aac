"""Benchmark: CPU seconds of the ``k8sbridge dns`` process alone while its sources change, for
two source trees side by side.

Why: in ``bench_embedded.py``'s 1,000-replica phase the dns child's CPU mixes with the whole
``k8sbridge run`` on a shared machine; here only the dns process differs between runs, and
its CPU is read from /proc. Two phases, each with a fresh devkube (no controllers), a fresh
embedded kernel (master and one agent, in this process) and a dns process from ``--tree``:

1. pods: N pods created in one namespace, each then given a pod IP (a status patch, as the
   kubelet does), then all deleted: the pod watch and the PTRs under a burst.
2. tasks: M ``sleep 600`` command tasks launched by a framework in this process, then a quiet
   ``--quiet`` seconds with them running: the Mesos names under a launch and at rest.

Run: ``python bench/bench_dns_sources.py [--pods 1000] [--tasks 300] [--quiet 30]
[--tree DIR ...]`` (``--pods 0`` or ``--tasks 0`` leaves that phase out; ``--tree``: this
checkout by default; give two trees to compare, e.g. one made with ``git archive OLD | tar -x
-C DIR``). Bounded: every process is stopped at the end of its
phase. Prints CPU seconds per phase and tree, the machine's core count and load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.kernel import main as kernel_main  # noqa: E402
from k8sbridge.kernel.agent.config import AgentConfig  # noqa: E402
from k8sbridge.kernel.master.config import MasterConfig  # noqa: E402
from k8sbridge.kube import client as kube_client  # noqa: E402
from k8sbridge.mesos import client as mesos_client  # noqa: E402
from k8sbridge.mesos import events as mesos_events  # noqa: E402
from k8sbridge.mesos import framework as mesos_framework  # noqa: E402
from k8sbridge.mesos import types as mesos_types  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
HOST = "127.0.0.156"
BIG_AGENT = "cpus:64;mem:131072;disk:100000;ports:[31000-32000]"


def _port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (1 min), {five:.1f} (5 min)"


def _started(argv: list[str], *, cwd: Path, ready: str, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    out = log.open("w")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 90
    while ready not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"{argv[3]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def _devkube(work: Path) -> Iterator[Path]:
    proc = _started([sys.executable, "-m", "k8sbridge", "devkube", "--port", str(_port()),
                     "--data-dir", str(work / "dk"), "--no-controllers"], cwd=HERE,
                    ready="devkube serving", log=work / "devkube.log")
    try:
        yield work / "dk" / "kubeconfig"
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def _kernel(work: Path) -> AsyncIterator[str]:
    master = MasterConfig(port=_port(), work_dir=work / "master", heartbeat_interval=5.0,
                          allocation_interval=0.2)
    agent = AgentConfig(master="127.0.0.1:0", work_dir=work / "agent", resources=BIG_AGENT)
    async with kernel_main.running_kernel(master=master, agents=[agent]) as kernel:
        yield kernel.master_url


def _dns(tree: Path, *, kubeconfig: Path, master: str, work: Path) -> subprocess.Popen[str]:
    return _started([sys.executable, "-m", "k8sbridge", "dns", "--listen", HOST, "--port",
                     str(_port(HOST)), "--kubeconfig", str(kubeconfig), "--master", master,
                     "--upstream", "127.0.0.1:9"], cwd=tree, ready="k8sbridge dns serving",
                    log=work / "dns.log")


async def _pods(kubeconfig: Path, n: int) -> None:
    kube = kube_client.KubeClient.from_kubeconfig(path=kubeconfig)
    base = "/api/v1/namespaces/burst/pods"
    limit = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with limit:
            name = f"p{i}"
            await kube.create(base, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
            await kube.patch(f"{base}/{name}/status", {"status": {
                "phase": "Running", "podIP": f"10.88.{i // 250}.{i % 250 + 1}",
                "podIPs": [{"ip": f"10.88.{i // 250}.{i % 250 + 1}"}]}})

    async def gone(i: int) -> None:
        async with limit:
            await kube.delete(f"{base}/p{i}")

    try:
        await kube.ensure_namespace("burst")
        await asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.gather(*(gone(i) for i in range(n)))
    finally:
        await kube.close()


async def _tasks(master: str, m: int) -> None:
    """Launch ``m`` command tasks and wait until all run."""
    running: set[str] = set()
    done = asyncio.Event()
    launched = [0]
    fw: mesos_framework.Framework

    async def handle(event: Any) -> None:
        if isinstance(event, mesos_events.Offers):
            for offer in event.offers:
                count = min(m - launched[0], 200)
                if count <= 0:
                    await fw.decline([offer.id], refuse_seconds=60.0)
                    continue
                tasks = [{"name": f"t{launched[0] + i}",
                          "task_id": {"value": f"t{launched[0] + i}"},
                          "agent_id": {"value": offer.agent_id},
                          "resources": [
                              {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01},
                               "role": "*"},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 1},
                               "role": "*"}],
                          "command": {"value": "sleep 600"}} for i in range(count)]
                launched[0] += count
                launch: Any = {"type": "LAUNCH", "launch": {"task_infos": tasks}}
                await fw.accept([offer.id], [launch])
        elif isinstance(event, mesos_events.Update):
            if event.status.state == "TASK_RUNNING":
                running.add(str(event.status.task_id))
                if len(running) >= m:
                    done.set()

    fw = mesos_framework.Framework(
        settings=mesos_framework.FrameworkSettings(
            framework_info=mesos_types.FrameworkInfo(name="bench", user=getpass.getuser(),
                                                     roles=("*",)),
            client=mesos_client.ClientConfig(masters=(master,))),
        handler=handle)
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(fw.run(stop=stop, ready=ready))
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        with contextlib.suppress(Exception):
            await fw.teardown()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 30)


async def _phase(tree: Path, what: str, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        work = Path(tmp)
        with _devkube(work) as kubeconfig:
            async with _kernel(work) as master:
                dns = _dns(tree, kubeconfig=kubeconfig, master=master, work=work)
                try:
                    await asyncio.sleep(2)  # its start-up is not the figure
                    before = _cpu(dns.pid)
                    began = time.monotonic()
                    if what == "pods":
                        await _pods(kubeconfig, args.pods)
                        await asyncio.sleep(2)  # the last changes applied
                    else:
                        await _tasks(master, args.tasks)
                        await asyncio.sleep(args.quiet)
                    spent = _cpu(dns.pid) - before
                    print(f"  {what}: dns CPU {spent:.2f} s over {time.monotonic() - began:.0f} s"
                          f" ({tree}; {_load()})", flush=True)
                    return spent
                finally:
                    _stop(dns)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--quiet", type=float, default=30.0)
    parser.add_argument("--tree", type=Path, action="append", default=None)
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [HERE])]
    print(f"cores: {os.cpu_count()}; {_load()}; {args.pods} pods, {args.tasks} tasks",
          flush=True)
    for what, count in (("pods", args.pods), ("tasks", args.tasks)):
        for tree in trees if count else ():  # 0: the phase is left out
            await _phase(tree, what, args)


if __name__ == "__main__":
    asyncio.run(main())
