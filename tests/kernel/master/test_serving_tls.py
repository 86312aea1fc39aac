"""The kernel with libprocess' SSL settings: HTTPS on the master and agents, TLS on the link.

Real processes (``k8sbridge kernel`` with ``LIBPROCESS_SSL_*`` in its environment), real
clients (aiohttp, curl, the bridge's Mesos client): with the CA they succeed, without it they
fail verification; libprocess' refusals end the command with libprocess' words; an expired
certificate is a clear error at once, not a hang.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from k8sbridge import embedded_tls
from k8sbridge.kernel import tls
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import operator, transport
from tests.conftest import free_port

HOSTS = ["127.0.0.1", "127.0.0.2"]


def _env(pki: embedded_tls.KernelPki, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIBPROCESS_SSL_", "K8SBRIDGE_"))}
    return {**env, **embedded_tls.kernel_environment(pki), **extra}


async def _start(argv: list[str], env: dict[str, str], *, lines: int
                 ) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out: list[str] = []
    assert proc.stdout is not None
    while len(out) < lines:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        if not line:
            assert proc.stderr is not None
            raise AssertionError("the kernel exited: " + (await proc.stderr.read()).decode())
        out.append(line.decode())
    return proc, out


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[tuple[str, list[str], Path]]:
    """``k8sbridge kernel`` with two agents and TLS on: (master URL, agent URLs, CA file)."""
    pki = embedded_tls.ensure(directory=tmp_path / "pki", hosts=HOSTS)
    port = free_port()
    proc, out = await _start(["kernel", "--port", str(port), "--agents", "2",
                              "--work-dir", str(tmp_path / "work")], _env(pki), lines=3)
    try:
        yield (out[0].split()[1], [line.split()[2] for line in out[1:]], pki.ca_file)
    finally:
        await _stop(proc)


async def test_master_and_agents_serve_https_verified_with_the_ca(
        kernel: tuple[str, list[str], Path]) -> None:
    master, agents, ca = kernel
    assert master.startswith("https://127.0.0.1:")
    assert [a.split("//")[1].split(":")[0] for a in agents] == HOSTS
    assert all(a.startswith("https://") for a in agents)
    trusted = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as http:
        async with http.get(master + "/state") as reply:
            state = await reply.json()
        # both agents registered: their link to the master is up (over TLS)
        assert sorted(s["hostname"] for s in state["slaves"]) == HOSTS
        for agent in agents:
            async with http.get(agent + "/health") as reply:
                assert reply.status == 200
    async with aiohttp.ClientSession() as http:  # the system's CAs do not know this one
        for url in (master + "/state", agents[1] + "/health"):
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(url)
        with pytest.raises(aiohttp.ServerDisconnectedError):  # plain HTTP is not served
            await http.get(master.replace("https://", "http://") + "/state")
    ok = subprocess.run(["curl", "-sS", "--cacert", str(ca), master + "/version"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and '"version"' in ok.stdout, ok.stderr
    refused = subprocess.run(["curl", "-sS", master + "/version"], capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 60, refused.stderr  # "SSL certificate problem"


async def test_the_bridges_client_verifies_the_master_and_the_agents_with_its_ca(
        kernel: tuple[str, list[str], Path]) -> None:
    master, agents, ca = kernel
    client = operator.OperatorClient(transport=transport.Transport(
        config=transport.ClientConfig(masters=(master,), ca_file=str(ca))))
    try:
        found = await client.get_agents()
        assert len(found) == 2
        address = agents[1].split("//")[1]
        state = await client.agent_state(address)  # https, the masters' scheme
        assert state["hostname"] == "127.0.0.2"
    finally:
        await client.close()
    blind = operator.OperatorClient(masters=(master,))
    try:
        with pytest.raises(mesos_errors.OperatorError,
                           match="TLS certificate verification failed: unable to get local "
                           "issuer certificate \\(verified with the system CAs"):
            await blind.get_agents()
    finally:
        await blind.close()


def _expired(directory: Path) -> embedded_tls.KernelPki:
    """A kernel identity whose certificate expired yesterday (signed by a valid CA)."""
    pki = embedded_tls.ensure(directory=directory, hosts=HOSTS)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    cert, key = embedded_tls.issue(ca_cert=ca_cert, ca_key=ca_key, hosts=HOSTS,
                                   not_before=now - datetime.timedelta(days=30),
                                   not_after=now - datetime.timedelta(days=1))
    pki.cert_file.write_bytes(cert)
    pki.key_file.write_bytes(key)
    return pki


async def test_an_expired_certificate_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    pki = _expired(tmp_path / "pki")
    port = free_port()
    proc, out = await _start(["kernel", "master", "--port", str(port)], _env(pki), lines=1)
    try:
        master = out[0].split()[1]
        client = operator.OperatorClient(transport=transport.Transport(
            config=transport.ClientConfig(masters=(master,), ca_file=str(pki.ca_file))))
        started = time.monotonic()
        try:
            with pytest.raises(mesos_errors.OperatorError, match="TLS certificate "
                               "verification failed: certificate has expired"):
                await client.get_version()
        finally:
            await client.close()
        assert time.monotonic() - started < 5
    finally:
        await _stop(proc)
    # `k8sbridge run` never serves one: the next start issues a new certificate
    renewed = embedded_tls.ensure(directory=tmp_path / "pki", hosts=HOSTS)
    cert = x509.load_pem_x509_certificate(renewed.cert_file.read_bytes())
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def _refusal(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "k8sbridge", "kernel", *argv,
                           "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0, done.stdout
    return done.stderr


def test_libprocess_refusals_end_the_command_with_its_words(tmp_path: Path) -> None:
    pki = embedded_tls.ensure(directory=tmp_path / "pki", hosts=HOSTS)
    env = _env(pki)
    no_key = {k: v for k, v in env.items() if k != "LIBPROCESS_SSL_KEY_FILE"}
    assert ("SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE"
            in _refusal(no_key, "master"))
    no_cert = {k: v for k, v in env.items() if k != "LIBPROCESS_SSL_CERT_FILE"}
    no_cert["SSL_CERT_FILE"] = ""  # the deprecated spelling counts too (MESOS-5863)
    assert ("SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE"
            in _refusal(no_cert, "--agents", "0"))
    scheme = {**env, "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME": "dns"}
    assert "Unknown value for hostname_validation_scheme: dns" in _refusal(scheme, "master")
    missing = {**env, "LIBPROCESS_SSL_CERT_FILE": str(tmp_path / "absent.crt")}
    assert f"Could not load cert file '{tmp_path / 'absent.crt'}'" in _refusal(missing,
                                                                              "master")


def test_settings_read_as_libprocess_reads_them() -> None:
    off, _ = tls.settings_from_environment({"LIBPROCESS_SSL_CERT_FILE": "/x"})
    assert off == tls.TlsSettings() and off.scheme == "http"  # off unless enabled
    base = {"LIBPROCESS_SSL_ENABLED": "1", "LIBPROCESS_SSL_CERT_FILE": "/c",
            "LIBPROCESS_SSL_KEY_FILE": "/k"}
    on, warnings = tls.settings_from_environment({**base, "SSL_KEY_FILE": "/old",
                                                  "LIBPROCESS_SSL_REQUIRE_CERT": "true"})
    assert on.key_file == "/k" and on.scheme == "https"  # LIBPROCESS_SSL_ wins over SSL_
    assert on.require_client_cert and on.verify_server_cert  # REQUIRE implies VERIFY
    assert any("SSL_KEY_FILE and LIBPROCESS_SSL_KEY_FILE" in w for w in warnings)
    assert any("LIBPROCESS_SSL_REQUIRE_CERT is deprecated" in w for w in warnings)
    with pytest.raises(tls.TlsError, match="Failed to load flag 'enabled'"):
        tls.settings_from_environment({"LIBPROCESS_SSL_ENABLED": "maybe"})
    with pytest.raises(tls.TlsError, match="No TLS version is enabled"):
        tls.settings_from_environment({**base, "LIBPROCESS_SSL_ENABLE_TLS_V1_2": "false"})


async def test_required_client_certificates_keep_out_clients_without_one(
        tmp_path: Path) -> None:
    pki = embedded_tls.ensure(directory=tmp_path / "pki", hosts=HOSTS)
    env = _env(pki, LIBPROCESS_SSL_REQUIRE_CLIENT_CERT="true")
    proc, out = await _start(["kernel", "--port", str(free_port()), "--agents", "2",
                              "--work-dir", str(tmp_path / "work")], env, lines=3)
    try:
        master = out[0].split()[1]
        # the agents joined: they presented their certificate to the master (HTTP and link)
        url = master + "/version"
        anonymous = subprocess.run(["curl", "-sS", "--cacert", str(pki.ca_file), url],
                                   capture_output=True, text=True, timeout=30)
        assert anonymous.returncode != 0, anonymous.stdout
        known = subprocess.run(["curl", "-sS", "--cacert", str(pki.ca_file), "--cert",
                                str(pki.cert_file), "--key", str(pki.key_file), url],
                               capture_output=True, text=True, timeout=30)
        assert known.returncode == 0 and '"version"' in known.stdout, known.stderr
    finally:
        await _stop(proc)


async def test_with_downgrades_one_port_speaks_tls_and_plain_http(tmp_path: Path) -> None:
    """LIBPROCESS_SSL_SUPPORT_DOWNGRADE: TLS clients get TLS, plain ones plain HTTP, on the same
    port; an agent without TLS joins (its link is plain), one with TLS joins over TLS."""
    pki = embedded_tls.ensure(directory=tmp_path / "pki", hosts=HOSTS)
    env = _env(pki, LIBPROCESS_SSL_SUPPORT_DOWNGRADE="true")
    port = free_port()
    proc, out = await _start(["kernel", "--port", str(port), "--agents", "1",
                              "--work-dir", str(tmp_path / "work")], env, lines=2)
    plain_env = {k: v for k, v in env.items() if not k.startswith("LIBPROCESS_SSL_")}
    plain_agent, joined = await _start(
        ["kernel", "agent", "--master", f"127.0.0.1:{port}", "--host", "127.0.0.2",
         "--work-dir", str(tmp_path / "plain-agent")], plain_env, lines=1)
    try:
        master = out[0].split()[1]
        assert joined[0].startswith("agent: http://127.0.0.2:")
        trusted = ssl.create_default_context(cafile=str(pki.ca_file))
        async with aiohttp.ClientSession() as http:
            async with http.get(master + "/state", ssl=trusted) as reply:
                slaves = (await reply.json())["slaves"]
            assert sorted(s["hostname"] for s in slaves) == HOSTS
            async with http.get(f"http://127.0.0.1:{port}/state") as reply:
                assert reply.status == 200
            links = []
            for url, context in ((master, trusted), (f"http://127.0.0.1:{port}", None)):
                async with http.get(url + "/kernel/link", ssl=context or True) as reply:
                    links.append((await reply.json())["address"])
            assert links[0] != links[1]  # a TLS link and a plain one
    finally:
        await _stop(plain_agent)
        await _stop(proc)
