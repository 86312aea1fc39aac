"""Issue 11's figures: each fault done several times, counted on the host (docs/reliability.md).

Why a script and not the tests: the tests (``tests/e2e/test_surviving_chaos*.py``) do each
fault once at 50 replicas and assert; this does the same procedures
(``tests/e2e/chaos_faults.py``) at 200 replicas, ``--runs`` times each, and prints per fault:
the runs, how many recovered, the lost / duplicate / orphan counts of the last look of each run
(task processes found in /proc by the token every chaos container carries, not what the master
says), their high-water marks on the way, what was left after scaling to 0 and after a clean
Ctrl-C, and the recovery time (the kill → the first look of a clean account that then lasted
3 s) as median and max. Then devkube's RSS around 100 updates of a 1 MB ConfigMap.

Faults: ``kill -9`` of the bridge at 0.6 s and 1.2 s after ``kubectl scale`` 0 → N returned,
of the kernel (master and agents) at 0.6 s and 1.2 s, of devkube at 1.2 s (each a child of
``k8sbridge run``, restarted by its supervisor), and of one of two agent processes once all
replicas run (replacements must run on the other; then it comes back and must kill what it
still runs of the evicted pods).

Run: ``python bench/chaos.py [--runs 3] [--replicas 200] [--faults bridge@0.6,agent,...]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.chaos_faults import (  # noqa: E402
    Growth,
    Outcome,
    configmap_updates,
    kill_agent,
    kill_child_in_rollout,
)

FAULTS = ("bridge@0.6", "bridge@1.2", "kernel@0.6", "kernel@1.2", "devkube@1.2", "agent")


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _one(fault: str, *, base: Path, replicas: int, timeout: float, window: float) -> Outcome:
    if fault == "agent":
        return kill_agent(base, replicas=replicas, timeout=timeout, window=window)
    child, _, at = fault.partition("@")
    return kill_child_in_rollout(base, child=child, at=float(at), replicas=replicas,
                                 timeout=timeout)


def _seconds(values: list[float | None]) -> str:
    done = [v for v in values if v is not None]
    if not done:
        return "never"
    text = f"{statistics.median(done):.1f} / {max(done):.1f}"
    missing = len(values) - len(done)
    return text + (f" ({missing} never)" if missing else "")


def _row(fault: str, outcomes: list[Outcome]) -> str:
    def per_run(values: list[int]) -> str:
        return "/".join(str(v) for v in values)

    finals = [o.final for o in outcomes]
    recovered = sum(1 for o in outcomes if o.recovery.seconds is not None
                    and (o.after is None or o.after.seconds is not None))
    cells = [
        fault, str(len(outcomes)), f"{recovered}/{len(outcomes)}",
        per_run([t.lost for t in finals]), per_run([t.duplicates for t in finals]),
        per_run([t.orphans for t in finals]),
        per_run([o.recovery.max_duplicates for o in outcomes]) + " · "
        + per_run([o.recovery.max_orphans for o in outcomes]),
        per_run([o.left_after_zero for o in outcomes]),
        per_run([o.left_after_stop for o in outcomes]),
        _seconds([o.recovery.seconds for o in outcomes]),
    ]
    return "| " + " | ".join(cells) + " |"


def _notes(outcomes: list[Outcome]) -> list[str]:
    """Per-fault figures from the outcomes' notes, one value per run."""
    keys: list[str] = []
    for o in outcomes:
        keys += [k for k, v in o.notes.items() if k not in keys
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = [f"{k}: " + "/".join(str(o.notes.get(k, "-")) for o in outcomes) for k in keys]
    if any(o.after is not None for o in outcomes):
        out.append("clean again after the agent came back (s): " + "/".join(
            "never" if o.after is None or o.after.seconds is None else f"{o.after.seconds:.1f}"
            for o in outcomes))
    return out


HEADER = ("| fault | runs | recovered | lost | duplicates | orphans | high-water dup · orph | "
          "left after scale 0 | left after Ctrl-C | recovery s median / max |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=200)
    parser.add_argument("--agent-replicas", type=int, default=None,
                        help="replicas for the agent fault (default: --replicas)")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated, of {', '.join(FAULTS)}, rss")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a recovery may take before it counts as never")
    parser.add_argument("--window", type=float, default=70.0,
                        help="seconds the killed agent stays away after the recovery (log "
                        "lines per second and taint changes are counted then)")
    parser.add_argument("--no-rss", action="store_true", help="skip the ConfigMap RSS figure")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    print(f"# bench/chaos.py --runs {args.runs} --replicas {args.replicas} "
          f"--faults {','.join(faults)}")
    print(f"started {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; cores "
          f"{os.cpu_count()}; load average {_load()}; python {sys.version.split()[0]}",
          flush=True)
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="k8sbridge-chaos-") as tmp:
        for fault in faults:
            replicas = (args.agent_replicas or args.replicas) if fault == "agent" \
                else args.replicas
            for i in range(args.runs):
                start = time.monotonic()
                outcome = _one(fault, base=Path(tmp) / f"{fault.replace('@', '-')}-{i}",
                               replicas=replicas, timeout=args.timeout, window=args.window)
                results.setdefault(fault, []).append(outcome)
                print(f"  run {i + 1} ({time.monotonic() - start:.0f}s, load {_load()}): "
                      f"{outcome.describe()}", flush=True)
        growths: list[Growth] = []
        if not args.no_rss:
            for i in range(args.runs):
                growth = configmap_updates(Path(tmp) / f"rss-{i}")
                growths.append(growth)
                print(f"  rss run {i + 1}: {growth.describe()}", flush=True)
    print()
    print(f"finished {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; load average "
          f"{_load()}")
    print()
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for fault, outcomes in results.items():
        print(_row(fault, outcomes))
    print()
    for fault, outcomes in results.items():
        print(f"- {fault}: " + "; ".join(_notes(outcomes)))
    if growths:
        mb = 1e6
        print()
        print("| devkube, 100 updates of a 1 MB ConfigMap | RSS before (MB) | after | growth | "
              "peak |")
        print("|---|---|---|---|---|")
        for i, g in enumerate(growths):
            print(f"| run {i + 1} | {g.before / mb:.0f} | {g.after / mb:.0f} | "
                  f"+{(g.after - g.before) / mb:.0f} | {g.peak / mb:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
