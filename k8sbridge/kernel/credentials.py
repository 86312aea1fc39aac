"""Mesos' credentials file and HTTP Basic check, shared by the kernel's master and agents.

Why one module: Mesos' master and agent read ``--credentials`` / ``--http_credentials`` with
the same ``credentials::read`` (``src/credentials/credentials.hpp``) and check ``Authorization``
headers with the same libprocess basic authenticator, so the two stand-ins must answer alike.
Secrets are never logged or put into an error message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CredentialsError", "basic_principal", "read_credentials"]

log = logging.getLogger(__name__)


class CredentialsError(Exception):
    """A credentials file Mesos refuses to start with (the message names the flag)."""


def _path_of(flag: str) -> Path:
    """Mesos' ``Path`` flags take ``/path`` or ``file:///path``."""
    return Path(flag[len("file://"):] if flag.startswith("file://") else flag)


def read_credentials(flag: str, *, flag_name: str = "credentials") -> dict[str, str]:
    """``{principal: secret}`` from Mesos' JSON credentials file (``credentials.hpp``).

    ``{"credentials": [{"principal": "p", "secret": "s"}]}``. As Mesos: a file readable,
    writable or executable by others is loaded with a warning; an empty file or one with no
    credential, bad JSON or a credential without ``principal`` is an error naming the flag.
    """
    path = _path_of(flag)
    log.info("Loading credentials for authentication from '%s'", path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise CredentialsError(f"Failed to read credentials file '{path}': {e.strerror} "
                              f"(see --{flag_name} flag)") from e
    if not text:
        raise CredentialsError("Credentials file must contain at least one credential "
                              f"(see --{flag_name} flag)")
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        log.warning("Failed to stat credentials file '%s': %s", path, e.strerror)
    else:
        if mode & stat.S_IRWXO:
            log.warning("Permissions on credentials file '%s' are too open; it is recommended "
                        "that your credentials file is NOT accessible by others", path)
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise CredentialsError(f"Invalid json format: {e} (see --{flag_name} flag)") from e
    if not isinstance(document, dict):
        raise CredentialsError("Invalid json format: Expecting a JSON object "
                              f"(see --{flag_name} flag)")
    entries = document.get("credentials", [])
    if isinstance(entries, dict):
        entries = [entries]  # stout takes a single object for a repeated field
    if not isinstance(entries, list):
        raise CredentialsError("Failed to parse credentials: Not expecting a JSON "
                              f"{type(entries).__name__} for field 'credentials' "
                              f"(see --{flag_name} flag)")
    out: dict[str, str] = {}
    for i, entry in enumerate(entries):
        principal = entry.get("principal") if isinstance(entry, dict) else None
        secret = entry.get("secret", "") if isinstance(entry, dict) else None
        if not isinstance(principal, str):
            raise CredentialsError("Failed to parse credentials: Missing required fields: "
                                  f"credentials[{i}].principal (see --{flag_name} flag)")
        if not isinstance(secret, str):
            raise CredentialsError("Failed to parse credentials: Not expecting a non-string "
                                  f"for field 'credentials[{i}].secret' "
                                  f"(see --{flag_name} flag)")
        out[principal] = secret
    if not out:
        raise CredentialsError("Credentials file must contain at least one credential "
                              f"(see --{flag_name} flag)")
    return out


def basic_principal(header: str | None, credentials: Mapping[str, str]) -> str | None:
    """The principal a ``Basic`` ``Authorization`` header proves, or None.

    The same steps as libprocess' ``BasicAuthenticatorProcess::authenticate``: exactly two
    space-separated parts, the scheme ``Basic`` (case-sensitive), base64 that decodes, exactly
    one ``:`` (so a secret with a colon never matches), a known principal and its secret.
    """
    if header is None:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Basic":
        return None
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    pair = decoded.split(":")
    if len(pair) != 2:
        return None
    principal, secret = pair
    expected = credentials.get(principal)
    if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
        return None
    return principal
