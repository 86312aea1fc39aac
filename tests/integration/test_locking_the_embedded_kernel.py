"""`k8sbridge run` locks the kernel's door by default.

Issue 11: the embedded kernel's APIs had no authentication, so anyone on the host could tear
down the bridge's framework (every pod died) or register a framework of their own. Here a real
`k8sbridge run` must keep its state private (data dir 0700, credentials 0600), generate random
credentials, run the kernel with Mesos' authentication flags and the bridge with its principal
and secret; the whole path (a pod via kubectl) must still work, anonymous calls (a TEARDOWN of
the bridge's framework, /state, SUBSCRIBE) get 401, and a bridge with a wrong secret says so
clearly, retries with a doubling back-off in its process (no crash loop), never logs a secret,
and stops on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import kernel_ssl
from tests.integration.test_running_the_cli import (
    REPO,
    Running,
    _alive,
    _kubectl,
    _task_processes,
    _wait_pod_running,
    operator_credentials,
)


def _read_lines(proc: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """A process's output lines, read as they come by a thread of their own."""
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
        proc.stdout.close()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def _http(url: str, *, body: dict[str, object] | None = None,
          auth: tuple[str, str] | None = None,
          context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                     method="POST" if body is not None else "GET",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_door_is_locked_and_the_bridge_has_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "run"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # an existing, too open data dir is closed
    run = Running(data_dir)
    wrong: subprocess.Popen[str] | None = None
    try:
        pids = run.ready()
        url = run.wait_for(r"^kernel \(Mesos v1 API\): (\S+)")[1]
        ctx = kernel_ssl(data_dir)
        assert url.startswith("https://") and ctx is not None  # TLS on by default
        framework = run.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1]
        run.wait_for(r"^kernel credentials: .*credentials\.json \(0600")
        assert _mode(data_dir) == 0o700
        for name in ("credentials.json", "mesos-secret", "kernel.netrc", "bridge-settings.yaml"):
            assert _mode(data_dir / name) == 0o600, name
        doc = json.loads((data_dir / "credentials.json").read_text())
        secrets = {c["principal"]: c["secret"] for c in doc["credentials"]}
        assert set(secrets) == {"k8sbridge", "operator"}
        assert len(set(secrets.values())) == 2 and all(len(s) >= 40 for s in secrets.values())
        assert (data_dir / "mesos-secret").read_text().strip() == secrets["k8sbridge"]
        kernel_cmdline = Path(f"/proc/{pids['kernel']}/cmdline").read_text().split("\0")
        for flag in ("--authenticate_http_frameworks=true", "--authenticate_http_readonly=true",
                     "--authenticate_http_readwrite=true", "--authenticate_frameworks=true",
                     f"--credentials={data_dir / 'credentials.json'}"):
            assert flag in kernel_cmdline, kernel_cmdline

        # The whole path works with authentication on.
        _kubectl(data_dir, "apply", "-f", str(REPO / "manifests" / "examples" / "pod.yaml"))
        _wait_pod_running(data_dir, "hello")
        tasks = _task_processes(data_dir, "sleep 3600")
        assert len(tasks) == 1
        operator = operator_credentials(data_dir)
        code, _, body = _http(url + "/state", context=ctx, auth=operator)
        assert code == 200, body
        [ours] = [f for f in json.loads(body)["frameworks"] if f["id"] == framework]
        assert ours["principal"] == "k8sbridge" and ours["active"]

        # Anonymous callers are turned away: no teardown, no state, no framework.
        code, headers, _ = _http(url + "/api/v1", context=ctx, body={
            "type": "TEARDOWN", "teardown": {"framework_id": {"value": framework}}})
        assert code == 401
        assert headers.get("WWW-Authenticate") == 'Basic realm="mesos-master-readwrite"'
        code, headers, _ = _http(url + "/state", context=ctx)
        assert code == 401 and "mesos-master-readonly" in headers.get("WWW-Authenticate", "")
        code, _, _ = _http(url + "/api/v1/scheduler", context=ctx, body={
            "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "x", "name": "x"}}})
        assert code == 401
        code, _, _ = _http(url + "/api/v1", context=ctx, body={"type": "GET_TASKS"},
                           auth=("operator", "not-the-secret"))
        assert code == 401
        time.sleep(2)
        assert _task_processes(data_dir, "sleep 3600") == tasks  # the pod was not touched
        _wait_pod_running(data_dir, "hello")

        # A bridge with a wrong secret: a clear error, a doubling back-off, no crash loop.
        (tmp_path / "wrong-secret").write_text("not-the-secret\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        env.update(K8SBRIDGE_MESOS_PRINCIPAL="k8sbridge",
                   K8SBRIDGE_MESOS_SECRET_FILE=str(tmp_path / "wrong-secret"),
                   K8SBRIDGE_MESOS_CA_FILE=str(data_dir / "kernel-pki" / "ca.crt"))
        wrong = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "run", "--master", url,
             "--kubeconfig", str(data_dir / "kubeconfig"), "--namespace", "other",
             "--kubelet-port", "0", "--kubelet-bind", "127.0.0.1"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines, reader = _read_lines(wrong)
        # tries at about 0, 1, 3 and 7 s after it started (however long starting took)
        deadline = time.monotonic() + 60
        while (time.monotonic() < deadline and wrong.poll() is None
               and "".join(lines).count("still refuses") < 3):
            time.sleep(0.2)
        assert wrong.poll() is None, "the bridge with a wrong secret exited"
        wrong.send_signal(signal.SIGTERM)
        wrong.wait(timeout=30)
        reader.join(30)
        out = "".join(lines)
        assert wrong.returncode == 0, out
        errors = re.findall(r"ERROR +k8sbridge\.run_cli: the Mesos master refused the bridge's "
                            r"credentials \(Unauthorized\): principal 'k8sbridge' with the "
                            r"secret in .*wrong-secret; check mesos\.principal", out)
        assert len(errors) == 1, out
        delays = [int(d) for d in re.findall(r"still refuses .* next try in (\d+)s", out)]
        assert delays[:2] == [2, 4], out
        assert "k8sbridge is ready" not in out and "Traceback" not in out, out
        assert "not-the-secret" not in out

        # The real bridge was not disturbed, and no secret reached a log or a command line.
        assert all(_alive(pid) for pid in pids.values())
        assert "exited unexpectedly" not in run.output
        code, _, body = _http(url + "/state", context=ctx, auth=operator)
        [ours] = [f for f in json.loads(body)["frameworks"] if f["id"] == framework]
        assert ours["active"]
        texts = [run.output, out] + [p.read_text(errors="replace")
                                     for p in (data_dir / "logs").iterdir()]
        texts += [Path(f"/proc/{pid}/cmdline").read_text() for pid in pids.values()]
        for secret in secrets.values():
            assert not any(secret in text for text in texts)
        run.proc.send_signal(signal.SIGINT)
        assert run.exit_code() == 0, run.output[-4000:]
    finally:
        if wrong is not None and wrong.poll() is None:
            wrong.kill()
            wrong.communicate(timeout=10)
        run.close()
