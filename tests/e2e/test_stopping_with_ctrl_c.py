"""Runs last in the e2e session (file order): Ctrl-C stops `k8sbridge run` cleanly."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.e2e.conftest import Target

pytestmark = pytest.mark.e2e


def test_ctrl_c_stops_everything_cleanly(target: Target) -> None:
    if target.process is None:
        return  # an external target: the bridge is not ours to stop
    target.process.send_signal(signal.SIGINT)
    try:
        code = target.process.wait(60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("k8sbridge run did not stop on SIGINT:\n"
                             + "".join(target.output[-40:])) from e
    assert code == 0, "".join(target.output[-40:])
    # Components that outlive the stop by STOP_GRACE are cancelled (and named in a warning);
    # no bridge module may fail with a traceback, on the way out or before. (The stand-ins'
    # own logs are theirs to judge.)
    ours = ("k8sbridge/app.py", "k8sbridge/scheduler/", "k8sbridge/kubelet/", "k8sbridge/kube/")
    for i, line in enumerate(target.output):
        if "Traceback" in line:
            block = "".join(target.output[i : i + 40])
            assert not any(path in block for path in ours), block

