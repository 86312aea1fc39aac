"""Declined offers per placed pod, with and without offers shaped by demand (issue 16).

Why: shaping (``scheduler.shaping``: offer_constraints and min_allocatable_resources sent with
UPDATE_FRAMEWORK) exists so the master stops offering what the pending pods cannot use; this
counts what that saves on a mixed workload. The embedded kernel, devkube and the bridge run in
this process (``app.running_embedded``, three agents of racks r1/r2/r3 with 4, 2 and 8 cpus);
the workload is pods pinned to rack r1 by nodeSelector, pods too large for every agent but r3,
and pods that fit anywhere, created at once, plus one pod no agent can take (rack r9) that stays
pending the whole run, as a mis-typed selector would. Each run waits until every placeable pod
runs, then counts the offers the bridge received, used and declined (its /metrics).

    python bench/bench_offer_shaping.py [--runs 3] [--pods 30]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge import app  # noqa: E402
from tests.integration.conftest import fast_settings  # noqa: E402
from tests.integration.test_exporting_metrics import _scrape, _value  # noqa: E402


def _pod(name: str, *, selector: dict[str, str] | None = None, cpu: str = "100m") -> Any:
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0, "containers": [
        {"name": "c", "image": "busybox", "command": ["sleep", "600"],
         "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def one_run(shaped: bool, pods: int, base: Path) -> dict[str, float]:
    settings = fast_settings(base)
    settings = dataclasses.replace(settings, scheduler=dataclasses.replace(
        settings.scheduler, shape_offers=shaped))
    async with app.running_embedded(settings) as targets:
        kube = targets.bridge.kube
        third = pods // 3
        bodies = [_pod(f"r1-{i}", selector={"rack": "r1"}) for i in range(third)]
        bodies += [_pod(f"big-{i}", cpu="3") for i in range(2)]  # only r3 (8 cpus) holds one
        bodies += [_pod(f"any-{i}") for i in range(pods - len(bodies))]
        bodies.append(_pod("nowhere", selector={"rack": "r9"}))
        before = await _scrape(targets)
        started = time.monotonic()
        for body in bodies:
            await kube.create("/api/v1/namespaces/default/pods", body)
        want = len(bodies) - 1
        while time.monotonic() - started < 120:
            items = (await kube.get("/api/v1/namespaces/default/pods"))["items"]
            if sum((p.get("status") or {}).get("phase") == "Running" for p in items) >= want:
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"not all {want} pods ran within 120 s")
        took = time.monotonic() - started
        await asyncio.sleep(5.0)  # the pending pod's steady state: offers keep coming or not
        after = await _scrape(targets)

        def delta(outcome: str) -> float:
            name = "k8sbridge_offers_total"
            return _value(after, name, outcome=outcome) - _value(before, name, outcome=outcome)

        return {"received": delta("received"), "used": delta("used"),
                "declined": delta("declined"), "placed": float(want), "seconds": took}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pods", type=int, default=30)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; {args.pods} "
          f"placeable pods + 1 unplaceable, {args.runs} alternating runs each way")
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="k8sbridge-shaping-") as tmp:
        for i in range(args.runs):
            for shaped in ((True, False) if i % 2 == 0 else (False, True)):
                results[shaped].append(
                    await one_run(shaped, args.pods, Path(tmp) / f"{i}-{shaped}"))
    for shaped in (False, True):
        rows = results[shaped]
        per_pod = statistics.median(r["declined"] / r["placed"] for r in rows)
        print(f"{'shaped  ' if shaped else 'unshaped'}: declined per placed pod median "
              f"{per_pod:.2f} (runs: {', '.join(str(int(r['declined'])) for r in rows)} "
              f"declined of {', '.join(str(int(r['received'])) for r in rows)} received); "
              f"all placed in median {statistics.median(r['seconds'] for r in rows):.1f} s")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    asyncio.run(main())
