"""HTTP authentication of the agent API, as Mesos' agent does it: ``--authenticate_http_readonly``
and ``--authenticate_http_readwrite`` turn on HTTP Basic for the endpoints of each realm,
checked against ``--http_credentials`` (Mesos' credentials file) as libprocess' basic
authenticator does, with the master's code for both (``kernel/credentials.py``).

Why: without it anyone who reaches the agent's port reads every task's environment from
``/state`` and the files of every sandbox, and can kill containers through ``/api/v1``. The
realms are Mesos' (``slave/constants.hpp``): ``mesos-agent-readonly`` for ``/state``,
``/flags``, ``/containers``, ``/monitor/statistics`` and ``/files/*``; ``mesos-agent-readwrite``
for ``/api/v1``; ``/health`` and ``/version`` are never authenticated. A failure is ``401`` with
``WWW-Authenticate: Basic realm="<realm>"`` and an empty body, whatever was wrong (no header,
another scheme, bad base64, unknown principal, wrong secret), as the basic authenticator answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from k8sbridge.kernel.agent.errors import AgentError
from k8sbridge.kernel.credentials import CredentialsError, basic_principal, read_credentials

log = logging.getLogger(__name__)

__all__ = ["READONLY_REALM", "READWRITE_REALM", "install", "middleware", "realm_of"]

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


def middleware(*, realms: frozenset[str], credentials: dict[str, str]) -> Middleware:
    """Checks requests of the ``realms`` that are turned on (no authorization follows: every
    authenticated principal may do everything, as with Mesos' default ACLs)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        realm = realm_of(request.path)
        if realm is not None and realm in realms:
            if basic_principal(request.headers.get("Authorization"), credentials) is None:
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
    try:
        loaded = read_credentials(str(credentials_path), flag_name="http_credentials")
    except CredentialsError as e:
        raise AgentError(str(e)) from e
    app.middlewares.append(middleware(realms=realms, credentials=loaded))
