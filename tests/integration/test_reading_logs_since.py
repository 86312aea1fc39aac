"""``kubectl logs --since`` (sinceSeconds/sinceTime) without per-line times in the sandbox.

The bridge skips what it saw written before the window (its own (time, size) observations of
each log file) and files not modified inside the window (the files API's mtime); see
k8sbridge/kubelet/api.py. Real kubectl through devkube's pods/log proxy, and the kubelet API
directly (authenticated with devkube's kubelet client certificate) for the error cases.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings


def _run_logs(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "logs", "writer", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def _kubectl_logs(kubeconfig: Path, *args: str) -> str:
    done = _run_logs(kubeconfig, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _client_ctx(targets: app.EmbeddedTargets) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    assert targets.api_ca_file is not None
    pki = targets.api_ca_file.parent
    ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    return ctx


def _writer(script: str, flags: Path) -> dict[str, Any]:
    """The pod, with the test's ``flags`` directory at ``/flags`` (a hostPath volume: the
    embedded agents give every container a root of its own)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "writer", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "volumes": [{"name": "flags", "hostPath": {"path": str(flags)}}],
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["sh", "-c", script],
                                 "volumeMounts": [{"name": "flags", "mountPath": "/flags"}]}]},
    }


async def test_since_skips_output_written_before_the_window(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    flag = tmp_path / "go"
    script = 'echo old line; while [ ! -f /flags/go ]; do sleep 0.1; done; echo new line; ' \
             "sleep 300"
    await kube.create("/api/v1/namespaces/default/pods", _writer(script, tmp_path))
    kc = embedded.kubeconfig

    async def shows(text: str) -> bool:
        done = await asyncio.to_thread(_run_logs, kc)  # fails while the container starts
        return done.returncode == 0 and text in done.stdout

    await eventually(lambda: shows("old line"), timeout=40, what="the first line")
    await asyncio.sleep(6)  # "old line" was seen by the bridge more than 4 s ago from here on
    flag.write_text("go")
    written = time.time()
    await eventually(lambda: shows("new line"), timeout=40, what="the second line")
    assert time.time() - written < 4, "too slow to test a 4 s window"

    recent = await asyncio.to_thread(_kubectl_logs, kc, "--since=4s")
    assert "new line" in recent and "old line" not in recent
    everything = await asyncio.to_thread(_kubectl_logs, kc, "--since=1h")
    assert everything.splitlines() == ["old line", "new line"]
    since_time = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=4)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert "old line" not in await asyncio.to_thread(_kubectl_logs, kc,
                                                     f"--since-time={since_time}")

    # Nothing written for a while: the file's mtime is older than a 1 s window.
    await asyncio.sleep(max(0.0, written + 2.5 - time.time()))
    base = f"https://127.0.0.1:{embedded.bridge.kubelet_port}/containerLogs/default/writer/main"
    async with aiohttp.ClientSession() as http:
        async with http.get(base, params={"sinceSeconds": "1"}, ssl=_client_ctx(embedded)) as r:
            assert r.status == 200 and await r.text() == ""
        for params in ({"sinceSeconds": "0"}, {"sinceSeconds": "soon"},
                       {"sinceTime": "yesterday"}, {"sinceTime": "2026-01-01T00:00:00"},
                       {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"}):
            async with http.get(base, params=params, ssl=_client_ctx(embedded)) as r:
                assert r.status == 400, params
    await kube.delete("/api/v1/namespaces/default/pods/writer", grace_period_seconds=0)


@pytest.fixture
async def sampling(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    settings = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(
        settings, kubelet=dataclasses.replace(settings.kubelet, log_sample_seconds=0.5)
    )
    async with app.running_embedded(settings) as targets:
        yield targets


async def test_the_sampler_knows_old_output_nobody_asked_for(
    sampling: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = sampling.bridge.kube
    flag, ready = tmp_path / "go", tmp_path / "ready"
    script = 'echo old line; touch /flags/ready; while [ ! -f /flags/go ]; do sleep 0.1; ' \
             "done; echo new line; sleep 300"
    await kube.create("/api/v1/namespaces/default/pods", _writer(script, tmp_path))

    async def started() -> bool:
        return ready.exists()

    await eventually(started, timeout=40, what="the first line written")
    await asyncio.sleep(6)  # only the sampler looks at the log meanwhile
    flag.write_text("go")
    written = time.time()

    async def shows_new() -> bool:
        done = await asyncio.to_thread(_run_logs, sampling.kubeconfig, "--since=4s")
        return done.returncode == 0 and "new line" in done.stdout

    await eventually(shows_new, timeout=20, what="the second line")
    assert time.time() - written < 4, "too slow to test a 4 s window"
    recent = await asyncio.to_thread(_kubectl_logs, sampling.kubeconfig, "--since=4s")
    assert "old line" not in recent
    await kube.delete("/api/v1/namespaces/default/pods/writer", grace_period_seconds=0)
