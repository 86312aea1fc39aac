"""Authentication of the master's HTTP endpoints, as Mesos' master and libprocess do it.

Why a module: Mesos guards each endpoint set with an authentication *realm*
(``mesos-master-scheduler`` for ``/api/v1/scheduler``, ``mesos-master-readwrite`` for the
operator API ``/api/v1`` and other writers, ``mesos-master-readonly`` for ``/state``,
``/frameworks``, ``/metrics/snapshot`` ...). A realm is enforced only when its flag is on
(``--authenticate_http_frameworks`` / ``--authenticate_http_readwrite`` /
``--authenticate_http_readonly``), and then by the ``basic`` authenticator over the
``--credentials`` file. Loading the file and checking a request's ``Authorization`` header are
pure functions of bytes, so they live here, apart from the HTTP handlers; secrets are never
logged or put into an error message.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from k8sbridge.kernel.master.errors import MasterError

log = logging.getLogger(__name__)

# src/master/constants.hpp
READONLY_REALM = "mesos-master-readonly"
READWRITE_REALM = "mesos-master-readwrite"
SCHEDULER_REALM = "mesos-master-scheduler"
BASIC = "basic"  # DEFAULT_BASIC_HTTP_AUTHENTICATOR


class AuthConfigError(MasterError):
    """A flag combination or a credentials file the master refuses to start with."""


def _path_of(flag: str) -> Path:
    """Mesos' ``Path`` flags take ``/path`` or ``file:///path``."""
    return Path(flag[len("file://"):] if flag.startswith("file://") else flag)


def read_credentials(flag: str) -> dict[str, str]:
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
        raise AuthConfigError(f"Failed to read credentials file '{path}': {e.strerror} "
                              "(see --credentials flag)") from e
    if not text:
        raise AuthConfigError("Credentials file must contain at least one credential "
                              "(see --credentials flag)")
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
        raise AuthConfigError(f"Invalid json format: {e} (see --credentials flag)") from e
    if not isinstance(document, dict):
        raise AuthConfigError("Invalid json format: Expecting a JSON object "
                              "(see --credentials flag)")
    entries = document.get("credentials", [])
    if isinstance(entries, dict):
        entries = [entries]  # stout takes a single object for a repeated field
    if not isinstance(entries, list):
        raise AuthConfigError("Failed to parse credentials: Not expecting a JSON "
                              f"{type(entries).__name__} for field 'credentials' "
                              "(see --credentials flag)")
    out: dict[str, str] = {}
    for i, entry in enumerate(entries):
        principal = entry.get("principal") if isinstance(entry, dict) else None
        secret = entry.get("secret", "") if isinstance(entry, dict) else None
        if not isinstance(principal, str):
            raise AuthConfigError("Failed to parse credentials: Missing required fields: "
                                  f"credentials[{i}].principal (see --credentials flag)")
        if not isinstance(secret, str):
            raise AuthConfigError("Failed to parse credentials: Not expecting a non-string "
                                  f"for field 'credentials[{i}].secret' "
                                  "(see --credentials flag)")
        out[principal] = secret
    if not out:
        raise AuthConfigError("Credentials file must contain at least one credential "
                              "(see --credentials flag)")
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Unauthorized:
    """libprocess' ``Unauthorized`` answer: 401, a Basic challenge for the realm, no body."""

    realm: str

    @property
    def challenge(self) -> str:
        return f'Basic realm="{self.realm}"'


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


@dataclasses.dataclass(frozen=True, slots=True)
class HttpAuthentication:
    """Which realms are enforced, and the credentials that open them."""

    realms: frozenset[str]
    credentials: Mapping[str, str]

    def authenticate(self, *, realm: str | None, header: str | None
                     ) -> str | Unauthorized | None:
        """The request's principal; ``Unauthorized`` when its realm is enforced and the
        header proves nobody; None when the endpoint is not authenticated (no realm, or its
        flag is off), as libprocess passes such requests with no principal."""
        if realm is None or realm not in self.realms:
            return None
        principal = basic_principal(header, self.credentials)
        return Unauthorized(realm) if principal is None else principal


def http_authentication(
    *, credentials: str | None, readonly: bool, readwrite: bool, frameworks: bool,
    http_framework_authenticators: str | None, http_authenticators: str = BASIC,
    authenticate_frameworks: bool = False,
) -> HttpAuthentication:
    """Check the flags as ``Master::initialize`` does and load the credentials.

    Errors are the messages Mesos exits with: a bad or empty credentials file,
    ``--authenticate_http_frameworks`` without ``--http_framework_authenticators``, an
    authenticator other than ``basic`` (no modules here), and a realm to enforce with no
    credentials to check against.
    """
    loaded = read_credentials(credentials) if credentials is not None else None
    if authenticate_frameworks and loaded is None:
        # The CRAM-MD5 authenticator cannot start without credentials (driver frameworks,
        # which this master does not serve; the flag is kept for Mesos' behaviour).
        raise AuthConfigError("Failed to start master with authentication enabled: Failed to "
                              "initialize authenticator 'crammd5': No credentials provided")
    realms: set[str] = set()
    wanted = [(readonly, READONLY_REALM, http_authenticators),
              (readwrite, READWRITE_REALM, http_authenticators)]
    if frameworks:
        if http_framework_authenticators is None:
            raise AuthConfigError("Missing `--http_framework_authenticators` flag. This must be "
                                  "used in conjunction with `--authenticate_http_frameworks`")
        wanted.append((True, SCHEDULER_REALM, http_framework_authenticators))
    for on, realm, names in wanted:
        if not on:
            continue
        chosen = [n for n in names.split(",") if n]
        for name in chosen:
            if name != BASIC:
                raise AuthConfigError(
                    f"HTTP authenticator '{name}' not found. Check the spelling (compare to "
                    f"'{BASIC}') or verify that the authenticator was loaded successfully "
                    "(see --modules)")
        if not chosen:
            raise AuthConfigError("No HTTP authenticators specified for realm "
                                  f"'{realm}'")
        if loaded is None:
            raise AuthConfigError(f"No credentials provided for the default '{BASIC}' HTTP "
                                  f"authenticator for realm '{realm}'")
        realms.add(realm)
    return HttpAuthentication(realms=frozenset(realms), credentials=loaded or {})
