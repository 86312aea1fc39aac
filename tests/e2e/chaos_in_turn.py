"""Issue 18's chaos, measured: ``kill -9`` of the bridge, the master, an agent and devkube in
turn, at seeded random moments of a rollout, each part restarted as a supervisor would.

Why a cluster of separate processes: in ``k8sbridge run`` the kernel is one process (master and
agents), so neither "the master restarted from its work dir" nor "one agent process" exists
there. Here each part is a process of its own, as in production: ``k8sbridge kernel master``
(with a work dir), ``k8sbridge kernel agent`` processes, ``k8sbridge devkube`` and two bridge
replicas with leader election (``leader.enabled``: killing the leader makes the standby take
over). The harness is their supervisor: a killed part is started again on the same work dir
after ``RESTART_DELAY`` (``supervise.RestartPolicy``'s first delay), a killed bridge coming
back as the standby.

The shape (``plan``, pure and seeded): ``rounds`` rounds of the four faults in turn; fault k is
done during step k of the rollout (step 0 scales 0 → N, then N → 3N/4 and back, alternately)
at a random moment ``at`` seconds after ``kubectl scale`` returned. After each kill: the
part's own recovery (the standby leads: takeover; the master, agent or devkube ready again;
then, for the master, the framework active there again: re-subscribed), then the workload's recovery
(``chaos.converge``: every wanted pod Running, one task process each, none of a dead pod).
Then the master's account, waited for up to 30 s: live tasks of no live pod (orphan tasks)
and pods with two live tasks (a task being killed after a scale-down is still live there).

A *lost status transition*: a pod seen live with its container's process running on the host,
still live ``STATUS_GRACE`` seconds later, that no watch of the API server (re-listing after
every break, ``chaos.PodWatch``) ever saw Running.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.chaos import (
    NOTHING,
    Kube,
    PodWatch,
    Recovery,
    Tally,
    converge,
    deployment,
    drain,
    kubectl,
    pod_views,
    processes_mentioning,
    tally,
    task_processes,
)
from tests.e2e.chaos_clusters import Part, Separate, sweep
from tests.e2e.chaos_faults import new_token

__all__ = ["FAULTS", "Kill", "Run", "Turn", "TurnCluster", "plan", "run_in_turn"]

FAULTS = ("bridge", "master", "agent", "devkube")
APP = "chaos"
RESTART_DELAY = 1.0  # as supervise.RestartPolicy.initial_seconds
STATUS_GRACE = 5.0  # a pod running this long must have been seen Running
STOP_LINGER = 3.0  # after every part stopped, what still runs this long later is left behind
LIVE = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING")
LEADER = "k8sbridge is ready (leader): framework "
STANDBY = "k8sbridge is a standby until it holds the leader Lease"


@dataclasses.dataclass(frozen=True, slots=True)
class Kill:
    fault: str  # one of FAULTS
    at: float  # seconds after the step's ``kubectl scale`` returned
    target: int  # which agent (the agent fault); 0 otherwise


def plan(seed: int, *, rounds: int = 3, agents: int = 2,
         spread: tuple[float, float] = (0.2, 4.0),
         faults: tuple[str, ...] = FAULTS) -> list[Kill]:
    """``rounds`` × the faults (default: the four) in turn, each at a seeded random moment."""
    rng = random.Random(seed)
    out: list[Kill] = []
    for _ in range(rounds):
        for fault in faults:
            at = round(rng.uniform(*spread), 2)
            target = rng.randrange(agents) if fault == "agent" else 0
            out.append(Kill(fault=fault, at=at, target=target))
    return out


def step_target(step: int, replicas: int) -> int:
    """The replicas wanted by rollout step ``step``: N, then 3N/4 and N alternately."""
    return replicas - replicas // 4 if step % 2 else replicas


@dataclasses.dataclass(slots=True)
class Turn:
    """One kill and what followed. ``part_back``: seconds from the kill to the part's own
    recovery (bridge: the standby leads; master: the framework active again; agent, devkube:
    ready again); ``recovery``: to the workload's clean account that lasted."""

    kill: Kill
    wanted: int
    part_back: float | None = None
    recovery: Recovery = NOTHING
    resubscribed: float | None = None  # the master fault: its restart → framework active
    orphan_tasks: int = -1  # live tasks at the master of no live pod
    doubled_pods: int = -1  # pods with two live tasks at the master
    master_clean: float | None = None  # seconds after the workload's recovery
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        def s(v: float | None) -> str:
            return "never" if v is None else f"{v:.1f}s"
        last = self.recovery.last
        again = (f", re-subscribed {s(self.resubscribed)} after the restart"
                 if self.kill.fault == "master" else "")
        return (f"{self.kill.fault} at {self.kill.at:g}s (wanted {self.wanted}): part back "
                f"{s(self.part_back)}{again}, workload clean {s(self.recovery.seconds)}; running "
                f"{last.ready}/{last.wanted}, lost {last.lost}, duplicates {last.duplicates}, "
                f"orphans {last.orphans}; master: orphan tasks {self.orphan_tasks}, pods with "
                f"two live tasks {self.doubled_pods} (clean {s(self.master_clean)} later); "
                f"{self.notes}")


