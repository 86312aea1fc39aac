"""A generated CA, a serving certificate and a bearer token for devkube's HTTPS endpoint.

Why: kubectl must work with no extra flags (no --insecure-skip-tls-verify), so devkube writes a
kubeconfig that carries its own CA; the files live in the data dir so a restarted devkube keeps
the same identity and existing kubeconfigs stay valid. Like kube-apiserver's
``--kubelet-client-certificate``, devkube also holds a client certificate signed by the same CA
(CN ``kube-apiserver-kubelet-client``, O ``system:masters``) that it presents to kubelet APIs
when it proxies ``pods/log``; a kubelet that trusts the CA (``kubelet.client_ca_file``)
authenticates it.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    ca_file: Path
    cert_file: Path
    key_file: Path
    token: str
    kubelet_client_cert: Path
    kubelet_client_key: Path


KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_ORG = "system:masters"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# The names kube-apiserver's serving certificate carries for in-cluster clients (the
# ``kubernetes`` Service: its DNS names and cluster IP), so a pod that reaches the API server
# through them can verify it with the ``ca.crt`` of its service-account volume.
IN_CLUSTER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local", "10.96.0.1")


def _san_entries(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in ["127.0.0.1", "::1", "localhost", *IN_CLUSTER_NAMES, *hosts]:
        if not host or host in seen or host in ("0.0.0.0", "::"):
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure(*, directory: Path, hosts: list[str]) -> Credentials:
    """Create (or reuse) CA, serving cert for ``hosts`` and token under ``directory``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)  # private keys and the admin token live here
    ca_file = directory / "ca.crt"
    cert_file = directory / "apiserver.crt"
    key_file = directory / "apiserver.key"
    token_file = directory / "token"
    if not token_file.exists():
        _write_private(token_file, secrets.token_urlsafe(32).encode())
    token = token_file.read_text().strip()
    if ca_file.exists() and cert_file.exists() and key_file.exists():
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        wanted = {str(n.value) for n in _san_entries(hosts)}
        have = {str(n.value) for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value}
        if wanted <= have:
            client_cert, client_key = _ensure_kubelet_client(directory)
            return Credentials(ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                               token=token, kubelet_client_cert=client_cert,
                               kubelet_client_key=client_key)
    now = datetime.datetime.now(datetime.UTC)
    ca_key_file = directory / "ca.key"
    if ca_file.exists() and ca_key_file.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_file} is not an EC key")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devkube-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_file, ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devkube-apiserver")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(_san_entries(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_file, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    client_cert, client_key = _ensure_kubelet_client(directory)
    return Credentials(ca_file=ca_file, cert_file=cert_file, key_file=key_file, token=token,
                       kubelet_client_cert=client_cert, kubelet_client_key=client_key)


def _ensure_kubelet_client(directory: Path) -> tuple[Path, Path]:
    """The kubelet client certificate (made once, signed by the CA in ``directory``)."""
    cert_file = directory / "apiserver-kubelet-client.crt"
    key_file = directory / "apiserver-kubelet-client.key"
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    if cert_file.exists() and key_file.exists():
        existing = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if existing.issuer == ca_cert.subject:
            return cert_file, key_file
    loaded = serialization.load_pem_private_key((directory / "ca.key").read_bytes(),
                                                password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not an EC key")
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, KUBELET_CLIENT_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, KUBELET_CLIENT_CN),
        ]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(loaded.public_key()),
                       critical=False)
        .sign(loaded, hashes.SHA256())
    )
    _write_private(key_file, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file
