"""Garbage at the kubelet HTTPS API (real TLS, real TokenReview against devkube): malformed
paths and queries, odd methods, bearer tokens of every shape (1,000 characters included). Each
gets a clear 4xx or an answer, never a 5xx, and the server keeps serving."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from k8sbridge import app

PATHS = ["/healthz", "/pods", "/runningpods/", "/stats/summary", "/containerLogs",
         "/containerLogs/default", "/containerLogs/default/p/c", "/exec/default/p/c",
         "/portForward/default/p", "/attach/x", "/metrics", "/", "/%00", "/..%2f..%2f"]
QUERY_KEYS = ["follow", "tailLines", "limitBytes", "previous", "timestamps", "sinceSeconds",
              "sinceTime", "container", "x"]
_text = hs.text(alphabet=hs.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_value = hs.one_of(_text, hs.integers(-10**30, 10**30).map(str),
                   hs.sampled_from(["true", "false", "", "1e999", "nan", "-1", "0x10"]))


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the kubelet's serving certificate is self-signed
    return ctx


async def test_garbage_gets_4xx_and_the_api_keeps_serving(
    embedded: app.EmbeddedTargets,
) -> None:
    base = f"https://127.0.0.1:{embedded.bridge.kubelet_port}"
    token = embedded.api_token
    assert token
    requests: list[tuple[str, str, dict[str, str]]] = []

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(
        method=hs.sampled_from(["GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]),
        path=hs.one_of(hs.sampled_from(PATHS),
                       hs.lists(_text, min_size=1, max_size=5).map(
                           lambda parts: "/" + "/".join(quote(p, safe="") for p in parts))),
        suffix=hs.lists(_text, max_size=3),
        query=hs.dictionaries(hs.sampled_from(QUERY_KEYS), _value, max_size=4),
        auth=hs.one_of(
            hs.just("good"),
            hs.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~+/=", min_size=1,
                    max_size=1000).map(lambda t: f"Bearer {t}"),
            hs.just("Bearer " + "x" * 1000),
            hs.sampled_from(["", "Bearer", "Bearer ", "Basic eDp5", "bearer  a b c",
                             "Negotiate " + "A" * 1000]),
        ),
    )
    def collect(method: str, path: str, suffix: list[str], query: dict[str, str],
                auth: str) -> None:
        full = path + "".join("/" + quote(s, safe="") for s in suffix)
        headers = {"Authorization": f"Bearer {token}" if auth == "good" else auth}
        if not headers["Authorization"]:
            headers = {}
        qs = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
        requests.append((method, full + ("?" + qs if qs else ""), headers))

    collect()
    requests.append(("GET", "/healthz", {"Authorization": "Bearer " + "y" * 1000}))
    statuses: dict[int, int] = {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for method, url, headers in requests:
            async with http.request(method, base + url, ssl=_ctx(), headers=headers,
                                    allow_redirects=False) as r:
                body: Any = await r.read()
                assert r.status < 500 or r.status == 501, (method, url, r.status, body[:300])
                statuses[r.status] = statuses.get(r.status, 0) + 1
        assert 401 in statuses and 200 in statuses  # bad tokens refused, good ones served ...
        async with http.get(base + "/healthz", ssl=_ctx(),
                            headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200  # ... and the server still serves