@dataclasses.dataclass(slots=True)
class Run:
    seed: int
    replicas: int
    turns: list[Turn] = dataclasses.field(default_factory=list)
    lost_transitions: int = -1
    lost_examples: list[str] = dataclasses.field(default_factory=list)
    pods_made: int = 0
    left_after_zero: int = -1
    left_after_stop: list[str] = dataclasses.field(default_factory=list)  # processes, by argv
    swept: int = 0


class TurnCluster(Separate):
    """``Separate`` with two bridge replicas (leader election on) instead of one bridge."""

    def __init__(self, base: Path, *, token: str, agents: int = 2,
                 lease: tuple[float, float, float] = (15, 10, 2),
                 bridge_env: dict[str, str] | None = None) -> None:
        duration, deadline, retry = lease
        super().__init__(base, token=token, agents=agents, bridge_env={
            "K8SBRIDGE_LEADER_ENABLED": "true",
            "K8SBRIDGE_LEADER_LEASE_DURATION_SECONDS": f"{duration:g}",
            "K8SBRIDGE_LEADER_RENEW_DEADLINE_SECONDS": f"{deadline:g}",
            "K8SBRIDGE_LEADER_RETRY_PERIOD_SECONDS": f"{retry:g}",
            **(bridge_env or {}),
        })
        logs = base / "logs"
        ready = r"^k8sbridge is (?:ready \(leader\)|a standby)"
        first = self.bridge
        self.bridges = [
            Part(f"bridge-{i}", first.argv, log=logs / f"bridge-{i}.log", ready=ready)
            for i in (1, 2)
        ]
        for part in self.bridges:
            part.env = dict(first.env)
        self.bridge = self.bridges[0]
        self.exits: list[str] = []  # parts that exited by themselves (and were restarted)

    def revive(self) -> None:
        """As the supervisor does: start again every part that exited by itself."""
        for part in self.parts:
            if part.proc is None or part.proc.poll() is None:
                continue
            last = part.text().strip().splitlines()[-2:]
            self.exits.append(f"{part.name} exited {part.proc.returncode}: {last}")
            part.start()

    @property
    def parts(self) -> list[Part]:
        return [self.master_part, *self.agents, self.devkube, *self.bridges]

    def start(self) -> TurnCluster:
        self.master_part.start()
        self.devkube.start()
        self.master_part.wait_ready()
        for agent in self.agents:
            agent.start()
        for agent in self.agents:
            agent.wait_ready()
        self.devkube.wait_ready()
        for part in self.bridges:
            part.start()
        for part in self.bridges:
            part.wait_ready()
        self.framework = self.wait_leader(timeout=120)[1]
        return self

    def leader(self) -> tuple[Part, str] | None:
        """The replica that leads in its current life, and its framework id."""
        for part in self.bridges:
            if part.proc is None or part.proc.poll() is not None:
                continue
            text = part.text()
            if LEADER in text:
                return part, text.split(LEADER, 1)[1].split(",", 1)[0]
        return None

    def wait_leader(self, *, timeout: float, besides: Part | None = None
                    ) -> tuple[Part, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.revive()
            found = self.leader()
            if found is not None and found[0] is not besides:
                return found
            time.sleep(0.1)
        tails = {p.name: p.text()[-1500:] for p in self.bridges}
        raise AssertionError(f"no bridge replica leads within {timeout}s: {tails}")

    def master_state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.master + "/state", timeout=10) as reply:
            state: dict[str, Any] = json.loads(reply.read())
            return state

    def subscribed(self) -> bool:
        """The master (maybe just restarted) has the bridge's framework active."""
        try:
            state = self.master_state()
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return any(f["id"] == self.framework and f.get("active") and f.get("connected")
                   for f in state.get("frameworks") or [])

    def master_tasks(self) -> Counter[str]:
        """Live tasks of the bridge's framework at the master, per pod uid."""
        state = self.master_state()
        return Counter(str(t["id"]).split(".")[0] for f in state.get("frameworks") or []
                       if f["id"] == self.framework
                       for t in f.get("tasks") or [] if t.get("state") in LIVE)


def _wait(probe: Any, *, since: float, timeout: float) -> float | None:
    while time.monotonic() - since < timeout:
        if probe():
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid}: gone"
    return f"{pid}: " + raw.replace(b"\0", b" ").decode(errors="replace")[:200]


def _restart(part: Part) -> None:
    time.sleep(RESTART_DELAY)
    part.start()


