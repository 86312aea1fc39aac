"""Where a pod's startup time goes: per-stage medians for two trees in one run, alternating.

Why: wall-clock before/after pairs of ``bench_embedded.py --replicas 0`` on a shared box are
noisy; a breakdown of the same pods' path, taken in the same run for both trees, says which
stage moved. Each round starts ``k8sbridge run`` (as ``bench_embedded.py`` does) from each
tree in turn, with ``bench/stage_trace`` on ``PYTHONPATH`` (timestamps from the bridge and the
kernel, see its docstring), creates N pods at once and watches them until Running+ready.

Per pod: created → seen by the scheduler → bind sent → ACCEPT sent → ACCEPT at the master →
RUN_TASK_GROUP at the agent → its ``_launch`` runs → the container daemon asked → answered →
LAUNCHED event → TASK_RUNNING status made → pod seen Running. Also: the placement passes and
ACCEPTs (time after the first create, pods per ACCEPT), checkpoint writes (count, total ms)
and the pods each pass found pending.

Run: ``python bench/bench_startup_stages.py --tree before=/work/wt/before --tree
after=/work/wt/perf [--rounds 3] [--pods 100] [--profile DIR] [--strace DIR]`` (``--profile``
needs ``py-spy`` on the PATH, ``--strace`` needs ``strace``; both only observe).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bridge  # noqa: E402
import bench_embedded  # noqa: E402

TRACE_CODE = Path(__file__).resolve().parent / "stage_trace"

# (label, stage in the trace, which occurrence) along one pod's path, in order.
PATH = [
    "created", "scheduler sees pod", "bind sent", "bind done", "ACCEPT sent",
    "master ACCEPT", "agent RUN_TASK_GROUP", "agent _launch runs", "daemon asked",
    "daemon answered", "LAUNCHED event", "TASK_RUNNING made", "pod Running seen",
]


def _records(trace_dir: Path) -> list[list[Any]]:
    out = []
    for path in trace_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            out.append(json.loads(line))
    out.sort(key=lambda r: r[0])
    return out


def _first(times: dict[str, float], label: str, t: float) -> None:
    if label not in times:
        times[label] = t


def stages(trace: list[list[Any]], created: dict[str, float], running: dict[str, float],
           uid_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """uid -> stage label -> wall time."""
    per: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for name, t in created.items():
        if name in uid_of:
            per[uid_of[name]]["created"] = t
    for name, t in running.items():
        if name in uid_of:
            per[uid_of[name]]["pod Running seen"] = t
    containers: dict[str, list[str]] = {}
    for t, stage, key, _value in trace:
        if stage == "bridge.pod_event" and key and key[0]:
            _first(per[key[0]], "scheduler sees pod", t)
        elif stage == "bridge.bind":
            uid = uid_of.get(str(key))
            if uid:
                _first(per[uid], "bind sent", t)
        elif stage == "bridge.bind:end":
            uid = uid_of.get(str(key))
            if uid:
                _first(per[uid], "bind done", t)
        elif stage in ("bridge.accept", "master.accept:end", "agent.run_task_group:end"):
            # (the kernel's two are plain functions: traced when they return)
            label = {"bridge.accept": "ACCEPT sent", "master.accept:end": "master ACCEPT",
                     "agent.run_task_group:end": "agent RUN_TASK_GROUP"}[stage]
            for task_id in key or []:
                _first(per[task_id.split(".")[0]], label, t)
        elif stage == "agent.launch_coro":
            containers[key[0]] = key[1]
            for task_id in key[1]:
                _first(per[task_id.split(".")[0]], "agent _launch runs", t)
        elif stage in ("agent.daemon_launch", "agent.daemon_launch:end"):
            label = "daemon asked" if stage == "agent.daemon_launch" else "daemon answered"
            for task_id in containers.get(str(key), []):
                _first(per[task_id.split(".")[0]], label, t)
        elif stage == "agent.executor_event:end" and key[1] == "LAUNCHED" and key[2]:
            _first(per[str(key[2]).split(".")[0]], "LAUNCHED event", t)
        elif stage == "agent.update:end" and key[1] == "TASK_RUNNING":
            _first(per[str(key[0]).split(".")[0]], "TASK_RUNNING made", t)
    return {uid: times for uid, times in per.items() if "created" in times}


def timeline(trace: list[list[Any]], t0: float) -> list[str]:
    """Passes, ACCEPTs, REVIVEs and offers after the first create (seconds)."""
    out = []
    seen: set[str] = set()
    for t, stage, key, value in trace:
        if stage == "bridge.pod_event" and key and key[0]:
            seen.add(key[0])
        if t < t0 - 0.5:
            continue
        if stage == "bridge.pass":
            out.append(f"{t - t0:6.3f} pass starts ({len(seen)} pods seen)")
        elif stage == "bridge.accept":
            out.append(f"{t - t0:6.3f} ACCEPT {len(key)} pods")
        elif stage == "bridge.revive":
            out.append(f"{t - t0:6.3f} REVIVE")
        elif stage == "bridge.suppress":
            out.append(f"{t - t0:6.3f} SUPPRESS")
        elif stage == "bridge.handle" and key and key[0] == "Offers":
            out.append(f"{t - t0:6.3f} OFFERS x{len(key[1])}")
        elif stage == "bridge.pass:end":
            out.append(f"{t - t0:6.3f} pass done ({value * 1000:.0f} ms)")
    return out


def _spy(pids: dict[str, int], out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (sampling every thread, not pausing the process) on each of ``pids``."""
    return [subprocess.Popen(
        ["py-spy", "record", "--nonblocking", "-r", "100", "-f", "raw",
         "-p", str(pid), "-o", str(out / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]


def _strace(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """strace -c (wall time per call) of the file-system calls of ``pid``'s threads."""
    return subprocess.Popen(
        ["strace", "-f", "-c", "-w", "--seccomp-bpf", "-e",
         "trace=openat,write,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,fchmod,"
         "fsync,fdatasync", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


async def one_run(tree: Path, pods: int, timeout: float, work: Path,
                  profile: Path | None = None, strace: Path | None = None) -> dict[str, Any]:
    trace_dir = work / "trace"
    trace_dir.mkdir(parents=True)
    env = {"PYTHONPATH": f"{tree}{os.pathsep}{TRACE_CODE}", "BENCH_STAGE_TRACE": str(trace_dir)}
    here = os.getcwd()
    os.chdir(tree)  # ``python -m k8sbridge`` puts the working directory first on sys.path
    try:
        async with bench_embedded.running(data_dir=work / "startup", extra=[],
                                          env=env) as (run, targets):
            kube = targets.bridge.kube
            await kube.ensure_namespace("bench")
            running: dict[str, float] = {}
            watcher = asyncio.create_task(_watch(kube.connection(), pods, running, timeout))
            await asyncio.sleep(0.5)
            created: dict[str, float] = {}

            acked: list[float] = []

            async def create(i: int) -> None:
                created[f"p{i}"] = time.time()
                await kube.create("/api/v1/namespaces/bench/pods", bench_bridge._sleep_pod(
                    f"p{i}", "bench", cpu="10m", memory="8Mi"))
                acked.append(time.time())

            procs = {**run.pids, **{f"daemon{i}": p for i, p in enumerate(
                bench_embedded._daemons(work / "startup"))}}
            spies = []
            if profile is not None:
                profile.mkdir(parents=True)
                spies = _spy(procs, profile)
            if strace is not None:
                strace.parent.mkdir(parents=True, exist_ok=True)
                spies.append(_strace(run.pids["kernel"], strace))
            if spies:
                await asyncio.sleep(1.0)  # py-spy / strace attached
            cpu0 = {n: bench_embedded._own_cpu(p) for n, p in procs.items()}
            t0 = time.time()
            await asyncio.gather(*(create(i) for i in range(pods)))
            burst = time.time() - t0
            cpu = {n: bench_embedded._own_cpu(p) - cpu0[n] for n, p in run.pids.items()}
            await asyncio.wait_for(watcher, timeout + 5)
            cpu_all = collections.Counter({n.rstrip("0123456789"): bench_embedded._own_cpu(p)
                                           - cpu0[n] for n, p in procs.items()})
            _stop(spies)
            listing = await kube.get("/api/v1/namespaces/bench/pods")
            uid_of = {p["metadata"]["name"]: p["metadata"]["uid"] for p in listing["items"]}
            await kube.request("DELETE", "/api/v1/namespaces/bench/pods",
                               query={"gracePeriodSeconds": "0"})
    finally:
        os.chdir(here)
    trace = _records(trace_dir)
    per = stages(trace, created, running, uid_of)
    first_pass = next((r[0] for r in trace if r[1] == "bridge.pass" and r[0] >= t0), t0)
    first = (f"first pass {first_pass - t0:.3f}s after the first create: "
             f"{sum(1 for a in acked if a <= first_pass)} creates answered, "
             f"{sum(1 for t in per.values() if t.get('scheduler sees pod', 1e18) <= first_pass)}"
             " pods seen by the scheduler; the creates took "
             f"{burst:.3f}s, CPU meanwhile: "
             + ", ".join(f"{n} {v * 1000:.0f} ms" for n, v in cpu.items()))
    first_done = next((r[0] for r in trace if r[1] == "bridge.pass:end" and r[0] >= t0), t0)
    wave1 = sum(len(r[2]) for r in trace if r[1] == "bridge.accept" and t0 <= r[0] <= first_done)
    return {"t0": t0, "per": per, "first": first, "wave1": wave1, "cpu": cpu_all,
            "timeline": timeline(trace, t0),
            "checkpoints": [r[3] for r in trace if r[1] == "agent.checkpoint:end"
                            and r[0] >= t0],
            "spreads": _batch_spreads(trace, per)}


def _batch_spreads(trace: list[list[Any]], per: dict[str, dict[str, float]]) -> list[float]:
    """Per ACCEPT at the master: its first RUN_TASK_GROUP at an agent to the container daemon
    asked for its last container (what the agent adds on the launch's critical path)."""
    out = []
    for _t, stage, key, _value in trace:
        if stage != "master.accept:end" or not key:
            continue
        pods = [per[uid] for uid in {task_id.split(".")[0] for task_id in key} if uid in per]
        starts = [p["agent RUN_TASK_GROUP"] for p in pods if "agent RUN_TASK_GROUP" in p]
        asked = [p["daemon asked"] for p in pods if "daemon asked" in p]
        if starts and asked:
            out.append(max(asked) - min(starts))
    return out


async def _watch(conn: Any, want: int, seen: dict[str, float], timeout: float) -> None:
    """Pods seen Running+ready, by wall-clock time (the trace's clock)."""
    await bench_bridge._watch_running(conn, "bench", want, {}, timeout)
    seen.update(bench_bridge.WALL)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, result: dict[str, Any]) -> dict[str, float]:
    per = result["per"]
    totals = [t["pod Running seen"] - t["created"] for t in per.values()
              if "pod Running seen" in t]
    print(f"\n-- {name}: {len(totals)} pods; startup p50 {_median(totals):.3f}s "
          f"p99 {bench_bridge._pct(totals, 0.99) if totals else float('nan'):.3f}s")
    medians: dict[str, float] = {"total": _median(totals)}
    for prev, label in zip(PATH, PATH[1:], strict=False):
        deltas = [t[label] - t[prev] for t in per.values() if label in t and prev in t]
        medians[label] = _median(deltas)
        print(f"  {prev:>22} -> {label:<22} median {medians[label] * 1000:8.1f} ms  "
              f"max {max(deltas, default=float('nan')) * 1000:8.1f} ms  (n={len(deltas)})")
    since = {label: _median([t[label] - t["created"] for t in per.values() if label in t])
             for label in PATH[1:]}
    print("  since created (median): " + ", ".join(
        f"{label} {v:.3f}s" for label, v in since.items()))
    print("  " + result["first"])
    medians["pods in wave 1"] = result["wave1"] / 1000  # (shown x1000 below: a count)
    print(f"  pods launched by the first pass: {result['wave1']}; CPU from the first create "
          "to the last pod Running: " + ", ".join(
              f"{n} {v * 1000:.0f} ms" for n, v in sorted(result["cpu"].items())))
    for n, v in result["cpu"].items():
        medians[f"CPU {n}"] = v
    cps = result["checkpoints"]
    print(f"  checkpoint writes: {len(cps)}, {sum(cps) * 1000:.0f} ms in all, "
          f"median {_median(cps) * 1000:.2f} ms")
    spreads = result["spreads"]
    medians["ACCEPT batch: agent -> last daemon ask"] = \
        _median(spreads)
    medians["checkpoint write (median)"] = _median(cps)
    print("  per ACCEPT: its first RUN_TASK_GROUP -> the daemon asked for its last container: "
          + ", ".join(f"{v * 1000:.0f}" for v in spreads) + " ms")
    print("  timeline: " + "; ".join(result["timeline"]))
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy (raw folded stacks) of each process during the startup, "
                             "into DIR/<round>-<tree>/<process>.txt")
    parser.add_argument("--strace", type=Path, default=None, metavar="DIR",
                        help="strace -c -w of the kernel's file-system calls during the "
                             "startup, into DIR/<round>-<tree>.txt")
    args = parser.parse_args()
    trees = [(n, Path(p).resolve()) for n, p in (t.split("=", 1) for t in args.tree)]
    bench_bridge.SLEEP[0] = str(int(args.timeout * 2 + 300))
    collected: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for name, tree in order:
                print(f"\n== round {r + 1}, {name} ({tree}); {bench_embedded._load()}",
                      flush=True)
                result = await one_run(
                    tree, args.pods, args.timeout, Path(tmp) / f"{r}-{name}",
                    None if args.profile is None else args.profile / f"{r}-{name}",
                    None if args.strace is None else args.strace / f"{r}-{name}.txt")
                collected[name].append(report(name, result))
    print(f"\n== medians over {args.rounds} rounds of the per-round medians; "
          f"{bench_embedded._load()}")
    base = trees[0][0]
    for n, _ in trees:
        print(f"  {n}: startup p50 per round " + ", ".join(
            f"{m['total']:.2f}" for m in collected[n]) + "; pods in wave 1 per round "
            + ", ".join(f"{m['pods in wave 1'] * 1000:.0f}" for m in collected[n]))
    extra = sorted({k for ms in collected.values() for m in ms for k in m if k.startswith(
        ("CPU", "pods", "ACCEPT batch", "checkpoint"))})
    print("  (ms; 'pods in wave 1' is a count)")
    for label in ["total", *PATH[1:], *extra]:
        row = {n: _median([m.get(label, float("nan")) for m in collected[n]]) for n, _ in trees}
        ratio = " ".join(f"{n}/{base} {row[n] / row[base]:.2f}" for n, _ in trees[1:]
                         if row[base])
        print(f"  {label[:34]:<34} " + "  ".join(f"{n} {row[n] * 1000:8.1f} ms" for n, _ in trees)
              + f"  {ratio}")


if __name__ == "__main__":
    asyncio.run(main())
