"""`k8sbridge run`'s kernel TLS identity and wiring (``embedded_tls``, ``embedded.kernel_tls``).

The CA is made once and kept; the certificate names the master's and every agent's address and
is made again when a name is missing or it expires soon (or has expired); keys are 0600; the
kernel's environment carries libprocess' settings, or none of them with ``embedded.tls`` off;
the bridge is given the CA. The processes themselves are tested in tests/kernel/master/
test_serving_tls.py and by the e2e suite (which runs `k8sbridge run` with TLS on).
"""

from __future__ import annotations

import dataclasses
import datetime
import stat
from pathlib import Path

from cryptography import x509

from k8sbridge import embedded, embedded_tls
from k8sbridge import settings as bridge_settings


def _names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in san}


def _settings(tmp_path: Path, *, tls: bool) -> bridge_settings.BridgeSettings:
    base = bridge_settings.BridgeSettings()
    return dataclasses.replace(base, embedded=dataclasses.replace(
        base.embedded, data_dir=tmp_path, tls=tls, agents=3))


def test_the_kernel_gets_libprocess_settings_and_the_bridge_the_ca(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tls=True)
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    outside = {"PATH": "/bin", "LIBPROCESS_SSL_CIPHERS": "NULL"}  # the caller's own: dropped
    env, pki = embedded.kernel_tls(settings, data_dir=tmp_path, env=outside, hosts=hosts)
    assert pki is not None
    assert env["PATH"] == "/bin" and "LIBPROCESS_SSL_CIPHERS" not in env
    assert env["LIBPROCESS_SSL_ENABLED"] == "true"
    assert env["LIBPROCESS_SSL_SUPPORT_DOWNGRADE"] == "false"
    assert env["LIBPROCESS_SSL_CERT_FILE"] == str(pki.cert_file)
    assert env["LIBPROCESS_SSL_CA_FILE"] == str(pki.ca_file)
    assert {*hosts, "localhost"} <= _names(pki.cert_file)
    for key in (pki.key_file, tmp_path / "kernel-pki" / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((tmp_path / "kernel-pki").stat().st_mode) == 0o700
    bridge = embedded.bridge_settings_for(
        settings, kernel_url="https://127.0.0.1:5050", kubeconfig=tmp_path / "kubeconfig",
        client_ca_file=None, kernel_ca_file=pki.ca_file)
    assert bridge.mesos.ca_file == pki.ca_file
    assert bridge.mesos.masters == ("https://127.0.0.1:5050",)


def test_off_the_kernel_gets_no_tls_settings_at_all(tmp_path: Path) -> None:
    env, pki = embedded.kernel_tls(_settings(tmp_path, tls=False), data_dir=tmp_path,
                                   env={"LIBPROCESS_SSL_ENABLED": "true", "HOME": "/root"},
                                   hosts=["127.0.0.1"])
    assert pki is None and env == {"HOME": "/root"}
    assert not (tmp_path / "kernel-pki").exists()


def test_the_ca_is_kept_and_the_certificate_renewed_when_needed(tmp_path: Path) -> None:
    directory = tmp_path / "kernel-pki"
    first = embedded_tls.ensure(directory=directory, hosts=["127.0.0.1"])
    ca, cert = first.ca_file.read_bytes(), first.cert_file.read_bytes()
    again = embedded_tls.ensure(directory=directory, hosts=["127.0.0.1"])
    assert again.cert_file.read_bytes() == cert  # nothing to change: kept
    more = embedded_tls.ensure(directory=directory, hosts=["127.0.0.1", "127.0.0.4"])
    assert "127.0.0.4" in _names(more.cert_file)  # a new agent's address: a new certificate
    assert more.ca_file.read_bytes() == ca  # same CA: `curl --cacert` keeps working
    late = datetime.datetime.now(datetime.UTC) + embedded_tls.CERT_VALIDITY
    renewed = embedded_tls.ensure(directory=directory, hosts=["127.0.0.1"], now=late)
    valid_until = x509.load_pem_x509_certificate(
        renewed.cert_file.read_bytes()).not_valid_after_utc
    assert valid_until > late  # expired (or expiring) by then: issued anew
    assert renewed.ca_file.read_bytes() == ca
