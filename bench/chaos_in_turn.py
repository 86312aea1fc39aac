"""Issue 18's chaos figures: the bridge, the master, an agent and devkube killed in turn, three
times each, at seeded random moments of one rollout (docs/reliability.md, "Chaos, measured").

Why a script beside the test: the test (``tests/e2e/test_surviving_chaos_in_turn.py``, marker
``chaos``) runs the same procedure (``tests/e2e/chaos_in_turn.py``) at a reduced shape that
fits the test command's time; this runs it at 200 replicas with the Lease timings of
production (15 s / 10 s / 2 s) and prints one row per kill and the totals. "part back": the
kill → the standby leads (bridge), or the restarted part printed its ready line;
"re-subscribed": the restarted master ready → the bridge's framework active there again;
"clean": the kill → every wanted pod Running with one task process, none of a dead pod, for
3 s (``chaos.converge``).

Run: ``python bench/chaos_in_turn.py [--seed N] [--replicas 200] [--rounds 3]
[--faults master,...] [--bridge-env K8SBRIDGE_X=V ...]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.chaos_in_turn import FAULTS, run_in_turn  # noqa: E402


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--replicas", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="the faults of a round, in turn (default: all four)")
    parser.add_argument("--bridge-env", action="append", default=[], metavar="K8SBRIDGE_X=V",
                        help="a setting of both bridge replicas (repeatable)")
    args = parser.parse_args()
    faults = tuple(f for f in args.faults.split(",") if f)
    if not faults or set(faults) - set(FAULTS):
        parser.error(f"--faults: a comma-separated list of {', '.join(FAULTS)}")
    bridge_env = dict(item.split("=", 1) for item in args.bridge_env)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    extra = "".join(f" --bridge-env {k}={v}" for k, v in bridge_env.items())
    print(f"# bench/chaos_in_turn.py --seed {seed} --replicas {args.replicas} "
          f"--rounds {args.rounds} --faults {','.join(faults)}{extra}")
    print(f"started {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}; "
          f"cores {os.cpu_count()}; load average {_load()}", flush=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="k8sbridge-chaos-turn-") as tmp:
        run = run_in_turn(Path(tmp), seed=seed, replicas=args.replicas, rounds=args.rounds,
                          timeout=args.timeout, say=lambda line: print(line, flush=True),
                          faults=faults, bridge_env=bridge_env)
    print(f"finished after {time.monotonic() - start:.0f}s; load average {_load()}")
    print()
    print("| # | fault | at s | wanted | running | lost | dup processes | orphan processes | "
          "orphan tasks | pods with 2 live tasks | part back s | re-subscribed s | clean s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, t in enumerate(run.turns, 1):
        last = t.recovery.last
        print(f"| {i} | {t.kill.fault} | {t.kill.at:g} | {t.wanted} | {last.ready} | "
              f"{last.lost} | {last.duplicates} | {last.orphans} | {t.orphan_tasks} | "
              f"{t.doubled_pods} | {_s(t.part_back)} | "
              f"{_s(t.resubscribed) if t.kill.fault == 'master' else '-'} | "
              f"{_s(t.recovery.seconds)} |")
    print()
    for fault in faults:
        turns = [t for t in run.turns if t.kill.fault == fault]
        backs = [t.part_back for t in turns]
        cleans = [t.recovery.seconds for t in turns]
        print(f"- {fault}: part back (s) {'/'.join(_s(b) for b in backs)}; workload clean (s) "
              f"{'/'.join(_s(c) for c in cleans)}; master account clean (s after) "
              f"{'/'.join(_s(t.master_clean) for t in turns)}")
    resub = [t.resubscribed for t in run.turns if t.kill.fault == "master"]
    print(f"- master restarted → re-subscribed (s): {'/'.join(_s(r) for r in resub)}")
    seen = [r for r in resub if r is not None]
    if seen:
        print(f"  median {statistics.median(seen):.1f} s, max {max(seen):.1f} s "
              f"({len(resub) - len(seen)} never)")
    print(f"- pods made {run.pods_made}; lost status transitions {run.lost_transitions} "
          f"{run.lost_examples}; task processes left 60 s after scaling to 0: "
          f"{run.left_after_zero}; left after every part stopped: {run.left_after_stop}")
    exits = [(i, t.notes["exited by themselves"]) for i, t in enumerate(run.turns, 1)
             if "exited by themselves" in t.notes]
    for i, what in exits:
        print(f"- during turn {i}, exited by themselves (and restarted): {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
