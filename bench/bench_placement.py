"""Placement throughput: 10,000 pending pods against 500 offers in one pure pass.

Why: issue 5 sets one pass ≤ 200 ms (kube-scheduler's CI floor is 270 pods/s at 5,000
nodes). Pods come from a few Deployment-like templates (as a real queue does), agents are
heterogeneous with rack/zone attributes and a ports range. Prints medians of several runs and
the machine's core count. Bounded: a fixed number of repetitions.

    python bench/bench_placement.py [--pods 10000] [--agents 500] [--runs 7] [--strategy spread]
        [--constraints] [--node-state] [--python-gc]

``--constraints`` gives a quarter of the pod shapes kube-scheduler's constraints (a zone
topology spread with DoNotSchedule, required anti-affinity per hostname, preferred node
affinity with a toleration, preferred pod affinity to another shape, a controller owner and
so the default spread constraints): issue 16's placement target. ``--node-state`` also gives
every tenth agent a PreferNoSchedule taint and cordons every fiftieth.

The pass runs under the garbage collector's thresholds the bridge process sets while it runs
(``GC_THRESHOLDS``, the same as ``k8sbridge/app.py``'s): what a pass costs in production.
``--python-gc`` keeps Python's defaults (700, 10, 10) instead; both are reported.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.model import cluster, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import stack

#: the bridge process's collector thresholds while it runs (``k8sbridge/app.py``)
GC_THRESHOLDS = (50_000, 20, 20)


def make_view(agents: int, *, constraints: bool = False) -> cluster.ClusterView:
    views = []
    for i in range(agents):
        cpus = (8, 16, 32, 64)[i % 4]
        mem = cpus * 4096
        offer = cluster.OfferView(
            id=f"offer-{i}",  # type: ignore[arg-type]
            agent_id=f"agent-{i}",  # type: ignore[arg-type]
            resources=res.parse_resources_flag(
                f"cpus:{cpus};mem:{mem};disk:100000;ports:[31000-32000]"
            ).allocated_to("kubernetes"),
            allocation_role="kubernetes",
        )
        views.append(
            cluster.AgentView.build(
                agent_id=f"agent-{i}",
                hostname=f"host-{i}.example",
                attributes=res.parse_attributes_flag(f"rack:r{i % 20};zone:z{i % 3}"),
                zone=f"z{i % 3}",
                offers=[offer],
                taints=(
                    (cluster.PROVIDER_TAINT, cluster.Taint(key="spot", effect="PreferNoSchedule"))
                    if constraints and i % 10 == 0 else (cluster.PROVIDER_TAINT,)
                ),
                unschedulable=constraints and i % 50 == 49,
            )
        )
    return cluster.ClusterView(agents=tuple(views))


TEMPLATES = [
    {"cpu": "100m", "memory": "128Mi"},
    {"cpu": "250m", "memory": "256Mi"},
    {"cpu": "500m", "memory": "512Mi"},
    {"cpu": "1", "memory": "1Gi"},
    {"cpu": "50m", "memory": "64Mi"},
]


def _constrain(t: int, spec: dict[str, Any], meta: dict[str, Any]) -> None:
    if t == 3:
        spec["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "t3"}}}
        ]
    elif t == 5:
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app": "t5"}}}
        ]}}
    elif t == 9:
        spec["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [
                {"key": "rack", "operator": "In", "values": ["r1", "r2", "r3", "r4", "r5"]}]}}
        ]}}
        spec["tolerations"] = [{"key": "spot", "operator": "Exists"}]
    elif t == 15:
        spec["affinity"] = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": {
                "topologyKey": "topology.kubernetes.io/zone",
                "labelSelector": {"matchLabels": {"app": "t3"}}}}
        ]}}
    elif t == 17:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "rs17", "uid": "rs17-uid", "controller": True}]


def make_raw_pods(
    count: int, *, templates: int = 20, constraints: bool = False
) -> list[dict[str, object]]:
    out = []
    for i in range(count):
        t = i % templates
        spec: dict[str, object] = {
            "containers": [
                {"name": "app", "image": "busybox", "resources": {"requests": TEMPLATES[t % 5]}}
            ]
        }
        if t == 7:
            spec["nodeSelector"] = {"rack": "r3"}
        if t == 11:
            spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [
                                {"key": "topology.kubernetes.io/zone", "operator": "In",
                                 "values": ["z1", "z2"]}
                            ]}
                        ]
                    }
                }
            }
        if t == 13:
            spec["containers"][0]["resources"] = {"requests": {"cpu": "1000"}}  # type: ignore[index]
        if t >= 20:  # distinct shapes beyond the base twenty
            spec["containers"][0]["name"] = f"app{t}"  # type: ignore[index]
        meta: dict[str, Any] = {"name": f"p{i}", "namespace": "bench", "uid": f"u{i}",
                                "labels": {"app": f"t{t}"}}
        if constraints:
            _constrain(t, spec, meta)
        item: dict[str, object] = {"metadata": meta, "spec": spec}
        out.append(item)
    return out


def make_pods(count: int, *, templates: int = 20) -> list[pods.PodRequest]:
    return [pods.parse_pod(raw) for raw in make_raw_pods(count, templates=templates)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--strategy", default="spread", choices=["spread", "binpack"])
    parser.add_argument("--templates", type=int, default=20, help="distinct pod shapes")
    parser.add_argument("--constraints", action="store_true",
                        help="pod affinity, anti-affinity and spread (see the docstring)")
    parser.add_argument("--node-state", action="store_true",
                        help="PreferNoSchedule taints and cordons on some agents")
    parser.add_argument("--python-gc", action="store_true",
                        help="Python's default gc thresholds, not the bridge's GC_THRESHOLDS")
    args = parser.parse_args()
    if not args.python_gc:
        gc.set_threshold(*GC_THRESHOLDS)
    view = make_view(args.agents, constraints=args.node_state)
    raw = make_raw_pods(args.pods, templates=args.templates, constraints=args.constraints)
    parse_times = []
    pending: list[pods.PodRequest] = []
    for _ in range(3):
        t0 = time.perf_counter()
        pending = [pods.parse_pod(r) for r in raw]
        parse_times.append(time.perf_counter() - t0)
    settings = stack.StackSettings(strategy=args.strategy)
    times = []
    cpu_times = []  # process CPU time: less sensitive to other load on a shared machine
    result = None
    for _ in range(args.runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = stack.place(pending=pending, view=view, settings=settings)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    assert result is not None
    median = statistics.median(times)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}  load average: {load}  python: {sys.version.split()[0]}")
    print(f"pods: {args.pods}  agents/offers: {args.agents}  strategy: {args.strategy}  "
          f"pod shapes: {args.templates}  constraints: {args.constraints}  "
          f"node state: {args.node_state}  gc thresholds: {gc.get_threshold()}")
    print(f"placed: {len(result.assignments)}  unplaced: {len(result.unplaced)}")
    if result.unplaced:
        print(f"example explanation: {result.unplaced[0].explanation.message}")
    print(f"pass median: {median * 1000:.1f} ms  (min {min(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms, runs {args.runs})")
    print(f"pass CPU time median: {statistics.median(cpu_times) * 1000:.1f} ms "
          f"(min {min(cpu_times) * 1000:.1f} ms)")
    print(f"throughput: {args.pods / median:,.0f} pods/s (wall median)")
    print(f"parse_pod (not in the pass): {statistics.median(parse_times) * 1e6 / args.pods:.1f} "
          f"us/pod median of 3")


if __name__ == "__main__":
    main()