class _Ledger:
    """What every look saw: when each pod's process was first seen, when the pod was last
    seen live with it (for lost status transitions)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def note(self, live_with_process: set[str]) -> None:
        now = time.monotonic()
        for uid in live_with_process:
            self.first.setdefault(uid, now)
            self.last[uid] = now

    def ran(self) -> set[str]:
        return {uid for uid, t in self.first.items() if self.last[uid] - t >= STATUS_GRACE}


def _do(cluster: TurnCluster, kill: Kill, turn: Turn, *, timeout: float) -> float:
    """Kill the part, restart it as a supervisor would; when it was killed. Sets the turn's
    ``part_back`` and, for the master, ``resubscribed``."""
    if kill.fault == "bridge":
        # a leader that fenced itself while devkube was away (the turn before) leaves no leader
        # until the standby's Lease wait is over: the kill is of the next one
        old, _ = cluster.wait_leader(timeout=timeout)
        old.kill()
        killed = time.monotonic()
        _restart(old)
        new, _ = cluster.wait_leader(timeout=timeout, besides=old)
        turn.part_back = time.monotonic() - killed
        old.wait_ready(timeout=timeout)  # back as the standby
        assert new is not old
        return killed
    part = {"master": cluster.master_part, "devkube": cluster.devkube,
            "agent": cluster.agents[kill.target]}[kill.fault]
    part.kill()
    killed = time.monotonic()
    _restart(part)
    part.wait_ready(timeout=timeout)
    turn.part_back = time.monotonic() - killed
    if kill.fault == "master":
        turn.resubscribed = _wait(cluster.subscribed, since=time.monotonic(), timeout=timeout)
    return killed


def _master_account(cluster: TurnCluster, turn: Turn, *, timeout: float) -> None:
    """The master's live tasks against the live pods, once clean or after ``timeout``."""
    since = time.monotonic()
    while True:
        try:
            tasks = cluster.master_tasks()
            live = {v.uid for v in pod_views(cluster.kube.pods(f"app={APP}")) if v.live}
        except (OSError, urllib.error.URLError, ValueError) as e:
            turn.notes["master account failed"] = str(e)
        else:
            turn.orphan_tasks = sum(n for uid, n in tasks.items() if uid not in live)
            turn.doubled_pods = sum(1 for n in tasks.values() if n > 1)
            if turn.orphan_tasks == turn.doubled_pods == 0:
                turn.master_clean = time.monotonic() - since
                return
        if time.monotonic() - since > timeout:
            return
        time.sleep(0.5)


def run_in_turn(base: Path, *, seed: int, replicas: int, rounds: int = 3, agents: int = 2,
                lease: tuple[float, float, float] = (15, 10, 2), timeout: float = 120.0,
                say: Any = None, faults: tuple[str, ...] = FAULTS,
                bridge_env: dict[str, str] | None = None) -> Run:
    """One rollout with ``plan(seed, rounds, faults)``'s kills; the account (``Run``).
    ``bridge_env``: settings of both replicas (``K8SBRIDGE_*``)."""
    token = new_token()
    cluster = TurnCluster(base, token=token, agents=agents, lease=lease, bridge_env=bridge_env)
    run = Run(seed=seed, replicas=replicas)
    ledger = _Ledger()
    watch: PodWatch | None = None

    def look(wanted: int) -> Tally:
        cluster.revive()
        procs = task_processes(token)
        views = pod_views(cluster.kube.pods(f"app={APP}"))
        live = {v.uid for v in views if v.live}
        ledger.note(live & {p.pod_uid for p in procs})
        return tally(wanted=wanted, pods=views, processes=procs)

    try:
        cluster.start()
        kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=deployment(APP, token=token))
        watch = PodWatch(Kube(cluster.kubeconfig), f"app={APP}").start()
        for step, kill in enumerate(plan(seed, rounds=rounds, agents=agents, faults=faults)):
            wanted = step_target(step, replicas)
            turn = Turn(kill=kill, wanted=wanted)
            kubectl(cluster.kubeconfig, "scale", f"deployment/{APP}", f"--replicas={wanted}")
            scaled = time.monotonic()
            time.sleep(max(0.0, kill.at - (time.monotonic() - scaled)))
            killed = _do(cluster, kill, turn, timeout=timeout)
            turn.recovery = converge(functools.partial(look, wanted), since=killed,
                                     timeout=timeout)
            _master_account(cluster, turn, timeout=30.0)
            if cluster.exits:
                turn.notes["exited by themselves"] = list(cluster.exits)
                cluster.exits.clear()
            run.turns.append(turn)
            if say is not None:
                say(f"  turn {step + 1}: {turn.describe()}")
        time.sleep(1.0)  # the watch's last events
        running = set(watch.running)
        run.pods_made = len(watch.stop())
        lost = sorted(ledger.ran() - running)
        run.lost_transitions = len(lost)
        run.lost_examples = lost[:5]
        kubectl(cluster.kubeconfig, "scale", f"deployment/{APP}", "--replicas=0")
        run.left_after_zero, _ = drain(lambda: len(task_processes(token)), timeout=60)
    finally:
        if watch is not None:
            watch.stop()
        for part in reversed(cluster.parts):
            part.stop()
        time.sleep(STOP_LINGER)
        run.left_after_stop = [_cmdline(pid) for pid in processes_mentioning(str(base))]
        run.swept = len(sweep(token=token, data_dir=base))
    return run
