"""The e2e suite's external mode, end to end, as CI runs it: ``python -m tests.e2e.external``
starts a kernel (with authentication) and devkube as processes of their own, deploys the bridge
from ``manifests/deploy/`` (two replicas electing a leader, the ServiceAccount's token, the
manifest's settings), then runs e2e tests against them with ``K8SBRIDGE_E2E_*`` set — the path
a kind run takes (``scripts/e2e-kind``), without kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_manifest_tests_pass_against_separately_started_processes() -> None:
    # a pytest of its own: not this worker's xdist variables (pytest-benchmark, when
    # installed, takes them for xdist and fails the run), with the test command's plugins
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("K8SBRIDGE_", "PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.external",
         "tests/e2e/test_running_manifests_with_kubectl.py", "-q", "-p", "no:benchmark"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    report = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert "5 passed" in done.stdout, report
    assert "K8SBRIDGE_SCHEDULER_POD_NETWORK" in done.stdout  # the overrides are said
