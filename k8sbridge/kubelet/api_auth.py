"""The kubelet API's authentication, as a kubelet's: client certificates, TokenReview, anonymous.

Why a module: a client certificate verified against ``client_ca_file`` authenticates its CN; a
bearer token is checked with a ``TokenReview`` against the API server, the answer cached
(keyed by the token's SHA-256, never by the token itself); anything else is 401 unless
anonymous requests are allowed. Malformed credentials are no credentials (401), never an error.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from k8sbridge.kube import errors as kube_errors
from k8sbridge.kubelet import api_base
from k8sbridge.kubelet.api_base import (
    ANONYMOUS,
    USER,
    UserInfo,
)

__all__ = ["Authenticating", "generate_self_signed"]

log = logging.getLogger(__name__)


TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def generate_self_signed(directory: Path, *, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for ``hosts`` (IPs or names); returns (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sbridge-kubelet")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "kubelet.crt"
    key_path = directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _user_from_cert(peer: Any) -> UserInfo:
    """A verified client certificate: the CN is the user, each O a group (as Kubernetes)."""
    username = ""
    groups: list[str] = []
    for rdn in peer.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                username = str(value)
            elif attr == "organizationName":
                groups.append(str(value))
    return UserInfo(username=username, groups=(*groups, "system:authenticated"), method="x509")


class Authenticating(api_base.ServerBase):
    """The authentication middleware and its TokenReview cache."""

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        user = await self.authenticate(request)
        if user is None:
            return web.Response(status=401, text="Unauthorized\n")
        request[USER] = user
        response: web.StreamResponse = await handler(request)
        return response

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The request's user, or None (401): certificate, then bearer token, then anonymous."""
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        if peer:  # only set when the certificate verified against client_ca_file
            return _user_from_cert(peer)
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                return None
            return await self._review(token)
        if self._settings.anonymous:
            return UserInfo(username=ANONYMOUS, groups=("system:unauthenticated",),
                            method="anonymous")
        return None

    async def _review(self, token: str) -> UserInfo | None:
        if not self._settings.token_review or self._reviewer is None:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens_ok.get(key)
        if cached is not None:
            return cached
        if key in self._tokens_bad:
            return None
        self.token_reviews += 1
        try:
            reply = await self._reviewer.create(TOKEN_REVIEW_PATH, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token},
            })
        except kube_errors.KubeError as e:  # not cached: the next request asks again
            log.warning("TokenReview failed, request refused: %s", e)
            return None
        status = reply.get("status") or {}
        user = status.get("user") or {}
        if status.get("authenticated") is not True or not user.get("username"):
            if self._settings.token_cache_failure_ttl_seconds > 0:
                self._tokens_bad[key] = True
            return None
        info = UserInfo(username=str(user["username"]),
                        groups=tuple(str(g) for g in user.get("groups") or ()),
                        method="token")
        if self._settings.token_cache_ttl_seconds > 0:
            self._tokens_ok[key] = info
        return info
