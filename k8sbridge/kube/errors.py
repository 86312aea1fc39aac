"""The Kubernetes seam's error hierarchy: callers branch on the class, never on message text.

Why here: the kubelet and the scheduler loop must decide "ignore", "retry" or "re-read" without
knowing which client library spoke to the API server. Every error leaving ``k8sbridge.kube`` is a
``KubeError``; the library's own exception is chained (``raise ... from e``).

    KubeError
    ├── ConfigError          no usable kubeconfig / in-cluster credentials
    ├── TransportError       the API server could not be reached (retryable)
    └── ApiError             the API server answered with an error status (``.status``, ``.reason``)
        ├── BadRequest       400
        ├── Unauthorized     401
        ├── Forbidden        403
        ├── NotFound         404
        ├── Conflict         409 (stale resourceVersion, UID precondition, already bound/exists)
        ├── Gone             410 (resourceVersion too old)
        ├── Invalid          422 (validation; ``.causes``)
        ├── TooManyRequests  429 (retryable)
        └── ServerError      5xx (retryable)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "api_error",
]


class KubeError(Exception):
    """Base of every error raised by ``k8sbridge.kube``."""


class ConfigError(KubeError):
    """No usable credentials for the API server."""


class TransportError(KubeError):
    """The API server could not be reached or the connection broke (retry later)."""


class ApiError(KubeError):
    """The API server answered with an error ``Status``."""

    def __init__(self, message: str, *, status: int, reason: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Gone(ApiError):
    pass


class Invalid(ApiError):
    @property
    def causes(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict):
            causes = (self.body.get("details") or {}).get("causes") or []
            return [c for c in causes if isinstance(c, dict)]
        return []


class TooManyRequests(ApiError):
    pass


class ServerError(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def api_error(*, status: int, body: bytes | str | None, what: str) -> ApiError:
    """Build the right ``ApiError`` subclass from a status code and a ``Status`` body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    parsed: Any = None
    message = text[:500]
    reason = ""
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or message)
        reason = str(parsed.get("reason") or "")
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(f"{what}: {status} {message}", status=status, reason=reason, body=parsed)
