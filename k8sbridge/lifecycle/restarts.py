"""The kubelet's restart policy, once: which terminated container starts again, and when.

Why one place: init containers, sidecars (init containers with ``restartPolicy: Always``) and
app containers follow different rules, and the crash back-off (10 s doubling to 5 min, reset
after 10 min of running) must be the same for all of them. The lifecycle machine
(``lifecycle/machine.py``) is the only caller.
"""

from __future__ import annotations

import dataclasses

from k8sbridge.lifecycle.containers import ContainerRuntime
from k8sbridge.model import pods

__all__ = [
    "BACKOFF_RESET_AFTER",
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "RestartDecision",
    "decide_restart",
    "enter_back_off",
]

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
BACKOFF_RESET_AFTER = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool
    delay: float = 0.0  # seconds from the termination to the restart
    next_back_off: float = 0.0  # remember as ContainerRuntime.back_off

    @property
    def at_once(self) -> bool:
        return self.restart and self.delay == 0


def decide_restart(
    c: ContainerRuntime, *, policy: pods.RestartPolicy
) -> RestartDecision:
    """Whether and when a terminated container starts again (the kubelet's rules).

    Init containers restart only on failure (unless the pod's policy is Never); sidecars
    always restart, whatever the pod's policy; app containers per restartPolicy. The crash
    back-off starts at 0 (the first restart is immediate), then 10 s, doubling to 5 min; it
    resets when the container had run for 10 min.
    """
    t = c.terminated
    if t is None:
        return RestartDecision(restart=False, next_back_off=c.back_off)
    succeeded = t.exit_code == 0
    done = policy == "Never" or (succeeded and (policy == "OnFailure" or c.init))
    if done and not c.sidecar:
        return RestartDecision(restart=False, next_back_off=c.back_off)
    back_off = c.back_off
    if t.started_at is not None and t.finished_at - t.started_at >= BACKOFF_RESET_AFTER:
        back_off = 0.0
    next_back_off = INITIAL_BACKOFF if back_off == 0 else min(back_off * 2, MAX_BACKOFF)
    return RestartDecision(restart=True, delay=back_off, next_back_off=next_back_off)


def enter_back_off(
    c: ContainerRuntime, *, decision: RestartDecision, pod_name: str, namespace: str, uid: str
) -> ContainerRuntime:
    """Record a restart decision; with a delay the container shows CrashLoopBackOff."""
    if not decision.restart or c.terminated is None:
        return c
    if decision.delay <= 0:
        return dataclasses.replace(c, back_off=decision.next_back_off)
    return dataclasses.replace(
        c,
        back_off=decision.next_back_off,
        restart_at=c.terminated.finished_at + decision.delay,
        waiting_reason="CrashLoopBackOff",
        waiting_message=(
            f"back-off {_duration(decision.delay)} restarting failed container={c.name} "
            f"pod={pod_name}_{namespace}({uid})"
        ),
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
