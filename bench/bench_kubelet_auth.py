"""What authentication costs on the kubelet API: /healthz round trips over one kept-alive TLS
connection, by client certificate, by a cached bearer token, and by a token reviewed every time
(TokenReview to a real devkube; cache TTL 0). Bounded: N requests each; prints medians and p99.

    python bench/bench_kubelet_auth.py [N]
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from k8sbridge import settings as bridge_settings
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api as kubelet_api


async def _measure(url: str, ctx: ssl.SSLContext, headers: dict[str, str], n: int) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            start = time.perf_counter()
            async with http.get(url, ssl=ctx, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            out.append((time.perf_counter() - start) * 1000)
    return out


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = devkube_main.DevkubeConfig(port=0, controllers=False,
                                            data_dir=Path(tmp) / "dk")
        async with devkube_main.running(config) as dk:
            assert dk.token and dk.ca_file
            kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig, connections=2)
            reader = mesos_agents.MesosReader(masters=("http://127.0.0.1:1",))
            results = {}
            for label, ttl in (("cached token", 120.0), ("token reviewed each time", 0.0)):
                settings = dataclasses.replace(
                    bridge_settings.KubeletSettings(), host="127.0.0.1", port=0,
                    client_ca_file=dk.ca_file, token_cache_ttl_seconds=ttl)
                server = kubelet_api.KubeletServer(settings=settings, reader=reader)
                await server.start()
                server.attach(scheduler=None, kube=kube, nodes=None)
                url = f"https://127.0.0.1:{server.port}/healthz"
                plain = ssl.create_default_context()
                plain.check_hostname, plain.verify_mode = False, ssl.CERT_NONE
                if ttl:
                    pki = dk.ca_file.parent
                    cert = ssl.create_default_context()
                    cert.check_hostname, cert.verify_mode = False, ssl.CERT_NONE
                    cert.load_cert_chain(pki / "apiserver-kubelet-client.crt",
                                         pki / "apiserver-kubelet-client.key")
                    results["client certificate"] = await _measure(url, cert, {}, n)
                results[label] = await _measure(
                    url, plain, {"Authorization": f"Bearer {dk.token}"}, n)
                await server.stop()
            await reader.close()
            await kube.close()
    print(f"kubelet API /healthz, {n} requests each, one keep-alive connection, "
          f"{os.cpu_count()} cores")
    for label, samples in results.items():
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(f"  {label:26s} median {statistics.median(samples):6.2f} ms   p99 {p99:6.2f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
