"""gRPC probes: a Mesos COMMAND check running grpc_probe.py (grpc.health.v1.Health/Check).

The container is a real grpcio health server (tests/integration/grpc_health_server.py); the
probe program runs as its own process, exactly as the agent runs it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app, grpc_probe
from k8sbridge.scheduler import launch
from tests.conftest import free_port
from tests.integration.conftest import eventually

SERVER = str(Path(__file__).with_name("grpc_health_server.py"))


def test_messages_are_hand_encoded_protobuf() -> None:
    assert grpc_probe.encode_request("") == b""
    assert grpc_probe.encode_request("a.B") == b"\x0a\x03a.B"
    long = "s" * 200  # a two-byte length varint
    assert grpc_probe.encode_request(long)[:3] == b"\x0a\xc8\x01"
    assert grpc_probe.decode_status(b"") == 0
    assert grpc_probe.decode_status(b"\x08\x01") == 1
    # Unknown fields of every wire type are skipped.
    assert grpc_probe.decode_status(b"\x12\x02hi\x19" + b"\0" * 8 + b"\x25\0\0\0\0\x08\x02") == 2
    for bad in (b"\x08", b"\x12\x05ab", b"\x0b"):
        with pytest.raises(ValueError):
            grpc_probe.decode_status(bad)


def test_grpc_probes_become_command_checks() -> None:
    container = {
        "name": "main",
        "readinessProbe": {"grpc": {"port": 9000, "service": "demo.Greeter"},
                           "periodSeconds": 2, "timeoutSeconds": 3},
        "livenessProbe": {"grpc": {"port": 9000}, "failureThreshold": 4},
    }
    out = launch.probes(container)
    check = out["check"]
    assert check["type"] == "COMMAND" and check["interval_seconds"] == 2.0
    command = check["command"]["command"]
    assert command["shell"] is False and command["value"] == sys.executable
    assert command["arguments"] == [
        *launch.GRPC_PROBE_ARGV, "--address", "127.0.0.1:9000", "--service", "demo.Greeter",
        "--timeout", "3"]
    # The Mesos timeout leaves room for the interpreter to start; the RPC keeps timeoutSeconds.
    assert check["timeout_seconds"] == 3 + launch.GRPC_PROBE_STARTUP_SECONDS
    health = out["health_check"]
    assert health["type"] == "COMMAND" and health["consecutive_failures"] == 4
    assert health["command"]["arguments"][-3:] == ["", "--timeout", "1"]
    for bad in ({"port": "grpc"}, {"port": 0}, {"port": 70000}, {"port": 80, "service": 5}):
        with pytest.raises(launch.LaunchError):
            launch.probes({"name": "x", "readinessProbe": {"grpc": bad}})


@pytest.fixture
def health_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    flag = tmp_path / "serving"
    proc = subprocess.Popen([sys.executable, SERVER, str(port), str(flag)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "health server" in proc.stdout.readline()
        yield port, flag
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*launch.GRPC_PROBE_ARGV, *args], capture_output=True, text=True,
                          timeout=30, check=False)


def test_the_probe_program_against_a_real_health_server(
    health_server: tuple[int, Path]
) -> None:
    port, flag = health_server
    address = f"127.0.0.1:{port}"
    not_serving = _probe("--address", address)
    assert not_serving.returncode == 1 and "NOT_SERVING" in not_serving.stderr
    flag.write_text("yes")
    serving = _probe("--address", address, "--service", "demo.Greeter", "--timeout", "5")
    assert serving.returncode == 0 and "SERVING" in serving.stdout
    unknown = _probe("--address", address, "--service", "no.Such")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    closed = _probe("--address", f"127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert closed.returncode == 1 and "DEADLINE_EXCEEDED" in closed.stderr
    usage = _probe("--timeout", "1")
    assert usage.returncode == 2


async def test_a_grpc_readiness_probe_flips_ready(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    port = free_port()
    flag = tmp_path / "serving"
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "grpc-probed", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "volumes": [
            # the flag through a hostPath volume (every container has a root of its own)
            {"name": "flags", "hostPath": {"path": str(tmp_path)}}], "containers": [{
            "name": "main", "image": "python",
            "command": [sys.executable, SERVER, str(port), "/flags/serving"],
            "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
            "readinessProbe": {"grpc": {"port": port, "service": "demo.Greeter"},
                               "periodSeconds": 1, "timeoutSeconds": 2},
        }]},
    })

    async def container() -> dict[str, Any]:
        pod = await kube.get_pod("default", "grpc-probed")
        return dict(((pod.get("status") or {}).get("containerStatuses") or [{}])[0])

    async def running_not_ready() -> bool:
        cs = await container()
        return "running" in (cs.get("state") or {}) and cs.get("ready") is False

    await eventually(running_not_ready, timeout=40, what="running but not ready")
    await asyncio.sleep(2)  # a few NOT_SERVING answers: still not ready
    assert (await container()).get("ready") is False
    flag.write_text("yes")

    async def ready() -> bool:
        pod = await kube.get_pod("default", "grpc-probed")
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        return conds.get("Ready") == "True" and (await container()).get("ready") is True

    await eventually(ready, timeout=40, what="Ready once the server reports SERVING")
    flag.unlink()

    async def unready() -> bool:
        return (await container()).get("ready") is False

    await eventually(unready, timeout=40, what="not ready once it reports NOT_SERVING")
    await kube.delete("/api/v1/namespaces/default/pods/grpc-probed", grace_period_seconds=0)
