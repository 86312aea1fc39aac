"""`k8sbridge run`: documented flags, and bad settings are a clear error (exit 2), not a trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "k8sbridge", "run", *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=60)


def test_help_documents_both_modes() -> None:
    done = _run("--help")
    assert done.returncode == 0
    for flag in ("--data-dir", "--kernel-port", "--api-port", "--agents", "--master",
                 "--kubeconfig", "--config", "--role", "--scheduler-name", "--kubelet-port"):
        assert flag in done.stdout
    assert "K8SBRIDGE_" in done.stdout


def test_bad_settings_exit_2_with_the_setting_named(tmp_path: Path) -> None:
    done = _run("--data-dir", str(tmp_path), env={"K8SBRIDGE_KUBELET_PORT": "abc"})
    assert done.returncode == 2
    assert "kubelet.port" in done.stderr and "Traceback" not in done.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mesos:\n  rolez: [a]\n")
    done = _run("--config", str(cfg))
    assert done.returncode == 2 and "mesos.rolez" in done.stderr
