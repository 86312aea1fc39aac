"""Takeover time of a bridge replica: kill -9 (or SIGTERM) the leader, time the standby.

Why a script: the tests (``tests/e2e/test_failing_over_between_replicas.py``) assert takeover
within a bound at short lease timings; operators need the figure at the defaults (lease 15 s,
renew deadline 10 s, retry 2 s), several times, with the pieces apart. Per round: two replicas
(``k8sbridge run --master --kubeconfig`` with ``leader.enabled``) beside a kernel and a devkube
process, ``--pods`` pods Running; then the leader is killed (SIGKILL, or SIGTERM with
``--graceful``) and, at the same moment, the Deployment is scaled up by one. Measured from the
kill: the standby's Lease acquisition and its SUBSCRIBED (from the timestamps in its log), and
the new pod seen Running (``kubectl get`` every 0.2 s). Checked each round: one framework, the
old tasks unchanged, no pod with two live tasks. The killed replica comes back as the next
standby, so the roles swap every round.

Run: ``python bench/bench_failover.py [--rounds 5] [--pods 3] [--graceful]
[--lease 15 --deadline 10 --retry 2]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import replicas  # noqa: E402

LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def _stamp(log: str, marker: str, *, after: float) -> float | None:
    """Wall time of the first log line containing ``marker`` at or after ``after``."""
    for line in log.splitlines():
        if marker not in line or len(line) < 23:
            continue
        try:
            when = datetime.datetime.strptime(line[:23], LOG_TIME).timestamp()
        except ValueError:
            continue
        if when >= after - 0.001:
            return when
    return None


def _round(c: replicas.Cluster, leader: replicas.Replica, standby: replicas.Replica, *,
           pods: int, graceful: bool) -> dict[str, float]:
    before = c.live_tasks()
    killed = time.time()
    if graceful:
        leader.proc.send_signal(signal.SIGTERM)
    else:
        leader.proc.send_signal(signal.SIGKILL)
    c.kubectl("scale", "deployment/web", f"--replicas={pods + 1}")
    replicas.eventually_(lambda: c.running(pods + 1), what="the new pod Running", timeout=120,
                         every=0.2)
    running = time.time() - killed
    leader.proc.wait(60)
    out = standby.output()
    acquired = _stamp(out, "leads: starting the bridge", after=killed)
    subscribed = _stamp(out, "subscribed as framework", after=killed)
    assert acquired is not None and subscribed is not None, out[-3000:]
    assert len(c.frameworks()) == 1, "a second framework registered"
    now = c.live_tasks()
    assert set(before) <= set(now), "a task of the old leader is gone"
    per_pod = c.tasks_per_pod()
    assert all(n == 1 for n in per_pod.values()), per_pod
    return {"acquired": acquired - killed, "subscribed": subscribed - killed,
            "running": running}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument("--graceful", action="store_true", help="SIGTERM instead of SIGKILL")
    parser.add_argument("--lease", type=int, default=15)
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--retry", type=float, default=2.0)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the processes' logs here (default: a temporary directory)")
    args = parser.parse_args()
    timing = (args.lease, args.deadline, args.retry)
    rows: list[dict[str, float]] = []
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="failover-")))
        else:
            work = args.work_dir
            work.mkdir(parents=True, exist_ok=True)
        c = stack.enter_context(replicas.cluster(work, cpus=16))
        names = iter(f"r{i}" for i in range(1000))
        leader = c.start_replica(next(names), timing=timing)
        replicas.eventually_(leader.leads, what="the first leader", timeout=120)
        c.kubectl("apply", "-f", str(replicas.EXAMPLES / "deployment.yaml"))
        c.kubectl("scale", "deployment/web", f"--replicas={args.pods}")
        pods = args.pods
        replicas.eventually_(lambda: c.running(pods), what="pods Running", timeout=180)
        for index in range(args.rounds):
            standby = c.start_replica(next(names), timing=timing)
            replicas.eventually_(lambda s=standby: "standby" in s.output(), what="standby")
            time.sleep(2 * args.retry + 1)  # the standby has seen the leader renew
            row = _round(c, leader, standby, pods=pods, graceful=args.graceful)
            pods += 1
            rows.append(row)
            print(f"round {index + 1}: Lease acquired {row['acquired']:.2f} s, SUBSCRIBED "
                  f"{row['subscribed']:.2f} s, new pod Running {row['running']:.2f} s after "
                  f"the {'SIGTERM' if args.graceful else 'kill -9'}", flush=True)
            leader = standby
    what = "SIGTERM" if args.graceful else "kill -9"
    print(f"\n{what} of the leader, lease {args.lease} s / renew deadline {args.deadline} s / "
          f"retry {args.retry} s, {args.rounds} rounds (median, max):")
    for key, label in (("acquired", "standby holds the Lease"),
                       ("subscribed", "standby SUBSCRIBED (same framework id)"),
                       ("running", "a pod created at the kill Running")):
        values = [r[key] for r in rows]
        print(f"  {label:40s} {statistics.median(values):6.2f} s  {max(values):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
