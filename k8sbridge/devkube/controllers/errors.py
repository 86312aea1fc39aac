"""The controllers' error hierarchy, at the HTTP client boundary (aiohttp stays replaceable).

    ControllerError
     ├── TransportError        the server could not be reached / the stream broke
     └── ApiError              the server answered with a Status failure
          ├── NotFound         404
          ├── Conflict         409 (stale resourceVersion, UID precondition)
          │    └── AlreadyExists
          ├── Gone             410 (expired resourceVersion / continue token)
          └── Invalid          422

Callers branch on the class, never on message text.
"""

from __future__ import annotations

from typing import Any


class ControllerError(Exception):
    """Any failure of a controller's API call."""


class TransportError(ControllerError):
    """No usable HTTP answer (connection refused, reset, timeout, malformed stream)."""


class ApiError(ControllerError):
    """The API server refused the request; ``status`` is the HTTP code."""

    def __init__(self, *, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class AlreadyExists(Conflict):
    pass


class Gone(ApiError):
    pass


class Invalid(ApiError):
    pass


def from_status(*, status: int, body: Any) -> ApiError:
    """Build the right ``ApiError`` subclass from an HTTP status and its (Status) body."""
    reason = ""
    message = ""
    if isinstance(body, dict):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
    elif isinstance(body, str):
        message = body[:500]
    cls: type[ApiError] = ApiError
    if status == 404:
        cls = NotFound
    elif status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status == 410:
        cls = Gone
    elif status == 422:
        cls = Invalid
    return cls(status=status, reason=reason, message=message, body=body)
