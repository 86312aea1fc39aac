"""HTTP authentication of the agent API, as Mesos' agent does it: ``--authenticate_http_readonly``
and ``--authenticate_http_readwrite`` turn on HTTP Basic for the endpoints of each realm,
checked against ``--http_credentials`` (Mesos' credentials file) as libprocess' basic
authenticator does.

Why: without it anyone who reaches the agent's port reads every task's environment from
``/state`` and the files of every sandbox, and can kill containers through ``/api/v1``. The
realms are Mesos' (``slave/constants.hpp``): ``mesos-agent-readonly`` for ``/state``,
``/flags``, ``/containers``, ``/monitor/statistics`` and ``/files/*``; ``mesos-agent-readwrite``
for ``/api/v1``; ``/health`` and ``/version`` are never authenticated. A failure is ``401`` with
``WWW-Authenticate: Basic realm="<realm>"`` and an empty body, whatever was wrong (no header,
another scheme, bad base64, unknown principal, wrong secret), as the basic authenticator answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from k8sbridge.kernel.agent.errors import AgentError

log = logging.getLogger(__name__)

__all__ = ["READONLY_REALM", "READWRITE_REALM", "install", "middleware", "read_credentials",
           "realm_of"]

READONLY_REALM = "mesos-agent-readonly"
READWRITE_REALM = "mesos-agent-readwrite"

_READONLY_PATHS = ("/state", "/state.json", "/slave(1)/state", "/slave(1)/state.json",
                   "/flags", "/slave(1)/flags", "/containers", "/monitor/statistics",
                   "/monitor/statistics.json")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def realm_of(path: str) -> str | None:
    """The Mesos realm of an agent endpoint (None: never authenticated)."""
    if path == "/api/v1":
        return READWRITE_REALM
    if path in _READONLY_PATHS or path.startswith("/files/"):
        return READONLY_REALM
    return None


def read_credentials(path: Path) -> dict[str, str]:
    """``principal -> secret`` from a Mesos credentials file: JSON
    ``{"credentials": [{"principal": ..., "secret": ...}]}``, or (Mesos' older text form) one
    ``principal secret`` pair per line. Raises ``AgentError`` when it cannot be used."""
    try:
        text = path.read_text()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as e:
        raise AgentError(f"Failed to read credentials file '{path}': {e}") from e
    if mode & 0o007:
        log.warning("Permissions on credential file '%s' are too open; it is recommended that "
                    "your credential file is NOT accessible by others", path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    out: dict[str, str] = {}
    if isinstance(data, dict):
        entries = data.get("credentials")
        if not isinstance(entries, list):
            raise AgentError(f"Failed to parse credentials file '{path}': expecting a "
                             "'credentials' array")
        for entry in entries:
            principal = entry.get("principal") if isinstance(entry, dict) else None
            secret = entry.get("secret", "") if isinstance(entry, dict) else None
            if not isinstance(principal, str) or not isinstance(secret, str):
                raise AgentError(f"Failed to parse credentials file '{path}': each credential "
                                 "needs a string 'principal' and 'secret'")
            out[principal] = secret
        return out
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise AgentError(f"Failed to parse credentials file '{path}' at line {number}: "
                             "expecting 'principal secret'")
        out[words[0]] = words[1]
    return out


def _principal(header: str | None, credentials: dict[str, str]) -> str | None:
    """libprocess' BasicAuthenticator: ``Basic base64(principal:secret)``, exactly."""
    if header is None:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Basic":
        return None
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    pair = decoded.split(":")
    if len(pair) != 2 or pair[0] not in credentials or credentials[pair[0]] != pair[1]:
        return None
    return pair[0]


def middleware(*, realms: frozenset[str], credentials: dict[str, str]) -> Middleware:
    """Checks requests of the ``realms`` that are turned on (no authorization follows: every
    authenticated principal may do everything, as with Mesos' default ACLs)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        realm = realm_of(request.path)
        if realm is not None and realm in realms:
            if _principal(request.headers.get("Authorization"), credentials) is None:
                return web.Response(status=401,
                                    headers={"WWW-Authenticate": f'Basic realm="{realm}"'})
        return await handler(request)

    return authenticate


def install(app: web.Application, *, readonly: bool, readwrite: bool,
            credentials_path: Path | None) -> None:
    """Add the middleware for the realms turned on (none: nothing is checked, the default)."""
    realms = frozenset(realm for on, realm in ((readonly, READONLY_REALM),
                                               (readwrite, READWRITE_REALM)) if on)
    if not realms:
        return
    if credentials_path is None:
        raise AgentError("No credentials provided for the default 'basic' HTTP authenticator "
                         f"for realm '{sorted(realms)[0]}'")
    app.middlewares.append(middleware(realms=realms,
                                      credentials=read_credentials(credentials_path)))
