"""Benchmark: one full allocation pass of the kernel's DRF allocator.

Why: the allocator runs inside the master's event loop every allocation interval (1 s); a pass
that takes long stalls every other master duty. The issue's target is <= 50 ms for 1,000 agents
x 50 frameworks in 5 roles (Mesos' C++ allocator: ~1 s for 10,000 agents x 1,000 frameworks).

Run: ``python bench/bench_allocator.py [--agents 1000] [--frameworks 50] [--roles 5] [--runs 7]``.
Each run builds a fresh allocator (not timed), then times one ``allocate()`` over all agents.
A second figure times a steady-state pass: every grant is declined (refuse_seconds=0) and the
next pass re-offers everything, the common case in a busy cluster. A third times a first pass
with quota on every role, static reservations and offer constraints. Prints medians, the
machine's core count and load. Bounded: a few seconds in total.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.kernel import allocator as alloc
from k8sbridge.model.ids import AgentId, FrameworkId
from k8sbridge.model.resources import parse_attributes_flag, parse_resources_flag

PLAIN = "cpus:16;mem:65536;disk:409600;ports:[31000-32000]"
RESERVED = "cpus(role-0):4;mem(role-0):8192;cpus:12;mem:57344;disk:409600;ports:[31000-32000]"


def build(
    *, agents: int, frameworks: int, roles: int, seed: int, rich: bool = False
) -> alloc.Allocator:
    """The plain shape, or ``rich``: quota on every role, static reservations on every fifth
    agent and a rack constraint on every tenth framework."""
    allocator = alloc.Allocator(seed=seed)
    for i in range(agents):
        allocator.add_agent(
            AgentId(f"agent-{i}"),
            total=parse_resources_flag(RESERVED if rich and i % 5 == 0 else PLAIN),
            attributes=parse_attributes_flag(f"rack:r{i % 20}"),
            hostname=f"host-{i}",
        )
    for j in range(frameworks):
        constraints = None
        if rich and j % 10 == 0:
            constraints = {
                "role_constraints": {
                    f"role-{j % roles}": {
                        "groups": [
                            {
                                "attribute_constraints": [
                                    {
                                        "selector": {"attribute_name": "rack"},
                                        "predicate": {"text_matches": {"regex": "r1[0-9]"}},
                                    }
                                ]
                            }
                        ]
                    }
                }
            }
        allocator.add_framework(
            FrameworkId(f"fw-{j}"), roles=[f"role-{j % roles}"], offer_constraints=constraints
        )
    if rich:
        for r in range(roles):
            allocator.update_quota(f"role-{r}", {"cpus": 16.0 * agents / roles * 0.9})
    return allocator


@contextlib.contextmanager
def timed(into: list[tuple[float, float]]) -> Iterator[None]:
    """Record (wall, CPU) seconds: on a shared box the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into.append((time.perf_counter() - wall, time.process_time() - cpu))


def report(name: str, samples: list[tuple[float, float]]) -> None:
    wall = [w * 1000 for w, _ in samples]
    cpu = [c * 1000 for _, c in samples]
    print(
        f"{name}  wall median {statistics.median(wall):.1f} ms (min {min(wall):.1f})   "
        f"cpu median {statistics.median(cpu):.1f} ms (min {min(cpu):.1f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--frameworks", type=int, default=50)
    parser.add_argument("--roles", type=int, default=5)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    first: list[tuple[float, float]] = []
    steady: list[tuple[float, float]] = []
    rich: list[tuple[float, float]] = []
    grants = 0
    rich_grants = 0
    for run in range(args.runs):
        allocator = build(
            agents=args.agents, frameworks=args.frameworks, roles=args.roles, seed=run
        )
        with timed(first):
            made = allocator.allocate(now=0.0)
        grants = len(made)
        for grant in made:
            allocator.recover(
                agent_id=grant.agent_id,
                framework_id=grant.framework_id,
                resources=grant.resources,
                now=0.0,
                refuse_seconds=0,
            )
        with timed(steady):
            allocator.allocate(now=1.0)
        allocator = build(
            agents=args.agents, frameworks=args.frameworks, roles=args.roles, seed=run, rich=True
        )
        with timed(rich):
            rich_grants = len(allocator.allocate(now=0.0))

    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  load average: {load}")
    print(
        f"shape: {args.agents} agents x {args.frameworks} frameworks in {args.roles} roles, "
        f"{args.runs} runs, {grants} grants per pass"
    )
    report("first pass ", first)
    report("steady pass", steady)
    report("rich pass  ", rich)
    print(
        f"(rich: quota on every role, reservations on 1/5 agents, constraints on 1/10 "
        f"frameworks, {rich_grants} grants)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
