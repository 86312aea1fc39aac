"""A framework the master removed (an operator TEARDOWN) is not the end of `k8sbridge run`.

Issue 11: an anonymous operator TEARDOWN of the bridge's framework killed every pod while
kubectl still showed them Running, the bridge hung on stop, and every restart failed with
"Framework has been removed" until the stored id was deleted by hand. Here the real kernel of a
real `k8sbridge run` tears the framework down through its operator API while a pod runs; the
bridge must register as a new framework, record its id, relaunch the pod (restartPolicy Always)
under it — one task process on the host, not two, not none — and still stop cleanly; a
`k8sbridge run` started again on the same data dir resumes that new framework.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from k8sbridge.lifecycle import taskids
from tests.conftest import kernel_ssl
from tests.integration.test_running_the_cli import (
    Running,
    _alive,
    _kubectl,
    _task_processes,
    _wait_gone,
    _wait_pod_running,
    operator_credentials,
)

COMMAND = "sleep 3597"  # identifies the pod's task process on the host
POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: survivor}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "exec {COMMAND}"]
      resources: {{requests: {{cpu: 100m, memory: 16Mi}}}}
"""


def _master(url: str, call: dict[str, Any], *, auth: tuple[str, str] | None,
            context: ssl.SSLContext | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url + "/api/v1", data=json.dumps(call).encode(),
                                     method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _running_tasks(url: str, *, framework: str, uid: str, auth: tuple[str, str],
                   context: ssl.SSLContext | None) -> list[str]:
    """The pod's running container tasks (not its sandbox task, ``scheduler.podsandbox``)."""
    status, body = _master(url, {"type": "GET_TASKS"}, auth=auth, context=context)
    assert status == 200, body
    return [t["task_id"]["value"] for t in json.loads(body)["get_tasks"].get("tasks", [])
            if t["state"] == "TASK_RUNNING" and t["framework_id"]["value"] == framework
            and t["task_id"]["value"].startswith(uid)
            and not taskids.is_sandbox(t["task_id"]["value"].rsplit(".", 1)[-1])]


def _eventually(probe: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_after_an_operator_teardown_the_pod_runs_again_under_a_new_framework(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "run"
    run = Running(data_dir)
    try:
        pids = run.ready()
        url = run.wait_for(r"^kernel \(Mesos v1 API\): (\S+)")[1]
        ctx = kernel_ssl(data_dir)
        old = run.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1]
        subprocess.run(["kubectl", "--kubeconfig", str(data_dir / "kubeconfig"), "apply",
                        "-f", "-"], input=POD, text=True, check=True, capture_output=True,
                       timeout=60)
        _wait_pod_running(data_dir, "survivor")
        uid = _kubectl(data_dir, "get", "pod", "survivor", "-o", "jsonpath={.metadata.uid}")
        operator = operator_credentials(data_dir)
        assert len(_running_tasks(url, framework=old, uid=uid, auth=operator, context=ctx)) == 1
        first = _task_processes(data_dir, COMMAND)
        assert len(first) == 1

        status, body = _master(url, {"type": "TEARDOWN",
                                     "teardown": {"framework_id": {"value": old}}},
                               auth=operator, context=ctx)
        assert status == 200, body
        new = run.wait_for(r"registered as new framework (\S+) \(replacing the removed "
                           + re.escape(old) + r"\)", timeout=60)[1]
        assert new != old
        run.wait_for(rf"framework {re.escape(old)} was removed by the master: forgetting its "
                     rf"\d+ tasks; bound pods are reconciled against framework {re.escape(new)}",
                     timeout=60)
        tasks = _eventually(lambda: _running_tasks(url, framework=new, uid=uid, auth=operator,
                                                   context=ctx),
                            timeout=90,
                            what="the pod's task running under the new framework")
        assert len(tasks) == 1 and not tasks[0].startswith(f"{uid}.0."), tasks
        _wait_pod_running(data_dir, "survivor")
        now = _eventually(lambda: (lambda p: p if len(p) == 1 and p != first else None)(
            _task_processes(data_dir, COMMAND)), timeout=30, what="one new task process")
        restarts = _kubectl(data_dir, "get", "pod", "survivor", "-o",
                            "jsonpath={.status.containerStatuses[0].restartCount}")
        assert int(restarts) >= 1
        state = _kubectl(data_dir, "get", "configmap", "-n", "k8sbridge", "k8sbridge-state",
                         "-o", "json")
        assert new in state and old not in state, state  # what a restart resumes
        # No child crashed or was restarted for it: the bridge handled it in its process.
        assert all(_alive(pid) for pid in pids.values()), pids
        assert "exited unexpectedly" not in run.output

        run.proc.send_signal(signal.SIGINT)
        assert run.exit_code(timeout=60) == 0, run.output[-4000:]
        assert _wait_gone(list(pids.values()) + now, timeout=30) == []
    finally:
        run.close()

    again = Running(data_dir)
    try:
        again.ready()
        assert again.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1] == new
        again.proc.send_signal(signal.SIGTERM)
        assert again.exit_code() == 0, again.output[-4000:]
    finally:
        again.close()
