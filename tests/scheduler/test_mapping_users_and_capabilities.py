"""securityContext users and capabilities become CommandInfo.user and LinuxInfo capabilities,
or the pod is refused with a reason naming the field and the setting (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from k8sbridge import settings as bridge_settings
from k8sbridge.scheduler import podenv, podfields

USERS = {1000: "alice", 65534: "nobody"}


def _pod(container_security: dict[str, Any] | None = None,
         pod_security: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", **container}
    if container_security is not None:
        c["securityContext"] = container_security
    spec: dict[str, Any] = {"containers": [c]}
    if pod_security is not None:
        spec["securityContext"] = pod_security
    return {"metadata": {"name": "p"}, "spec": spec}


def _security(pod: dict[str, Any], caps: bool = True) -> tuple[str | None, dict[str, Any]]:
    podfields.check_pod(pod, run_as_users=USERS, agent_capabilities=caps)
    return podfields.container_security(pod, pod["spec"]["containers"][0],
                                        run_as_users=USERS, agent_capabilities=caps)


def _refusal(pod: dict[str, Any], caps: bool = True) -> str:
    with pytest.raises(podenv.LaunchError) as e:
        _security(pod, caps)
    assert e.value.reason == "CreateContainerConfigError"
    return str(e.value)


def test_a_mapped_uid_becomes_the_user_name_and_the_container_overrides_the_pod() -> None:
    assert _security(_pod(pod_security={"runAsUser": 65534})) == ("nobody", {})
    assert _security(_pod({"runAsUser": 1000}, {"runAsUser": 65534})) == ("alice", {})
    assert _security(_pod({"runAsUser": 0}, {"runAsUser": 65534})) == (None, {})
    assert _security(_pod()) == (None, {})


def test_an_unmapped_uid_is_refused_naming_the_setting() -> None:
    assert _refusal(_pod(pod_security={"runAsUser": 4242})) == (
        "spec.securityContext.runAsUser 4242 has no user on the agents: Mesos runs tasks as a "
        "user name; map the uid to one in the setting scheduler.run_as_users (uid=name)")


def test_run_as_non_root_is_checked_as_the_kubelet_does() -> None:
    assert _security(_pod({"runAsNonRoot": True, "runAsUser": 1000})) == ("alice", {})
    assert "breaks non-root policy" in _refusal(_pod({"runAsNonRoot": True, "runAsUser": 0}))
    assert "runAsNonRoot needs a runAsUser" in _refusal(_pod(pod_security={
        "runAsNonRoot": True}))


def test_capabilities_are_dockers_defaults_plus_add_minus_drop() -> None:
    _, linux = _security(_pod({"capabilities": {"drop": ["ALL"]}}))
    assert linux == {"effective_capabilities": {"capabilities": []},
                     "bounding_capabilities": {"capabilities": []}}
    _, linux = _security(_pod({"capabilities": {"add": ["CAP_NET_ADMIN"],
                                                "drop": ["NET_RAW", "MKNOD"]}}))
    want = sorted({*podfields.DOCKER_DEFAULT_CAPABILITIES, "NET_ADMIN"} - {"NET_RAW", "MKNOD"})
    assert linux["effective_capabilities"] == {"capabilities": want}
    _, linux = _security(_pod({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))
    assert linux["effective_capabilities"] == {"capabilities": ["NET_BIND_SERVICE"]}


def test_capabilities_without_the_isolator_or_unknown_are_refused() -> None:
    assert "setting scheduler.agent_capabilities" in _refusal(
        _pod({"capabilities": {"drop": ["ALL"]}}), caps=False)
    assert "'FLY' is not a capability" in _refusal(_pod({"capabilities": {"add": ["FLY"]}}))
    assert "privileged" in _refusal(_pod({"capabilities": {"add": ["ALL"]}}))


@pytest.mark.parametrize(("pod", "message"), [
    (_pod({"privileged": True}), "spec.containers{c}.securityContext.privileged is not "
                                 "supported: Mesos task groups have no privileged containers"),
    (_pod({"allowPrivilegeEscalation": False}),
     "spec.containers{c}.securityContext.allowPrivilegeEscalation is not supported: Mesos "
     "sets no no_new_privs flag"),
    (_pod({"seccompProfile": {"type": "RuntimeDefault"}}),
     "spec.containers{c}.securityContext.seccompProfile is not supported: k8sbridge does not "
     "know that the agents run Mesos' linux/seccomp isolator, and Mesos ignores the profile "
     "without it"),
    (_pod(pod_security={"fsGroup": 2000}), "spec.securityContext.fsGroup is not supported: "
     "Mesos' CommandInfo.user carries a user name only; the container gets that user's own "
     "groups on the agent"),
    (_pod(lifecycle={"preStop": {"exec": {"command": ["true"]}}}),
     "spec.containers{c}.lifecycle.preStop is not supported: Mesos task groups have no "
     "lifecycle hooks"),
    (_pod(stdin=True), "spec.containers{c}.stdin without tty is not supported: Mesos gives a "
     "task a stdin only through its I/O switchboard, which it starts for a task only with a "
     "TTY (set tty: true)"),
    (_pod(stdin=True, stdinOnce=True, tty=False), "spec.containers{c}.stdin "
     + podfields.STDIN_WITHOUT_TTY),
])
def test_refusals_take_their_reason_from_the_table(pod: dict[str, Any], message: str) -> None:
    assert _refusal(pod) == message


def test_values_that_ask_for_nothing_pass() -> None:
    _security(_pod({"privileged": False, "readOnlyRootFilesystem": False, "runAsGroup": 0},
                   {"supplementalGroups": [], "seccompProfile": {}}, tty=False, stdin=False,
                   lifecycle={"stopSignal": "SIGTERM"}))


def test_a_terminal_with_or_without_stdin_passes() -> None:
    _security(_pod(tty=True, stdin=True, stdinOnce=True))
    _security(_pod(tty=True))


def test_the_setting_is_uid_equals_name() -> None:
    env = {"K8SBRIDGE_SCHEDULER_RUN_AS_USERS": "1000=alice,65534=nobody"}
    loaded = bridge_settings.load(env=env)
    assert podfields.parse_run_as_users(loaded.scheduler.run_as_users) == USERS
    with pytest.raises(bridge_settings.SettingsError, match="'bob' is not uid=name"):
        bridge_settings.load(env={"K8SBRIDGE_SCHEDULER_RUN_AS_USERS": "bob"})
