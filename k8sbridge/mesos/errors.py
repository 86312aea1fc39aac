"""The Mesos client's error hierarchy: callers branch on the class, never on message text.

Why one small tree: the framework code must decide "retry", "re-subscribe" or "give up" without
knowing about aiohttp or status codes. Every error raised by ``k8sbridge.mesos`` is a
``MesosError``; transport failures are chained (``raise ... from e``) so nothing is lost.

    MesosError
    ├── ConfigError              bad settings (a zk:// master, an empty master list, ...)
    ├── RecordIOError            a malformed RecordIO stream (bad length header, oversize record)
    ├── ProtocolError            JSON that does not match the v1 wire model
    ├── ConnectionLost           the master is unreachable or the stream broke
    │   └── CallTimedOut         no answer within the call's timeout
    ├── ApiError                 the master answered with an unexpected status (``.status``)
    │   ├── BadRequest           400: invalid call (validation message in ``.body``)
    │   ├── Unauthorized         401: credentials missing or wrong
    │   ├── Forbidden            403: not subscribed (stream dropped) or not authorized
    │   ├── NotLeader            307 loop / 503: no reachable leading master
    │   ├── UnsupportedCall      405/406/415/501
    │   └── ServerError          any other 5xx (500, 502, 504: a master or a proxy in trouble)
    ├── OperatorError            an operator- or agent-API read failed (retry later)
    │   ├── OperatorTimeout      ... because nothing answered in time
    │   └── FileNotFound         the agent has no such sandbox file (yet)
    ├── FrameworkUnknown         the master no longer knows our stored framework id
    └── SubscriptionFailed       SUBSCRIBE answered with an ERROR event (``.message``)
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BadRequest",
    "CallTimedOut",
    "ConfigError",
    "ConnectionLost",
    "FileNotFound",
    "Forbidden",
    "FrameworkUnknown",
    "MesosError",
    "NotLeader",
    "OperatorError",
    "OperatorTimeout",
    "ProtocolError",
    "RecordIOError",
    "ServerError",
    "SubscriptionFailed",
    "Unauthorized",
    "UnsupportedCall",
    "api_error_for",
]


class MesosError(Exception):
    """Base of every error raised by the Mesos client."""


class ConfigError(MesosError):
    """The client was configured with something it cannot use."""


class RecordIOError(MesosError):
    """The RecordIO framing of a stream is broken; the stream cannot be trusted any more."""


class ProtocolError(MesosError):
    """A message that is not valid v1 JSON (bad JSON, missing required field, wrong shape)."""


class ConnectionLost(MesosError):
    """The master could not be reached, or the connection/stream broke mid-way."""


class CallTimedOut(ConnectionLost):
    """Nothing answered within the call's timeout (the master may be overloaded or hung)."""


class ApiError(MesosError):
    """The master answered a call with a status the client does not treat as success."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class BadRequest(ApiError):
    """400: the master rejected the call (its validation message is in ``body``)."""


class Unauthorized(ApiError):
    """401: HTTP framework authentication is on and our credentials were missing or wrong."""


class Forbidden(ApiError):
    """403: the framework is not subscribed (its stream dropped) or the call is not allowed."""


class NotLeader(ApiError):
    """No leading master answered: a 503 (no leader / recovering) or a redirect loop."""


class UnsupportedCall(ApiError):
    """405/406/415/501: the master does not accept this method, media type or call type."""


class ServerError(ApiError):
    """Another 5xx (500, 502, 504): the master, or a proxy in front of it, is in trouble."""


class OperatorError(MesosError):
    """An operator-API (GET_AGENTS, GET_TASKS...) or agent-API read failed; retry later.

    The transport's error (``NotLeader``, ``ConnectionLost``, ``ServerError``...) is chained.
    """


class OperatorTimeout(OperatorError):
    """The read got no answer within its timeout."""


class FileNotFound(OperatorError):
    """The agent has no such sandbox file (yet)."""


class FrameworkUnknown(MesosError):
    """The stored framework id is unknown to the master (torn down or failover timeout passed).

    Never answered with a silent new registration: the caller decides (clear the stored id and
    register anew, or alert a human), because the tasks of the old framework are gone.
    """


class SubscriptionFailed(MesosError):
    """SUBSCRIBE got 200 but the first event was ERROR (e.g. invalid FrameworkInfo)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def api_error_for(*, status: int, body: str, what: str) -> ApiError:
    """The typed error for a non-success status of call ``what``."""
    text = body.strip()
    message = f"{what}: HTTP {status}" + (f": {text}" if text else "")
    cls: type[ApiError]
    if status == 400:
        cls = BadRequest
    elif status == 401:
        cls = Unauthorized
    elif status == 403:
        cls = Forbidden
    elif status in (307, 503):
        cls = NotLeader
    elif status in (405, 406, 415, 501):
        cls = UnsupportedCall
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(message, status=status, body=text)
