"""The embedded kernel's TLS identity: a CA of its own and the certificate its processes present.

Why: ``k8sbridge run`` starts the kernel with libprocess' SSL settings on (``LIBPROCESS_SSL_*``,
as a Mesos deployment would be), so the bridge talks HTTPS to the master and to every agent and
checks them with a CA it was given (``mesos.ca_file``), the way it must against a production
Mesos. The files live in ``DATA_DIR/kernel-pki`` (0700; keys 0600): the CA is made once and
kept, so a curl command with ``--cacert`` keeps working across restarts; the serving
certificate is made again when it lacks a name the run needs (more agents), expires within
``RENEW_BEFORE`` or has expired (logged: an expired certificate is never served by us).

The one certificate names every address the kernel serves on (the master's and each agent's
loopback address, ``localhost``) and is good for both server and client use: libprocess
presents the same certificate when it connects, and the agents' link to the master does too.
``issue`` is public so that tests can make certificates outside their validity (expired).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["KernelPki", "RENEW_BEFORE", "ensure", "issue", "kernel_environment"]

log = logging.getLogger(__name__)

RENEW_BEFORE = datetime.timedelta(days=30)
CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True, slots=True)
class KernelPki:
    ca_file: Path  # what clients verify the kernel with (the bridge's mesos.ca_file, --cacert)
    cert_file: Path  # the kernel's certificate (LIBPROCESS_SSL_CERT_FILE)
    key_file: Path  # its key (LIBPROCESS_SSL_KEY_FILE)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(("localhost", "127.0.0.1", *hosts)):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca(directory: Path, now: datetime.datetime) -> tuple[x509.Certificate,
                                                         ec.EllipticCurvePrivateKey]:
    ca_file, ca_key_file = directory / "ca.crt", directory / "ca.key"
    if ca_file.exists() and ca_key_file.exists():
        cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > now:
            return cert, key
        log.warning("the kernel's CA in %s is expired or unusable: making a new one", directory)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sbridge-kernel-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(ca_key_file, _key_pem(key))
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(*, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          hosts: Sequence[str], not_before: datetime.datetime,
          not_after: datetime.datetime) -> tuple[bytes, bytes]:
    """A certificate (PEM) for ``hosts`` signed by the CA, for server and client use, and its
    key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sbridge-kernel")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _still_good(cert_file: Path, *, ca: x509.Certificate, hosts: Sequence[str],
                now: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        have = {str(n.value) for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value}
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    if cert.issuer != ca.subject or not {str(n.value) for n in _names(hosts)} <= have:
        return False
    if cert.not_valid_after_utc <= now:
        log.warning("the kernel's certificate %s expired on %s: issuing a new one", cert_file,
                    cert.not_valid_after_utc.isoformat())
        return False
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def ensure(*, directory: Path, hosts: Sequence[str],
           now: datetime.datetime | None = None) -> KernelPki:
    """The CA and the kernel's certificate for ``hosts`` under ``directory`` (made or renewed
    as the module docstring says)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    moment = now or datetime.datetime.now(datetime.UTC)
    ca_cert, ca_key = _ca(directory, moment)
    pki = KernelPki(ca_file=directory / "ca.crt", cert_file=directory / "kernel.crt",
                    key_file=directory / "kernel.key")
    if not (pki.key_file.exists()
            and _still_good(pki.cert_file, ca=ca_cert, hosts=hosts, now=moment)):
        cert, key = issue(ca_cert=ca_cert, ca_key=ca_key, hosts=hosts,
                          not_before=moment - datetime.timedelta(minutes=5),
                          not_after=moment + CERT_VALIDITY)
        _write_private(pki.key_file, key)
        pki.cert_file.write_bytes(cert)
    return pki


def kernel_environment(pki: KernelPki) -> dict[str, str]:
    """libprocess' SSL settings for a kernel serving with ``pki``: TLS only (no downgrade),
    servers' certificates verified with the CA (``openssl`` host name scheme, IP addresses
    too), as docs/ssl.md of Mesos recommends."""
    return {
        "LIBPROCESS_SSL_ENABLED": "true",
        "LIBPROCESS_SSL_CERT_FILE": str(pki.cert_file),
        "LIBPROCESS_SSL_KEY_FILE": str(pki.key_file),
        "LIBPROCESS_SSL_CA_FILE": str(pki.ca_file),
        "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "true",
        "LIBPROCESS_SSL_VERIFY_IPADD": "true",
        "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME": "openssl",
        "LIBPROCESS_SSL_SUPPORT_DOWNGRADE": "false",
    }
