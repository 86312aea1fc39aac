"""The service-account signing key and the JWTs signed with it (ES256 or RS256), as kube-apiserver.

Why: kube-apiserver signs service-account tokens with ``--service-account-signing-key-file``
and checks them with the public half (``--service-account-key-file``); kubeadm keeps the pair
as ``pki/sa.key`` / ``pki/sa.pub``. devkube does the same in its data dir, so tokens issued
before a restart still authenticate after it. The key id is kube-apiserver's: the unpadded
base64url SHA-256 of the public key's DER (PKIX) form, also the ``kid`` of the JWKS served
at ``/openid/v1/jwks``.

Why a new key is ECDSA P-256 (ES256), which kube-apiserver accepts as a signing key as well as
RSA: a token is signed for every pod that starts (its projected token volume), and an RSA-2048
signature costs ~1.8 ms of CPU against ~0.16 ms for P-256 (measured on this machine); a data
dir made before keeps its RSA key and signs RS256, as a cluster keeps the key it has.

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
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALGORITHM = "ES256"  # a new key's; an RSA key kept in a data dir signs RS256
RSA_ALGORITHM = "RS256"
EC_COORDINATE_BYTES = 32  # P-256
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


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclasses.dataclass(frozen=True, slots=True)
class SigningKey:
    private: PrivateKey
    key_id: str

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key kept nowhere (tests, servers built without a data dir)."""
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(private=private, key_id=key_id(private.public_key()))

    @property
    def public(self) -> PublicKey:
        return self.private.public_key()

    @property
    def algorithm(self) -> str:
        """The JWS ``alg`` this key signs with."""
        return RSA_ALGORITHM if isinstance(self.private, rsa.RSAPrivateKey) else ALGORITHM

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` with ``{"alg": ..., "kid": ...}``."""
        header = b64url(json.dumps({"alg": self.algorithm, "kid": self.key_id},
                                   separators=(",", ":")).encode())
        payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{header}.{payload}".encode()
        if isinstance(self.private, rsa.RSAPrivateKey):
            signature = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:  # JWS wants r || s, fixed width (RFC 7518 3.4), not the DER cryptography gives
            r, s = decode_dss_signature(self.private.sign(signing_input,
                                                          ec.ECDSA(hashes.SHA256())))
            signature = (r.to_bytes(EC_COORDINATE_BYTES, "big")
                         + s.to_bytes(EC_COORDINATE_BYTES, "big"))
        return f"{header}.{payload}.{b64url(signature)}"

    def _check_signature(self, signature: bytes, signed: bytes) -> None:
        public = self.public
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return
        if len(signature) != 2 * EC_COORDINATE_BYTES:
            raise InvalidSignature()
        r = int.from_bytes(signature[:EC_COORDINATE_BYTES], "big")
        s = int.from_bytes(signature[EC_COORDINATE_BYTES:], "big")
        public.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))

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
        if not isinstance(header, dict) or header.get("alg") != self.algorithm:
            raise TokenError("unexpected JWS algorithm")
        if header.get("kid") not in (None, self.key_id):
            raise TokenError("signed by another key")
        try:
            self._check_signature(_unb64url(parts[2]), f"{parts[0]}.{parts[1]}".encode())
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
        public = self.public
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {"keys": [{
                "use": "sig", "kty": "RSA", "kid": self.key_id, "alg": RSA_ALGORITHM,
                "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            }]}
        point = public.public_numbers()
        return {"keys": [{
            "use": "sig", "kty": "EC", "kid": self.key_id, "alg": ALGORITHM, "crv": "P-256",
            "x": b64url(point.x.to_bytes(EC_COORDINATE_BYTES, "big")),
            "y": b64url(point.y.to_bytes(EC_COORDINATE_BYTES, "big")),
        }]}


def key_id(public: PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def ensure(directory: Path) -> SigningKey:
    """Load ``directory/sa.key`` (P-256 or RSA) or make it (P-256, mode 0600) with ``sa.pub``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            private: PrivateKey = loaded
        elif isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1":
            private = loaded
        else:
            raise ValueError(f"{path} is neither an RSA nor a P-256 key")
    else:
        private = ec.generate_private_key(ec.SECP256R1())
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
