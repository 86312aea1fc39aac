"""Nobody but the operator tears the bridge's framework down, and secrets rest in private files.

Issue 11's probe tore the bridge's framework down anonymously (every pod died while kubectl
still showed them Running) and read a Secret's value from devkube's 0644 database as uid
65534. Here: an anonymous TEARDOWN gets 401 and an authenticated principal the ACLs do not
allow gets 403, and neither touches a task process on the host; in a running ``k8sbridge run``
with a pod that takes a Secret in its environment, the data dir is 0700, and every file that
holds a secret (credentials, keys, devkube's database and WAL, the agents' checkpoints, any
file with the Secret's value) is 0600 and unreadable to another user.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.chaos import (
    Tally,
    converge,
    deployment,
    kubectl,
    pod_views,
    tally,
    task_processes,
)
from tests.e2e.chaos_clusters import Separate, Supervised
from tests.e2e.chaos_faults import APP, new_token

pytestmark = pytest.mark.e2e

SECRETS = {"k8sbridge": "bridge-secret-1", "operator": "operator-secret-2",
           "mallory": "mallory-secret-3"}
ACLS = {"teardown_frameworks": [
    {"principals": {"values": ["operator"]}, "framework_principals": {"type": "ANY"}},
    {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}},
]}


def _teardown(master: str, framework: str, auth: tuple[str, str] | None, *,
              ca_file: Path | None = None) -> tuple[int, str]:
    body = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework}}}
    request = urllib.request.Request(master + "/api/v1", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate") or ""


def _frameworks(master: str) -> list[str]:
    request = urllib.request.Request(master + "/state")
    token = base64.b64encode(f"operator:{SECRETS['operator']}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        state = json.loads(reply.read())
    return [f["id"] for f in state["frameworks"] if f.get("active")]


@pytest.mark.timeout(240)
def test_an_anonymous_or_foreign_teardown_touches_no_task(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in SECRETS.items()]}))
    (tmp_path / "bridge-secret").write_text(SECRETS["k8sbridge"] + "\n")
    os.chmod(creds, 0o600)
    token = new_token()
    cluster = Separate(tmp_path / "cluster", token=token, agents=1, master_flags=(
        f"--credentials={creds}", "--authenticate_http_frameworks=true",
        "--http_framework_authenticators=basic", "--authenticate_http_readonly=true",
        "--authenticate_http_readwrite=true", f"--acls={json.dumps(ACLS)}",
    ), bridge_env={"K8SBRIDGE_MESOS_PRINCIPAL": "k8sbridge",
                   "K8SBRIDGE_MESOS_SECRET_FILE": str(tmp_path / "bridge-secret")})
    try:
        cluster.start()
        replicas = 5
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=deployment(APP, token=token, replicas=replicas))

        def look() -> Tally:
            return tally(wanted=replicas, pods=pod_views(cluster.kube.pods(f"app={APP}")),
                         processes=task_processes(token))

        up = converge(look, since=time.monotonic(), timeout=90, stable=1.0)
        assert up.seconds is not None, up.last
        before = sorted(p.pid for p in task_processes(token))

        code, challenge = _teardown(cluster.master, cluster.framework, None)
        assert (code, challenge) == (401, 'Basic realm="mesos-master-readwrite"')
        code, _ = _teardown(cluster.master, cluster.framework, ("mallory", SECRETS["mallory"]))
        assert code == 403
        code, _ = _teardown(cluster.master, cluster.framework, ("operator", "a-wrong-secret"))
        assert code == 401

        time.sleep(3)
        assert sorted(p.pid for p in task_processes(token)) == before
        assert cluster.framework in _frameworks(cluster.master)
        after = converge(look, since=time.monotonic(), timeout=30, stable=1.0)
        assert after.seconds is not None, after.last
        assert "Operator is stopping" not in cluster.bridge.text()
    finally:
        cluster.close()


SECRET_VALUE = "chaos-Secret-Value-7f3a9c"
HOLDER = """
apiVersion: v1
kind: Pod
metadata: {name: holder}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "86400"]
    env:
    - {name: CHAOS_RUN, value: "{token}"}
    - name: CHAOS_POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: chaos-secret, key: password}}
    resources: {requests: {cpu: 10m, memory: 8Mi}}
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _readable_by_nobody(path: Path) -> bool:
    """Whether uid/gid 65534 can open ``path`` (run as that user, for real)."""
    done = subprocess.run(["head", "-c", "1", str(path)], user=65534, group=65534,
                          extra_groups=[], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.timeout(240)
def test_secrets_at_rest_are_private_in_a_running_k8sbridge_run(tmp_path: Path) -> None:
    token = new_token()
    run = Supervised(tmp_path / "run", token=token)
    try:
        run.ready()
        kubectl(run.kubeconfig, "create", "secret", "generic", "chaos-secret",
                f"--from-literal=password={SECRET_VALUE}")
        kubectl(run.kubeconfig, "apply", "-f", "-", stdin=HOLDER.replace("{token}", token))

        def running() -> bool:
            return len(task_processes(token)) == 1

        deadline = time.monotonic() + 60
        while not running() and time.monotonic() < deadline:
            time.sleep(0.3)
        [holder] = task_processes(token)
        assert SECRET_VALUE in Path(f"/proc/{holder.pid}/environ").read_text(errors="replace")
        # Let the batched writers (devkube's WAL, the agents' checkpoints) catch up.
        time.sleep(2)

        data_dir = run.data_dir
        assert _mode(data_dir) == 0o700
        named = [data_dir / n for n in ("credentials.json", "mesos-secret", "kernel.netrc",
                                        "bridge-settings.yaml", "kubeconfig")]
        named += sorted((data_dir / "devkube").glob("devkube.db*"))
        named += sorted((data_dir / "devkube" / "pki").glob("*.key"))
        named += sorted((data_dir / "kernel-pki").glob("*.key"))  # the kernel's CA and TLS keys
        named += sorted((data_dir / "kernel" / "master").glob("registry.sqlite3*"))
        checkpoints = sorted((data_dir / "kernel").glob("agent-*/meta/**/state.json"))
        assert checkpoints, "no agent checkpoint found"
        assert {p.name for p in named} >= {"devkube.db", "devkube.db-wal", "ca.key",
                                           "kernel.key"}
        wrong = {str(p): oct(_mode(p)) for p in [*named, *checkpoints] if _mode(p) != 0o600}
        assert not wrong, wrong

        needles = (SECRET_VALUE.encode(), base64.b64encode(SECRET_VALUE.encode()))
        holding: list[Path] = []
        for root, _dirs, files in os.walk(data_dir):
            for name in files:
                path = Path(root) / name
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    holding.append(path)
        assert holding, "the Secret's value is nowhere under the data dir?"
        open_files = {str(p): oct(_mode(p)) for p in holding if _mode(p) & 0o077}
        assert not open_files, open_files  # a file holding the value is its owner's only
        readable = [str(p) for p in [*named, *checkpoints, *holding] if _readable_by_nobody(p)]
        assert not readable, readable

        # The door: an anonymous TEARDOWN is refused and touches no task on the host.
        framework = run.wait_for(r"\[bridge\] k8sbridge is ready: framework (\S+),")[1]
        code, _ = _teardown(run.master, framework, None, ca_file=run.ca_file)
        assert code == 401
        time.sleep(2)
        assert [p.pid for p in task_processes(token)] == [holder.pid]
    finally:
        run.close()
