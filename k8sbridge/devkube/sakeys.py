"""The service-account signing key and the JWTs signed with it (RS256), as kube-apiserver's.

Why: kube-apiserver signs service-account tokens with ``--service-account-signing-key-file``
and checks them with the public half (``--service-account-key-file``); kubeadm keeps the pair
as ``pki/sa.key`` / ``pki/sa.pub``. devkube does the same in its data dir, so tokens issued
before a restart still authenticate after it. The key id is kube-apiserver's: the unpadded
base64url SHA-256 of the public key's DER (PKIX) form, also the ``kid`` of the JWKS served
at ``/openid/v1/jwks``.

    TokenError    a token that is not a JWT this key signed (the caller answers 401)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RS256"
KEY_BITS = 2048
KEY_FILE = "sa.key"
PUBLIC_FILE = "sa.pub"
MAX_TOKEN_BYTES = 64 * 1024


class TokenError(Exception):
    """Not a JWT signed by this key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as e:
        raise TokenError("malformed base64url") from e


@dataclasses.dataclass(frozen=True, slots=True)
class SigningKey:
    private: rsa.RSAPrivateKey
    key_id: str

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key kept nowhere (tests, servers built without a data dir)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        return cls(private=private, key_id=key_id(private.public_key()))

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` with ``{"alg": "RS256", "kid": ...}``."""
        header = b64url(json.dumps({"alg": ALGORITHM, "kid": self.key_id},
                                   separators=(",", ":")).encode())
        payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{b64url(signature)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` if this key signed it (``TokenError`` otherwise)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a compact JWS")
        try:
            header = json.loads(_unb64url(parts[0]))
        except ValueError as e:
            raise TokenError("malformed JWS header") from e
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise TokenError("unexpected JWS algorithm")
        if header.get("kid") not in (None, self.key_id):
            raise TokenError("signed by another key")
        try:
            self.public.verify(_unb64url(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                               padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as e:
            raise TokenError("bad signature") from e
        try:
            claims = json.loads(_unb64url(parts[1]))
        except ValueError as e:
            raise TokenError("malformed JWT claims") from e
        if not isinstance(claims, dict):
            raise TokenError("malformed JWT claims")
        return claims

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set kube-apiserver serves at ``/openid/v1/jwks``."""
        numbers = self.public.public_numbers()
        return {"keys": [{
            "use": "sig", "kty": "RSA", "kid": self.key_id, "alg": ALGORITHM,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }]}


def key_id(public: rsa.RSAPublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def ensure(directory: Path) -> SigningKey:
    """Load ``directory/sa.key`` or make it (RSA 2048, mode 0600) with ``sa.pub`` beside it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA key")
        private = loaded
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        tmp.replace(path)
        (directory / PUBLIC_FILE).write_bytes(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return SigningKey(private=private, key_id=key_id(private.public_key()))
