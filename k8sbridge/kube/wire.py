"""The HTTP session under ``KubeClient``: aiohttp in the bridge's event loop, set up from the
official client's ``Configuration``.

Why aiohttp and not the official client's ``ApiClient``: that one is synchronous (a thread hop
each way per call) and serialises every body through its model machinery. Measured against
devkube on this project's 2-core machine, 300 concurrent status patches each way: 2.3 ms of the
caller's CPU per call through ``ApiClient`` in a thread pool, 0.85 ms through aiohttp with the
same TLS and token (``docs/benchmarks.md``). The bridge makes several calls per pod (binding,
token, statuses, events), so in a 1,000-pod burst that difference was a third of its CPU.

Why the ``Configuration`` still: ``kubernetes.config`` fills it from a kubeconfig or the pod's
service account, including exec credential plugins and token files that rotate. The
credentials are read from it (``auth_settings()``, which runs its refresh hook) at most once a
second by the client, and anew after a 401, so a refreshed token is used as the official
client would use it. TLS is set up as its urllib3
pool is: the CA (file or data), client certificate, ``verify_ssl``, ``assert_hostname``,
``tls_server_name``; an HTTP(S) proxy with ``no_proxy`` as it reads them. A SOCKS proxy is
refused with a ``ConfigError`` (aiohttp has none built in).
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
from kubernetes.client import rest as kube_rest

from k8sbridge.kube import errors

__all__ = ["auth_headers", "proxy_of", "session", "ssl_context"]


def ssl_context(configuration: Any) -> ssl.SSLContext | None:
    """The TLS context for ``configuration.host`` (None for plain HTTP)."""
    if not str(configuration.host).startswith("https"):
        return None
    try:
        context = ssl.create_default_context(
            cafile=configuration.ssl_ca_cert or None,
            cadata=configuration.ca_cert_data or None,
        )
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif configuration.assert_hostname is False:
            context.check_hostname = False
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise errors.ConfigError(f"cannot set up TLS to {configuration.host}: {e}") from e
    return context


def proxy_of(configuration: Any) -> str | None:
    """The HTTP(S) proxy to reach ``configuration.host`` through (None: go direct)."""
    proxy = configuration.proxy
    if not proxy or kube_rest.should_bypass_proxies(
            configuration.host, configuration.no_proxy or ""):
        return None
    if str(proxy).lower().startswith("socks"):
        raise errors.ConfigError(f"SOCKS proxies are not supported: {proxy}")
    return str(proxy)


def auth_headers(configuration: Any) -> dict[str, str]:
    """The credentials as headers, read now (the refresh hook of exec plugins and rotating
    token files runs here, as it does before each of the official client's calls)."""
    headers: dict[str, str] = {}
    for setting in configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


def session(*, connections: int, configuration: Any) -> aiohttp.ClientSession:
    """A session of at most ``connections`` connections to the API server."""
    connector = aiohttp.TCPConnector(
        limit=connections, ssl=ssl_context(configuration) or False)
    return aiohttp.ClientSession(connector=connector, trust_env=False, skip_auto_headers=(
        "User-Agent",), headers={"User-Agent": "k8sbridge"})
