"""A bad agent flag on the kernel CLI ends the command with Mesos' message, not a traceback."""

from __future__ import annotations

import subprocess
import sys


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8sbridge", *argv], capture_output=True,
                          text=True, timeout=60, check=False)


def test_an_unknown_isolator_stops_the_kernel_with_its_reason() -> None:
    done = _run("kernel", "--agent-isolation", "cgroups/mem,bogus/x")
    assert done.returncode == 1
    assert "Invalid value for isolation: Unknown or unsupported isolator 'bogus/x'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_isolator_missing_its_requirement_stops_a_lone_agent() -> None:
    done = _run("kernel", "agent", "--master", "127.0.0.1:1", "--isolation", "namespaces/pid")
    assert done.returncode == 1
    assert "The 'namespaces/pid' isolator requires the 'filesystem/linux' isolator" in done.stderr
    assert "Traceback" not in done.stderr
