"""Preemption's cost in one placement pass: high-priority pods against agents full of
lower-priority ones.

Why: a pass searches victims for the pods that fit nowhere, and each search reads every
candidate agent's pods; a burst of high-priority pods must not stall the offer loop. Agents
have no offer (full) and 8 running pods of 0.9 cpu, priorities 0-2; pending pods of 1.5 cpu,
priority 100-104. Prints the process CPU time per pass (the box is shared). Bounded: a fixed
number of repetitions. ``--constrained``: the running pods are of four apps, and each pending
pod avoids app ``t0`` on its host (required anti-affinity) and spreads its own app over hosts
(DoNotSchedule, maxSkew 1), so preemption asks those filters again with the victims gone.

    python bench/bench_preemption.py [--pods 1000] [--agents 500] [--runs 5] [--constrained]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.model import cluster, pods
from k8sbridge.scheduler import stack

HOSTNAME = cluster.LABEL_HOSTNAME


def _pod(name: str, cpu: str, priority: int, shape: int = 0,
         constrained: bool = False) -> pods.PodRequest:
    spec: dict[str, Any] = {"priority": priority, "containers": [
        {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}}}]}
    if constrained:
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "t0"}}, "topologyKey": HOSTNAME}]}}
        spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": HOSTNAME, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": f"t{shape}"}}}]
    return pods.parse_pod({
        "metadata": {"name": name, "namespace": "bench", "uid": f"u-{name}",
                     "labels": {"app": f"t{shape}"}},
        "spec": spec})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--constrained", action="store_true")
    args = parser.parse_args()
    agents = []
    for i in range(args.agents):
        placed = tuple(cluster.PlacedPod.of(
            _pod(f"r{i}-{j}", "900m", j % 3, shape=j % 4 if args.constrained else 0),
            started=float(j)) for j in range(8))
        agents.append(cluster.AgentView.build(agent_id=f"a{i}", hostname=f"h{i}", pods=placed))
    view = cluster.ClusterView(agents=tuple(agents))
    pending = [_pod(f"p{k}", "1500m", 100 + k % 5, shape=k % 5, constrained=args.constrained)
               for k in range(args.pods)]
    times = []
    preempted = 0
    for _ in range(args.runs):
        c0 = time.process_time()
        result = stack.place(pending=pending, view=view)
        times.append(time.process_time() - c0)
        preempted = len(result.preemptions)
    shape = " constrained" if args.constrained else ""
    print(f"{args.pods} pending{shape} pods, {args.agents} full agents: {preempted} preemptions "
          f"per pass, pass CPU time median {statistics.median(times) * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f} ms, runs {args.runs})")


if __name__ == "__main__":
    main()
