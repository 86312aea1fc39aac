"""Termination messages (``lifecycle.termination``): where a container's message can be read,
how the kubelet cuts it, and the machine asking for it and taking the answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k8sbridge.lifecycle import events, intents, termination
from k8sbridge.model import ids, tasks
from tests.lifecycle.harness import T0, UID, Harness, pod

VOLUMES = [{"name": "term", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]


def container(path: str | None, *mounts: tuple[str, str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "app", "volumeMounts": [
        {"name": name, "mountPath": at} for name, at in mounts], **extra}
    if path is not None:
        out["terminationMessagePath"] = path
    return out


@pytest.mark.parametrize(
    ("path", "mounts", "file"),
    [
        pytest.param("/term/why", [("term", "/term")], "volumes/term/why", id="under"),
        pytest.param("/term/./b//why", [("term", "/term/")], "volumes/term/b/why",
                     id="normalized"),
        pytest.param("/term/../etc/why", [("term", "/term")], None, id="dot-dot"),
        pytest.param("/x/y/why", [("term", "/x"), ("cfg", "/x/y")], None,
                     id="deeper configMap mount decides"),
        pytest.param("/x/y/why", [("cfg", "/x"), ("term", "/x/y")], "volumes/term/why",
                     id="deeper emptyDir mount decides"),
        pytest.param("/term", [("term", "/term")], None, id="the mount itself"),
        pytest.param("/termination", [("term", "/term")], None, id="a sibling name"),
        pytest.param("/why", [("term", "/")], "volumes/term/why", id="mounted at root"),
        pytest.param(None, [("term", "/term")], None, id="the default"),
        pytest.param("relative/why", [("term", "/term")], None, id="relative"),
    ],
)
def test_a_path_under_an_emptydir_mount_is_a_file_in_the_executors_sandbox(
    path: str | None, mounts: list[tuple[str, str]], file: str | None
) -> None:
    assert termination.sandbox_file(container(path, *mounts), VOLUMES) == file


def test_only_a_non_default_path_outside_any_emptydir_is_refused() -> None:
    assert termination.refusal(container(None), VOLUMES) is None
    assert termination.refusal(container(termination.DEFAULT_PATH), VOLUMES) is None
    assert termination.refusal(container("/term/why", ("term", "/term")), VOLUMES) is None
    assert termination.refusal(container("/cfg/why", ("cfg", "/cfg")), VOLUMES) == (
        termination.REFUSED)
    assert termination.refusal(container("/var/why"), VOLUMES) == termination.REFUSED


def test_where_the_message_comes_from() -> None:
    assert termination.source_of(container(None), VOLUMES) is None
    fallback = container(None, terminationMessagePolicy="FallbackToLogsOnError")
    assert termination.source_of(fallback, VOLUMES) == termination.Source(
        "app", None, fallback_to_logs=True)
    assert termination.source_of(container("/term/m", ("term", "/term")), VOLUMES) == (
        termination.Source("app", "volumes/term/m", fallback_to_logs=False))


def test_the_file_gives_its_last_4096_bytes() -> None:
    assert termination.file_message(b"short") == "short"
    assert termination.file_message(b"x" * 10 + b"y" * 4096) == "y" * 4096


def test_the_log_gives_its_last_80_lines_cut_to_2048_bytes() -> None:
    lines = b"".join(b"line %d\n" % i for i in range(100))
    assert termination.log_message(lines, b"boom\n") == "".join(
        f"line {i}\n" for i in range(21, 100)) + "boom\n"
    long = b"".join(b"%04d%s\n" % (i, b"z" * 60) for i in range(80))
    assert termination.log_message(long, b"") == long[-2048:].decode()
    assert termination.log_message(b"no newline", b"") == "no newline"
    assert termination.log_message(b"", b"") == ""


@given(st.binary(max_size=6000), st.binary(max_size=6000))
def test_the_last_bytes_of_each_log_are_enough(stdout: bytes, stderr: bytes) -> None:
    """The reader fetches only the last 2048 bytes of stdout and of stderr."""
    whole = termination.log_message(stdout, stderr)
    cut = termination.log_message(stdout[-termination.MAX_LOG_BYTES:],
                                  stderr[-termination.MAX_LOG_BYTES:])
    assert cut == whole


def test_executors_follow_our_task_ids() -> None:
    assert termination.executor_of("u.3.7.app", init=False, container="app") == (
        "k8sbridge.u.3.7")
    assert termination.executor_of("u.3.7.init", init=True, container="init") == (
        "k8sbridge.u.3.7.init.init")
    assert termination.executor_of("nonsense", init=False, container="app") is None


def harness(**extra: Any) -> Harness:
    raw = pod(policy="Always")
    raw["spec"]["containers"][0].update(extra)
    raw["spec"]["volumes"] = VOLUMES
    h = Harness(raw)
    h.run("app", 0, at=0)
    return h


def end(h: Harness, state: str, *, at: float, code: int = 1, attempt: int = 0,
        reason: str | None = None) -> tuple[intents.Intent, ...]:
    status = tasks.TaskStatusView(
        task_id=ids.TaskId(f"{UID}.{attempt}.app"), state=state, timestamp=T0 + at,
        message=f"Command exited with status {code}", reason=reason,
        agent_id=ids.AgentId("agent-1"), executor_id=ids.ExecutorId("exec-1"))
    return h.feed(events.TaskUpdated(container="app", attempt=attempt, status=status), at=at)


def reads(out: tuple[intents.Intent, ...]) -> list[intents.ReadTerminationMessage]:
    return [i for i in out if isinstance(i, intents.ReadTerminationMessage)]


def test_an_ended_container_asks_for_its_file_and_logs_once() -> None:
    h = harness(terminationMessagePath="/term/why",
                volumeMounts=[{"name": "term", "mountPath": "/term"}],
                terminationMessagePolicy="FallbackToLogsOnError")
    out = end(h, "TASK_FAILED", at=2)
    assert reads(out) == [intents.ReadTerminationMessage(
        container="app", task_id=ids.TaskId(f"{UID}.0.app"), agent_id="agent-1",
        executor_id="exec-1", file="volumes/term/why", logs=True)]
    assert not reads(end(h, "TASK_FAILED", at=2))  # a duplicate asks for nothing


@pytest.mark.parametrize(
    ("extra", "state", "reason", "wanted"),
    [
        pytest.param({"terminationMessagePolicy": "FallbackToLogsOnError"}, "TASK_FINISHED",
                     None, False, id="logs only on failure"),
        pytest.param({"terminationMessagePolicy": "FallbackToLogsOnError"}, "TASK_FAILED",
                     "REASON_CONTAINER_LAUNCH_FAILED", False, id="not when it never started"),
        pytest.param({"terminationMessagePolicy": "FallbackToLogsOnError"}, "TASK_LOST",
                     None, False, id="not when it vanished"),
        pytest.param({}, "TASK_FAILED", None, False, id="default path, File policy"),
        pytest.param({"terminationMessagePath": "/term/m",
                      "volumeMounts": [{"name": "term", "mountPath": "/term"}]},
                     "TASK_FINISHED", None, True, id="the file also on success"),
    ],
)
def test_what_is_read_when(extra: dict[str, Any], state: str, reason: str | None,
                          wanted: bool) -> None:
    h = harness(**extra)
    assert bool(reads(end(h, state, at=2, code=0 if state == "TASK_FINISHED" else 1,
                          reason=reason))) is wanted


def test_the_message_replaces_mesos_text_in_state_then_in_last_state() -> None:
    h = harness(terminationMessagePolicy="FallbackToLogsOnError")
    end(h, "TASK_FAILED", at=2)
    task = f"{UID}.0.app"
    out = h.feed(events.TerminationMessage(container="app", task_id=task, message="why"))
    assert out == (intents.WriteStatus(),)
    assert h.container("app")["state"]["terminated"]["message"] == "why"
    h.run("app", 1, at=30)
    h.feed(events.TerminationMessage(container="app", task_id=task, message="later"))
    assert h.container("app")["lastState"]["terminated"]["message"] == "later"
    assert h.feed(events.TerminationMessage(container="app", task_id="other", message="x")) == ()
    assert h.feed(events.TerminationMessage(container="app", task_id=task, message="")) == ()


def test_a_message_the_status_shows_is_kept_after_a_bridge_restart_not_read_again() -> None:
    task = f"{UID}.0.app"
    shown = {"containerStatuses": [{"name": "app", "state": {"terminated": {
        "exitCode": 1, "reason": "Error", "message": "written before",
        "containerID": f"mesos://{task}"}}}]}
    raw = pod(policy="Never", status=shown)
    raw["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    h = Harness(raw)  # a new bridge: a fresh record, the status as it was written
    h.run("app", 0, at=0)
    assert not reads(end(h, "TASK_FAILED", at=2))
    assert h.container("app")["state"]["terminated"]["message"] == "written before"
