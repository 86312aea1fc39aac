"""Pod status from task-status sequences: phases, conditions, container states, stale updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from k8sbridge.kubelet import statusmap as sm
from k8sbridge.lifecycle import containers as lc
from k8sbridge.lifecycle import restarts
from k8sbridge.model import tasks

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOST = "10.0.0.7"


def st(task: str, state: str, at: float, **kw: Any) -> tasks.TaskStatusView:
    return tasks.TaskStatusView(task_id=task, state=f"TASK_{state}", timestamp=T0 + at, **kw)  # type: ignore[arg-type]


def raw_pod(
    *containers: dict[str, Any], init: Sequence[dict[str, Any]] = (), **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "nodeName": "h1",
            "containers": list(containers) or [{"name": "app", "image": "nginx:1.27"}],
            **({"initContainers": list(init)} if init else {}),
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def fold(
    name: str, task: str, statuses: Sequence[tasks.TaskStatusView], *, init: bool = False,
    base: sm.ContainerRuntime | None = None,
) -> sm.ContainerRuntime:
    c = lc.start_attempt(base or sm.ContainerRuntime(name=name, init=init), task_id=task)
    for s in statuses:
        c = lc.apply_status(c, s)
    return c


def render(pod: dict[str, Any], *cs: sm.ContainerRuntime, now: float = 100) -> dict[str, Any]:
    return sm.pod_status(
        pod=pod, containers={c.name: c for c in cs}, now=T0 + now, host_ip=HOST, start_time=T0
    )


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def cstatus(status: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return status["containerStatuses"][index]  # type: ignore[no-any-return]


def test_happy_path_running_and_ready() -> None:
    c = fold("app", "t1", [st("t1", "STAGING", 0), st("t1", "STARTING", 1),
                           st("t1", "RUNNING", 2)])
    status = render(raw_pod(), c)
    assert status["phase"] == "Running"
    assert conditions(status) == {"PodReadyToStartContainers": "True", "Initialized": "True",
                                  "Ready": "True", "ContainersReady": "True",
                                  "PodScheduled": "True"}
    s = cstatus(status)
    assert s["state"] == {"running": {"startedAt": "2027-01-15T08:00:02Z"}}
    assert s["ready"] is True and s["started"] is True and s["restartCount"] == 0
    assert s["containerID"] == "mesos://t1"
    assert s["image"] == "docker.io/library/nginx:1.27"
    assert s["lastState"] == {}
    assert status["hostIP"] == HOST and status["hostIPs"] == [{"ip": HOST}]
    # no IP reported: a pod on a CNI network has none yet, a hostNetwork pod the agent's
    assert "podIP" not in status
    host_network = raw_pod()
    host_network["spec"]["hostNetwork"] = True
    on_host = render(host_network, c)
    assert on_host["podIP"] == HOST and on_host["podIPs"] == [{"ip": HOST}]
    assert status["startTime"] == "2027-01-15T08:00:00Z"
    assert status["qosClass"] == "BestEffort"
    assert sm.display_status({**raw_pod(), "status": status}) == "Running"


def test_staging_is_pending_container_creating() -> None:
    c = fold("app", "t1", [st("t1", "STAGING", 0)])
    status = render(raw_pod(), c)
    assert status["phase"] == "Pending"
    assert cstatus(status)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "containerID" not in cstatus(status) and cstatus(status)["imageID"] == ""
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert conds["ContainersReady"]["reason"] == "ContainersNotReady"
    assert conds["ContainersReady"]["message"] == "containers with unready status: [app]"
    assert "podIP" not in status
    assert sm.display_status({**raw_pod(), "status": status}) == "ContainerCreating"


OUT_OF_ORDER = [
    pytest.param(["RUNNING@5", "STARTING@1", "STAGING@0"], "running", id="reversed"),
    pytest.param(["RUNNING@5", "RUNNING@5", "RUNNING@9"], "running", id="duplicates"),
    pytest.param(["FAILED@9", "RUNNING@5"], "terminated", id="late-running-after-failure"),
    pytest.param(["FINISHED@9", "FAILED@10"], "terminated", id="second-terminal-ignored"),
    pytest.param(["RUNNING@5", "KILLING@8", "RUNNING@6"], "running", id="killing-not-undone"),
    pytest.param(["STARTING@3", "STAGING@0"], "waiting", id="starting-then-stale-staging"),
]


@pytest.mark.parametrize(("sequence", "kind"), OUT_OF_ORDER)
def test_stale_and_duplicate_updates_never_move_a_container_backwards(
    sequence: list[str], kind: str
) -> None:
    statuses = []
    for item in sequence:
        state, at = item.split("@")
        statuses.append(st("t1", state, float(at), message="Command exited with status 2"))
    c = fold("app", "t1", statuses)
    state = cstatus(render(raw_pod(), c))["state"]
    assert list(state) == [kind]
    if kind == "running":
        assert state["running"]["startedAt"] == "2027-01-15T08:00:05Z"
    first_terminal = next((s for s in statuses if s.terminal), None)
    if first_terminal is not None:
        assert c.terminated is not None and c.terminated.finished_at == first_terminal.timestamp


def test_updates_of_an_earlier_attempt_are_ignored() -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "FAILED", 2)])
    c = lc.start_attempt(c, task_id="t2")
    c = lc.apply_status(c, st("t2", "RUNNING", 5))
    c = lc.apply_status(c, st("t1", "FINISHED", 6))  # late duplicate of the old task
    c = lc.apply_status(c, st("other", "FAILED", 7))
    s = cstatus(render(raw_pod(), c))
    assert s["state"] == {"running": {"startedAt": "2027-01-15T08:00:05Z"}}
    assert s["restartCount"] == 1
    assert s["lastState"]["terminated"]["containerID"] == "mesos://t1"
    assert s["containerID"] == "mesos://t2"


@pytest.mark.parametrize(
    ("state", "kw", "exit_code", "reason", "signal"),
    [
        ("FINISHED", {}, 0, "Completed", None),
        ("FAILED", {"message": "Command exited with status 3"}, 3, "Error", None),
        ("FAILED", {"message": "Command terminated with signal Segmentation fault"}, 139,
         "Error", 11),
        ("FAILED", {"reason": "REASON_CONTAINER_LIMITATION_MEMORY",
                    "message": "Memory limit exceeded"}, 137, "OOMKilled", 9),
        ("FAILED", {"reason": "REASON_CONTAINER_LAUNCH_FAILED",
                    "message": "exec: nosuchcmd: not found"}, 128, "StartError", None),
        ("FAILED", {}, 1, "Error", None),
        ("KILLED", {"message": "Command terminated with signal Terminated"}, 143, "Error", 15),
        ("KILLED", {}, 137, "Error", 9),
        ("ERROR", {"reason": "REASON_TASK_INVALID", "message": "bad task"}, 128,
         "StartError", None),
        ("LOST", {}, 137, "ContainerStatusUnknown", None),
        ("GONE", {}, 137, "ContainerStatusUnknown", None),
        ("DROPPED", {"reason": "REASON_INVALID_OFFERS"}, 137, "ContainerStatusUnknown", None),
    ],
)
def test_terminal_states_map_to_terminated(
    state: str, kw: dict[str, Any], exit_code: int, reason: str, signal: int | None
) -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", state, 4, **kw)])
    term = cstatus(render(raw_pod(restartPolicy="Never"), c))["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term.get("signal")) == (exit_code, reason, signal)
    assert term["startedAt"] == "2027-01-15T08:00:01Z"
    assert term["finishedAt"] == "2027-01-15T08:00:04Z"
    assert term["containerID"] == "mesos://t1"
    if kw.get("message"):
        assert term["message"] == kw["message"]


@pytest.mark.parametrize(
    ("policy", "exits", "phase"),
    [
        ("Never", [0], "Succeeded"),
        ("Never", [0, 1], "Failed"),
        ("OnFailure", [0, 0], "Succeeded"),
        ("OnFailure", [0, 1], "Running"),
        ("Always", [0, 0], "Running"),
        ("Always", [1], "Running"),
    ],
)
def test_phase_follows_restart_policy_once_containers_stop(
    policy: str, exits: list[int], phase: str
) -> None:
    names = [f"c{i}" for i in range(len(exits))]
    cs = [
        fold(n, f"t{n}", [st(f"t{n}", "RUNNING", 1),
                          st(f"t{n}", "FINISHED" if e == 0 else "FAILED", 5,
                             message=f"Command exited with status {e}")])
        for n, e in zip(names, exits, strict=True)
    ]
    pod = raw_pod(*({"name": n, "image": "busybox"} for n in names), restartPolicy=policy)
    status = render(pod, *cs)
    assert status["phase"] == phase
    if phase in ("Succeeded", "Failed"):
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Ready"]["reason"] == "PodCompleted"
        assert conds["ContainersReady"]["reason"] == "PodCompleted"
        expected = "Completed" if exits[0] == 0 else "Error"  # kubectl: first container's
        assert sm.display_status({**pod, "status": status}) == expected


def test_one_container_still_waiting_keeps_the_pod_pending() -> None:
    a = fold("a", "ta", [st("ta", "RUNNING", 1)])
    b = fold("b", "tb", [st("tb", "STAGING", 1)])
    status = render(raw_pod({"name": "a"}, {"name": "b"}), a, b)
    assert status["phase"] == "Pending"
    assert {c["type"]: c.get("message") for c in status["conditions"]}["Ready"] == (
        "containers with unready status: [b]"
    )


def test_crash_loop_back_off_doubles_to_five_minutes_and_shows_in_status() -> None:
    pod = raw_pod()
    c = sm.ContainerRuntime(name="app")
    delays = []
    at = 0.0
    for attempt in range(9):
        task = f"t{attempt}"
        c = lc.start_attempt(c, task_id=task)
        c = lc.apply_status(c, st(task, "RUNNING", at + 1))
        c = lc.apply_status(c, st(task, "FAILED", at + 3, message="Command exited with status 1"))
        decision = restarts.decide_restart(c, policy="Always")
        assert decision.restart
        delays.append(decision.delay)
        c = restarts.enter_back_off(
            c, decision=decision, pod_name="web", namespace="ns", uid="uid-1"
        )
        if decision.delay:
            status = render(pod, c, now=at + 4)
            s = cstatus(status)
            assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            shown = {10: "10s", 20: "20s", 40: "40s", 80: "1m20s", 160: "2m40s", 300: "5m0s"}
            assert s["state"]["waiting"]["message"] == (
                f"back-off {shown[int(decision.delay)]} restarting failed container=app "
                "pod=web_ns(uid-1)"
            )
            assert s["lastState"]["terminated"]["exitCode"] == 1
            assert s["restartCount"] == attempt
            assert s["ready"] is False
            assert status["phase"] == "Running"
            assert sm.display_status({**pod, "status": status}) == "CrashLoopBackOff"
            assert c.restart_at == T0 + at + 3 + decision.delay
        at += 10 + decision.delay
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_back_off_resets_after_ten_minutes_of_running() -> None:
    c = sm.ContainerRuntime(name="app", back_off=160.0)
    c = fold("app", "t1", [st("t1", "RUNNING", 0), st("t1", "FAILED", 601)], base=c)
    decision = restarts.decide_restart(c, policy="Always")
    assert (decision.delay, decision.next_back_off) == (0, 10)
    short = fold("app", "t1", [st("t1", "RUNNING", 0), st("t1", "FAILED", 30)],
                 base=sm.ContainerRuntime(name="app", back_off=160.0))
    assert restarts.decide_restart(short, policy="Always").delay == 160


@pytest.mark.parametrize(
    ("policy", "state", "init", "restart"),
    [
        ("Always", "FINISHED", False, True),
        ("Always", "FAILED", False, True),
        ("OnFailure", "FINISHED", False, False),
        ("OnFailure", "FAILED", False, True),
        ("Never", "FAILED", False, False),
        ("Never", "FINISHED", False, False),
        ("Always", "FINISHED", True, False),  # a finished init container is done
        ("Always", "FAILED", True, True),
        ("Never", "FAILED", True, False),
    ],
)
def test_restart_policy_decisions(policy: str, state: str, init: bool, restart: bool) -> None:
    sidecar = sm.ContainerRuntime(name="proxy", init=True, sidecar=True)
    sidecar = fold("proxy", "t1", [st("t1", "RUNNING", 0), st("t1", state, 5)], base=sidecar)
    assert restarts.decide_restart(sidecar, policy=policy).restart is True  # type: ignore[arg-type]
    c = fold("c", "t1", [st("t1", "RUNNING", 0), st("t1", state, 5)], init=init)
    assert restarts.decide_restart(c, policy=policy).restart is restart  # type: ignore[arg-type]
    running = fold("c", "t1", [st("t1", "RUNNING", 0)])
    assert restarts.decide_restart(running, policy=policy).restart is False  # type: ignore[arg-type]


INITS = [{"name": "fetch", "image": "busybox"}, {"name": "migrate", "image": "busybox"}]


def test_init_containers_show_progress_and_hold_the_app_back() -> None:
    pod = raw_pod(init=INITS)
    fetch = fold("fetch", "ti1", [st("ti1", "RUNNING", 1), st("ti1", "FINISHED", 2)], init=True)
    migrate = fold("migrate", "ti2", [st("ti2", "RUNNING", 3)], init=True)
    app = sm.ContainerRuntime(name="app")
    status = render(pod, fetch, migrate, app)
    assert status["phase"] == "Pending"
    assert sm.display_status({**pod, "status": status}) == "Init:1/2"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [migrate]"
    assert [s["state"].keys() for s in status["initContainerStatuses"]] == [
        {"terminated"}, {"running"}]
    assert cstatus(status)["state"] == {"waiting": {"reason": "PodInitializing"}}
    first = render(pod, sm.ContainerRuntime(name="fetch", init=True),
                   sm.ContainerRuntime(name="migrate", init=True), app)
    assert sm.display_status({**pod, "status": first}) == "Init:0/2"
    migrate = lc.apply_status(migrate, st("ti2", "FINISHED", 4))
    app = fold("app", "ta", [st("ta", "RUNNING", 5)])
    done = render(pod, fetch, migrate, app)
    assert done["phase"] == "Running"
    assert conditions(done)["Initialized"] == "True"
    assert sm.display_status({**pod, "status": done}) == "Running"


def test_failed_init_container_fails_a_never_pod_and_crash_loops_otherwise() -> None:
    fetch = fold("fetch", "ti1", [st("ti1", "RUNNING", 1),
                                  st("ti1", "FAILED", 2, message="Command exited with status 1")],
                 init=True)
    never = raw_pod(init=INITS, restartPolicy="Never")
    status = render(never, fetch)
    assert status["phase"] == "Failed"
    assert sm.display_status({**never, "status": status}) == "Init:Error"
    always = raw_pod(init=INITS)
    decision = restarts.decide_restart(
        lc.apply_status(fetch, st("ti1", "FAILED", 2)), policy="Always"
    )
    looping = restarts.enter_back_off(
        fetch, decision=restarts.RestartDecision(restart=True, delay=10, next_back_off=20),
        pod_name="web", namespace="ns", uid="uid-1",
    )
    assert decision.restart
    status = render(always, looping)
    assert status["phase"] == "Pending"
    assert sm.display_status({**always, "status": status}) == "Init:CrashLoopBackOff"


def test_sidecar_counts_as_initialized_once_started() -> None:
    pod = raw_pod(init=[{"name": "proxy", "restartPolicy": "Always"}])
    proxy = fold("proxy", "tp", [st("tp", "RUNNING", 1)], init=True)
    app = fold("app", "ta", [st("ta", "RUNNING", 2)])
    status = render(pod, proxy, app)
    assert conditions(status)["Initialized"] == "True"
    assert status["phase"] == "Running"
    assert sm.display_status({**pod, "status": status}) == "Running"


PROBED = {"name": "app", "image": "nginx", "readinessProbe": {"httpGet": {"port": 80}}}


def test_readiness_follows_check_results_and_keeps_transition_times() -> None:
    pod = raw_pod(PROBED)
    c = fold("app", "t1", [st("t1", "RUNNING", 1)])
    s1 = render(pod, c, now=2)
    assert cstatus(s1)["ready"] is False and cstatus(s1)["started"] is True
    assert conditions(s1)["Ready"] == "False"
    pod["status"] = s1
    c = lc.apply_status(c, st("t1", "RUNNING", 3, check=tasks.CheckResult(type="HTTP",
                                                                         http_status=200)))
    s2 = render(pod, c, now=4)
    assert cstatus(s2)["ready"] is True and conditions(s2)["Ready"] == "True"
    by_type = {c["type"]: c for c in s2["conditions"]}
    assert by_type["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:04Z"
    assert by_type["PodScheduled"]["lastTransitionTime"] == "2027-01-15T08:00:02Z"  # kept
    pod["status"] = s2
    c = lc.apply_status(c, st("t1", "RUNNING", 5, check=tasks.CheckResult(type="HTTP",
                                                                         http_status=503)))
    s3 = render(pod, c, now=6)
    assert cstatus(s3)["ready"] is False
    assert {c["type"]: c for c in s3["conditions"]}["Ready"]["lastTransitionTime"] == (
        "2027-01-15T08:00:06Z"
    )
    assert s3["startTime"] == s1["startTime"]
    # an empty result (no status code yet) changes nothing
    same = lc.apply_status(c, st("t1", "RUNNING", 7, check=tasks.CheckResult(type="HTTP")))
    assert same.check_passed is False


@pytest.mark.parametrize(
    ("check", "ready"),
    [
        (tasks.CheckResult(type="COMMAND", exit_code=0), True),
        (tasks.CheckResult(type="COMMAND", exit_code=1), False),
        (tasks.CheckResult(type="TCP", tcp_succeeded=True), True),
        (tasks.CheckResult(type="TCP", tcp_succeeded=False), False),
        (tasks.CheckResult(type="HTTP", http_status=302), True),
        (tasks.CheckResult(type="HTTP", http_status=404), False),
    ],
)
def test_check_results_by_kind(check: tasks.CheckResult, ready: bool) -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "RUNNING", 2, check=check)])
    assert cstatus(render(raw_pod(PROBED), c))["ready"] is ready


def test_startup_probe_holds_started_until_healthy() -> None:
    pod = raw_pod({"name": "app", "startupProbe": {"exec": {"command": ["true"]}}})
    c = fold("app", "t1", [st("t1", "RUNNING", 1)])
    s = cstatus(render(pod, c))
    assert (s["started"], s["ready"]) == (False, False)
    c = lc.apply_status(c, st("t1", "RUNNING", 2, healthy=True))
    s = cstatus(render(pod, c))
    assert (s["started"], s["ready"]) == (True, True)
    c = lc.apply_status(c, st("t1", "RUNNING", 3, healthy=False))  # liveness failing
    assert cstatus(render(pod, c))["started"] is True


def test_unreachable_and_killing_make_the_container_unready() -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "UNREACHABLE", 2)])
    s = render(raw_pod(), c)
    assert cstatus(s)["ready"] is False and s["phase"] == "Running"
    c = lc.apply_status(c, st("t1", "RUNNING", 3))
    assert cstatus(render(raw_pod(), c))["ready"] is True
    c = lc.apply_status(c, st("t1", "KILLING", 4))
    s = cstatus(render(raw_pod(), c))
    assert s["ready"] is False and "running" in s["state"]


def test_lost_task_can_come_back_after_a_partition() -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "LOST", 2)])
    assert c.terminated is not None
    c = lc.apply_status(c, st("t1", "RUNNING", 3))
    assert c.terminated is None and c.running


def test_config_error_is_shown_as_waiting() -> None:
    c = lc.config_error(sm.ContainerRuntime(name="app"),
                        message="couldn't find key k in ConfigMap ns/cm")
    status = render(raw_pod(), c)
    assert cstatus(status)["state"] == {"waiting": {
        "reason": "CreateContainerConfigError",
        "message": "couldn't find key k in ConfigMap ns/cm",
    }}
    assert status["phase"] == "Pending"
    assert sm.display_status({**raw_pod(), "status": status}) == "CreateContainerConfigError"


def test_readiness_gates_hold_ready_until_their_condition_is_true() -> None:
    pod = raw_pod(readinessGates=[{"conditionType": "example.com/lb"}])
    c = fold("app", "t1", [st("t1", "RUNNING", 1)])
    s = render(pod, c)
    ready = {x["type"]: x for x in s["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    assert conditions(s)["ContainersReady"] == "True"
    pod["status"] = {**s, "conditions": [*s["conditions"],
                                          {"type": "example.com/lb", "status": "True"}]}
    s2 = render(pod, c)
    assert conditions(s2)["Ready"] == "True"
    assert conditions(s2)["example.com/lb"] == "True"  # someone else's condition is kept


def test_container_network_ips_win_over_the_host_ip() -> None:
    c = fold("app", "t1", [st("t1", "RUNNING", 1, ip_addresses=("172.17.0.5",))])
    status = render(raw_pod(), c)
    assert status["podIP"] == "172.17.0.5" and status["hostIP"] == HOST


def test_terminal_phase_is_final_and_qos_is_computed() -> None:
    pod = raw_pod({"name": "app", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                  restartPolicy="Never")
    pod["status"] = {"phase": "Succeeded"}
    c = fold("app", "t1", [st("t1", "RUNNING", 1)])
    status = render(pod, c)
    assert status["phase"] == "Succeeded"
    assert status["qosClass"] == "Guaranteed"


def test_unknown_containers_render_as_waiting_and_deleting_pods_show_terminating() -> None:
    pod = raw_pod()
    status = sm.pod_status(pod=pod, containers={}, now=T0)
    assert status["phase"] == "Pending"
    assert cstatus(status)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "hostIP" not in status and "startTime" not in status
    pod["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    assert sm.display_status({**pod, "status": status}) == "Terminating"


@pytest.mark.parametrize(
    ("image", "normal"),
    [("nginx", "docker.io/library/nginx:latest"),
     ("nginx:1.27", "docker.io/library/nginx:1.27"),
     ("bitnami/redis", "docker.io/bitnami/redis:latest"),
     ("quay.io/x/y:v1", "quay.io/x/y:v1"),
     ("localhost:5000/app", "localhost:5000/app:latest"),
     ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
     ("", "")],
)
def test_image_references_are_normalised(image: str, normal: str) -> None:
    assert sm.normalize_image(image) == normal


def events(before: sm.ContainerRuntime, after: sm.ContainerRuntime) -> list[tuple[str, str]]:
    return [(e.reason, e.type) for e in
            lc.container_events(before, after, pod_name="web", namespace="ns", uid="uid-1")]


def test_a_running_container_has_no_invented_image_id() -> None:
    """Mesos reports no image digest, so imageID stays empty once the container runs."""
    c = fold("app", "t1", [st("t1", "STAGING", 0), st("t1", "RUNNING", 1)])
    status = render(raw_pod(), c)
    assert "running" in cstatus(status)["state"] and "containerID" in cstatus(status)
    assert cstatus(status)["imageID"] == ""


def test_transitions_name_the_kubelet_events_once() -> None:
    created = lc.start_attempt(sm.ContainerRuntime(name="app", image="nginx"), task_id="t1")
    running = lc.apply_status(created, st("t1", "RUNNING", 1))
    # no "Pulled": Mesos reports no pull, so the bridge invents none
    assert events(created, running) == [("Created", "Normal"), ("Started", "Normal")]
    started = lc.container_events(created, running, pod_name="web", namespace="ns", uid="u")
    assert started[1].message == "Started container app"
    assert started[1].field_path == "spec.containers{app}"
    assert events(running, running) == []
    sick = lc.apply_status(running, st("t1", "RUNNING", 2, healthy=False,
                                       check=tasks.CheckResult(type="TCP", tcp_succeeded=False)))
    assert events(running, sick) == [("Unhealthy", "Warning"), ("Unhealthy", "Warning")]
    killing = lc.apply_status(sick, st("t1", "KILLING", 3))
    assert events(sick, killing) == [("Killing", "Normal")]
    dead = lc.apply_status(killing, st("t1", "KILLED", 4))
    looping = restarts.enter_back_off(dead, decision=restarts.RestartDecision(True, 10, 20),
                                pod_name="web", namespace="ns", uid="uid-1")
    (backoff,) = lc.container_events(dead, looping, pod_name="web", namespace="ns", uid="uid-1")
    assert backoff.reason == "BackOff"
    assert backoff.message == "Back-off restarting failed container app in pod web_ns(uid-1)"
    bad = lc.apply_status(lc.start_attempt(looping, task_id="t2"),
                          st("t2", "FAILED", 5, reason="REASON_CONTAINER_LAUNCH_FAILED",
                             message="exec: nosuchcmd: not found"))
    assert [(e.reason, e.message) for e in lc.container_events(
        looping, bad, pod_name="web", namespace="ns", uid="uid-1")] == [
        ("Failed", "Error: exec: nosuchcmd: not found")]
    config = lc.config_error(sm.ContainerRuntime(name="app", init=True), message="no key k")
    assert [(e.reason, e.field_path) for e in lc.container_events(
        sm.ContainerRuntime(name="app", init=True), config, pod_name="web", namespace="ns",
        uid="u")] == [("Failed", "spec.initContainers{app}")]


@pytest.mark.parametrize(("state", "phase"), [("KILLED", "Failed"), ("FINISHED", "Succeeded")])
def test_a_deleted_pod_whose_containers_stopped_ends_in_a_terminal_phase(
    state: str, phase: str
) -> None:
    pod = raw_pod()  # restartPolicy Always
    pod["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:30Z"
    c = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "KILLING", 2), st("t1", state, 3)])
    assert render(pod, c)["phase"] == phase
    alive = fold("app", "t1", [st("t1", "RUNNING", 1), st("t1", "KILLING", 2)])
    assert render(pod, alive)["phase"] == "Running"
