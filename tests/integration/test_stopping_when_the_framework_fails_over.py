"""A bridge whose Mesos connection ends for good exits with a clear error instead of hanging.

Issue 11: after a fatal framework error the bridge logged that its watch was stopping and then
waited for ever for a Ctrl-C that nobody would send (its components had stopped; its process had
not). Here a second bridge takes the framework over (the master sends the first one ERROR
"Framework failed over", and fighting it back would be wrong): the first, a real `k8sbridge run
--master --kubeconfig` process, must say why and exit 1 within a bound, with no traceback on the
terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from k8sbridge import app
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from tests.integration.conftest import fast_settings

REPO = Path(__file__).resolve().parents[2]


async def _wait_line(proc: subprocess.Popen[str], lines: list[str], text: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {text!r}:\n{''.join(lines)[-4000:]}")


async def test_a_bridge_taken_over_by_another_exits_1_instead_of_hanging(
    tmp_path: Path,
) -> None:
    base = fast_settings(tmp_path / "run")
    async with kernel_main.running_kernel(
        master=master_config.MasterConfig(port=0), agents=[]
    ) as kernel, devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        env["PYTHONUNBUFFERED"] = "1"
        first = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "run", "--master", kernel.master_url,
             "--kubeconfig", str(dk.kubeconfig), "--kubelet-port", "0",
             "--kubelet-bind", "127.0.0.1"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: list[str] = []

        async def pump() -> None:
            assert first.stdout is not None
            while line := await asyncio.to_thread(first.stdout.readline):
                lines.append(line)

        reader = asyncio.create_task(pump())
        try:
            await _wait_line(first, lines, "k8sbridge is ready: framework")
            settings = dataclasses.replace(
                base,
                mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
                kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
            )
            async with app.running_bridge(settings) as second:  # the same stored id
                taken = time.monotonic()
                code = await asyncio.to_thread(first.wait, 60)
                assert time.monotonic() - taken < 40
                assert second.framework.subscribed
            await reader
            output = "".join(lines)
            assert code == 1, output[-4000:]
            assert "k8sbridge run: the bridge stopped:" in output, output[-4000:]
            assert "Framework failed over" in output, output[-4000:]
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if first.stdout is not None:
                first.stdout.close()
