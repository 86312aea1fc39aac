"""Authentication of the master's HTTP endpoints, as Mesos' master and libprocess do it.

Why a module: Mesos guards each endpoint set with an authentication *realm*
(``mesos-master-scheduler`` for ``/api/v1/scheduler``, ``mesos-master-readwrite`` for the
operator API ``/api/v1`` and other writers, ``mesos-master-readonly`` for ``/state``,
``/frameworks``, ``/metrics/snapshot`` ...). A realm is enforced only when its flag is on
(``--authenticate_http_frameworks`` / ``--authenticate_http_readwrite`` /
``--authenticate_http_readonly``), and then by the ``basic`` authenticator over the
``--credentials`` file. Loading the file and checking a request's ``Authorization`` header are
shared with the agents (``kernel/credentials.py``, one code path as in Mesos); secrets are
never logged or put into an error message.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from k8sbridge.kernel.credentials import CredentialsError, basic_principal, read_credentials
from k8sbridge.kernel.master.errors import MasterError

log = logging.getLogger(__name__)

# src/master/constants.hpp
READONLY_REALM = "mesos-master-readonly"
READWRITE_REALM = "mesos-master-readwrite"
SCHEDULER_REALM = "mesos-master-scheduler"
BASIC = "basic"  # DEFAULT_BASIC_HTTP_AUTHENTICATOR


class AuthConfigError(MasterError):
    """A flag combination or a credentials file the master refuses to start with."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unauthorized:
    """libprocess' ``Unauthorized`` answer: 401, a Basic challenge for the realm, no body."""

    realm: str

    @property
    def challenge(self) -> str:
        return f'Basic realm="{self.realm}"'


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
    try:
        loaded = read_credentials(credentials) if credentials is not None else None
    except CredentialsError as e:
        raise AuthConfigError(str(e)) from e
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
