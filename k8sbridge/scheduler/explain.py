"""The words of a placement explanation: per reason, how many agents, and for resources the
request against the largest offer.

Why apart: ``stack`` decides, this only phrases the decision (kube-scheduler's FitError style,
with the bridge's own detail of what the largest offer held).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence

from k8sbridge.scheduler import feasible, plan

__all__ = ["explanation"]


def _fmt(milli: int) -> str:
    return f"{milli / feasible.MILLI:.3f}".rstrip("0").rstrip(".")


_UNITS = {"cpus": "", "mem": " MiB", "disk": " MiB", "gpus": ""}
_RESOURCE_REASONS = {reason: name for name, reason in feasible.REASON_INSUFFICIENT.items()}


def _shortage(name: str, *, own: int, executor: int, largest: int) -> str:
    """"(requested 1000, largest offer 8)": the pod's own request, as the user wrote it. The
    executor's overhead is named only when it is what tips the balance (the pod alone would
    fit the largest offer): "(requested 1 + 0.1 for the executor, largest offer 1)"."""
    unit = _UNITS.get(name, "")
    requested = f"{_fmt(own)}{unit}"
    if executor and own <= largest:
        requested += f" + {_fmt(executor)}{unit} for the executor"
    return f"(requested {requested}, largest offer {_fmt(largest)}{unit})"


def explanation(
    *,
    counts: collections.Counter[tuple[str, str]],
    rejected: Mapping[str, Sequence[int]],
    need: Mapping[str, int],
    overhead: Mapping[str, int],
    agents: Sequence[feasible.AgentState],
) -> plan.Explanation:
    """``counts``: (reason, detail) -> agents; ``rejected``: reason -> the agents dropped for
    it (the largest offer is read among them)."""
    reasons: list[plan.ReasonCount] = []
    for (reason, detail), count in counts.items():
        name = _RESOURCE_REASONS.get(reason)
        if name is not None:
            # the largest offer among the agents that were short of it
            largest = max(
                (agents[i].largest_pool_free(name) for i in rejected.get(reason, ())), default=0
            )
            detail = _shortage(
                name, own=need.get(name, 0) - overhead.get(name, 0),
                executor=overhead.get(name, 0), largest=largest,
            )
        reasons.append(plan.ReasonCount(reason=reason, detail=detail, count=count))
    reasons.sort(key=lambda r: (-r.count, r.reason, r.detail))
    return plan.Explanation(agents=len(agents), fit=0, reasons=tuple(reasons))
