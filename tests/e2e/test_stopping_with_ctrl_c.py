"""Runs last in the e2e session (file order): Ctrl-C stops `k8sbridge run` cleanly — its child
processes (kernel, devkube, bridge, and the service proxy when the cluster network was made)
in the order bridge, proxy, dns, devkube, kernel, none left."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Target

pytestmark = pytest.mark.e2e


def test_ctrl_c_stops_everything_cleanly(target: Target) -> None:
    if target.process is None:
        return  # an external target: the bridge is not ours to stop
    layout = re.search(r"^processes: (.*); logs in", "".join(target.output), re.MULTILINE)
    assert layout, "".join(target.output[-40:])
    pids = {name: int(pid) for name, pid in re.findall(r"(\w+) pid (\d+)", layout[1])}
    proxy = ["proxy"] if re.search(r"^service proxy: ", "".join(target.output),
                                   re.MULTILINE) else []
    dns = ["dns"] if "dns" in pids else []  # with the cluster network
    order = ["bridge", *proxy, *dns, "devkube", "kernel"]  # the last started first
    assert set(pids) == set(order)
    target.process.send_signal(signal.SIGINT)
    try:
        code = target.process.wait(60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("k8sbridge run did not stop on SIGINT:\n"
                             + "".join(target.output[-40:])) from e
    assert code == 0, "".join(target.output[-40:])
    deadline = time.monotonic() + 10  # the fixture's reader thread may still be catching up
    while time.monotonic() < deadline and "kernel stopped" not in "".join(target.output):
        time.sleep(0.1)
    text = "".join(target.output)
    stopped = re.findall(r"k8sbridge\.supervise: (\w+) stopped \(exit code 0\)", text)
    assert stopped == order, text[-4000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    assert not [name for name, pid in pids.items() if _alive(pid)]
    # Components that outlive the stop by STOP_GRACE are cancelled (and named in a warning);
    # no bridge module may fail with a traceback, on the way out or before. (The stand-ins'
    # own logs are theirs to judge.)
    ours = ("k8sbridge/app.py", "k8sbridge/supervise.py", "k8sbridge/run_cli.py",
            "k8sbridge/scheduler/", "k8sbridge/kubelet/", "k8sbridge/kube/")
    for i, line in enumerate(target.output):
        if "Traceback" in line:
            block = "".join(target.output[i : i + 40])
            assert not any(path in block for path in ours), block



def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running
