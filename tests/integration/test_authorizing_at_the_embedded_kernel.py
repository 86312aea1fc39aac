"""`k8sbridge run` gives the kernel Mesos ACLs, not only credentials.

Issue 11: with authentication alone every principal in the credentials file could tear down the
bridge's framework (every pod dies), register in the bridge's role or run tasks as any user.
`k8sbridge run` now writes DATA_DIR/acls.json (0600, Mesos' ``--acls`` JSON, permissive false)
and starts the kernel with it: 'k8sbridge' registers its roles and tears down only its own
framework, 'operator' registers other roles and tears down any framework, both run tasks only
as the bridge's user, and anyone else is refused (403) while anonymous callers still get 401.
``--kernel-auth off`` passes no ACLs.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import ssl
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

from k8sbridge import embedded
from k8sbridge import settings as bridge_settings
from k8sbridge.kernel.master import acls
from tests.conftest import kernel_ssl
from tests.integration.test_running_the_cli import (
    REPO,
    Running,
    _kubectl,
    _task_processes,
    _wait_pod_running,
)

GUEST = ("guest", "guest-secret-guest-secret-guest-secret-0123")


def test_the_acls_let_each_principal_do_only_its_part() -> None:
    doc = embedded.acl_document(roles=("kubernetes", "batch"), user="alice")
    authorizer = acls.parse_acls(json.dumps(doc))
    assert doc["permissive"] is False
    may_register = authorizer.may_register
    assert may_register(principal="k8sbridge", roles=["kubernetes", "batch"])
    assert not may_register(principal="k8sbridge", roles=["marathon"])
    assert not may_register(principal="operator", roles=["kubernetes"])
    assert not may_register(principal="operator", roles=["marathon", "batch"])
    assert may_register(principal="operator", roles=["marathon"])
    assert not may_register(principal="guest", roles=["marathon"])
    assert not may_register(principal=None, roles=["marathon"])
    assert authorizer.may_run_task(principal="k8sbridge", user="alice")
    assert authorizer.may_run_task(principal="operator", user="alice")
    assert not authorizer.may_run_task(principal="k8sbridge", user="root")
    assert not authorizer.may_run_task(principal="operator", user="root")
    assert not authorizer.may_run_task(principal="guest", user="alice")
    assert authorizer.may_teardown(principal="operator", framework_principal="k8sbridge")
    assert authorizer.may_teardown(principal="operator", framework_principal="")
    assert authorizer.may_teardown(principal="k8sbridge", framework_principal="k8sbridge")
    assert not authorizer.may_teardown(principal="k8sbridge", framework_principal="operator")
    assert not authorizer.may_teardown(principal="guest", framework_principal="k8sbridge")
    assert not authorizer.may_teardown(principal="guest", framework_principal="guest")


def test_the_kernel_gets_the_acls_only_with_authentication(tmp_path: Path) -> None:
    settings = bridge_settings.load(env={})
    creds = embedded.kernel_credentials(data_dir=tmp_path)
    file = embedded.kernel_acls(data_dir=tmp_path, settings=settings)
    assert file == tmp_path / "acls.json" and stat.S_IMODE(file.stat().st_mode) == 0o600
    assert json.loads(file.read_text()) == embedded.acl_document(
        roles=settings.mesos.roles, user=settings.mesos.user)
    locked = embedded.kernel_argv(settings=settings, data_dir=tmp_path, log_level="INFO",
                                  credentials=creds, acls=file)
    assert f"--acls=file://{file}" in locked
    assert f"--credentials={creds.file}" in locked
    open_door = embedded.kernel_argv(settings=settings, data_dir=tmp_path, log_level="INFO")
    assert not any(a.startswith(("--acls", "--credentials")) for a in open_door)


def _post(url: str, body: dict[str, object], *,
          auth: tuple[str, str] | None,
          context: ssl.SSLContext | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_only_the_operator_and_the_bridge_itself_may_tear_the_bridge_down(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "run"
    data_dir.mkdir(mode=0o700)
    # An administrator added a principal for another team to the kernel's credentials.
    creds = embedded.kernel_credentials(data_dir=data_dir)
    doc = json.loads(creds.file.read_text())
    doc["credentials"].append({"principal": GUEST[0], "secret": GUEST[1]})
    creds.file.write_text(json.dumps(doc))
    os.chmod(creds.file, 0o600)
    run = Running(data_dir)
    try:
        pids = run.ready()
        url = run.wait_for(r"^kernel \(Mesos v1 API\): (\S+)")[1]
        ctx = kernel_ssl(data_dir)
        framework = run.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1]
        run.wait_for(r"^kernel credentials: .*; ACLs: .*acls\.json \(permissive false\)")
        acl_file = data_dir / "acls.json"
        assert stat.S_IMODE(acl_file.stat().st_mode) == 0o600
        assert json.loads(acl_file.read_text()) == embedded.acl_document(
            roles=("kubernetes",), user=getpass.getuser())
        kernel_cmdline = Path(f"/proc/{pids['kernel']}/cmdline").read_text().split("\0")
        assert f"--acls=file://{acl_file}" in kernel_cmdline, kernel_cmdline
        secrets = {c["principal"]: c["secret"]
                   for c in json.loads(creds.file.read_text())["credentials"]}
        assert secrets[GUEST[0]] == GUEST[1]  # kept across the start

        # The bridge still runs pods.
        _kubectl(data_dir, "apply", "-f", str(REPO / "manifests" / "examples" / "pod.yaml"))
        _wait_pod_running(data_dir, "hello")
        tasks = _task_processes(data_dir, "sleep 3600")
        assert len(tasks) == 1

        teardown: dict[str, object] = {
            "type": "TEARDOWN", "teardown": {"framework_id": {"value": framework}}}
        assert _post(url + "/api/v1", teardown, context=ctx, auth=None)[0] == 401
        assert _post(url + "/api/v1", teardown, context=ctx, auth=GUEST)[0] == 403

        # Nobody but the bridge registers in its role; 'operator' may in another one.
        def subscribe(principal: str, role: str) -> str:
            body: dict[str, object] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
                "user": getpass.getuser(), "name": f"{principal}-in-{role}",
                "principal": principal, "roles": [role],
                "capabilities": [{"type": "MULTI_ROLE"}]}}}
            code, text = _post(url + "/api/v1/scheduler", body, context=ctx,
                               auth=(principal, secrets[principal]))
            assert code == 200, text
            return text

        for principal in (GUEST[0], "operator"):
            refused = subscribe(principal, "kubernetes")
            assert "Not authorized to register framework  with roles { kubernetes }" in refused
        assert "Not authorized" in subscribe(GUEST[0], "marathon")

        time.sleep(2)
        assert _task_processes(data_dir, "sleep 3600") == tasks  # the pod was not touched
        _wait_pod_running(data_dir, "hello")
    finally:
        run.close()
