"""API errors of devkube, rendered as Kubernetes ``Status`` objects.

Why: every failure a client sees must look like the real apiserver's (kubectl, the official client
and kopf branch on ``code`` and ``reason``), so handlers raise one of these and the server renders
it; nothing else turns into an HTTP error body.

    ApiError (code, reason, message, details)
      built by the helpers below: not_found, already_exists, conflict, invalid, bad_request, gone,
      method_not_allowed, unsupported_media_type, too_large, unauthorized, not_implemented
"""

from __future__ import annotations

import json
from typing import Any, TypedDict


class RawStatusDetails(TypedDict, total=False):
    """``metav1.StatusDetails`` as sent on the wire."""

    name: str
    group: str
    kind: str
    uid: str
    causes: list[dict[str, str]]


class RawStatus(TypedDict, total=False):
    """``metav1.Status`` as sent on the wire (the body of every error)."""

    kind: str
    apiVersion: str
    metadata: dict[str, Any]
    status: str
    message: str
    reason: str
    code: int
    details: RawStatusDetails


class ApiError(Exception):
    """A failure that becomes an HTTP status and a ``Status`` body."""

    def __init__(
        self,
        *,
        code: int,
        reason: str,
        message: str,
        details: RawStatusDetails | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> RawStatus:
        body: RawStatus = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def body(self) -> bytes:
        return json.dumps(self.status()).encode()


def _details(*, name: str, group: str, kind: str) -> RawStatusDetails:
    details: RawStatusDetails = {"kind": kind}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def qualified(*, plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(*, plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        code=404,
        reason="NotFound",
        message=f'{qualified(plural=plural, group=group)} "{name}" not found',
        details=_details(name=name, group=group, kind=plural),
    )


def already_exists(*, plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        code=409,
        reason="AlreadyExists",
        message=f'{qualified(plural=plural, group=group)} "{name}" already exists',
        details=_details(name=name, group=group, kind=plural),
    )


def conflict(*, plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        code=409,
        reason="Conflict",
        message=(
            f'Operation cannot be fulfilled on {qualified(plural=plural, group=group)} "{name}": '
            f"{why}"
        ),
        details=_details(name=name, group=group, kind=plural),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


Cause = tuple[str, str, str]  # (reason, field, message) of one problem in an Invalid answer


def invalid(
    *, kind: str, group: str, name: str, causes: list[Cause]
) -> ApiError:
    """``causes`` are (reason, field, message) triples, e.g. ("FieldValueRequired", ...)."""
    parts = [f"{field}: {message}" for _, field, message in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(name=name, group=group, kind=kind)
    details["causes"] = [
        {"reason": reason, "message": message, "field": field} for reason, field, message in causes
    ]
    return ApiError(
        code=422,
        reason="Invalid",
        message=f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}',
        details=details,
    )


def forbidden(*, plural: str, group: str, name: str, why: str) -> ApiError:
    """``apierrors.NewForbidden``: what admission answers when it refuses an object."""
    return ApiError(
        code=403,
        reason="Forbidden",
        message=f'{qualified(plural=plural, group=group)} "{name}" is forbidden: {why}',
        details=_details(name=name, group=group, kind=plural),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(code=400, reason="BadRequest", message=message)


def gone(message: str) -> ApiError:
    return ApiError(code=410, reason="Expired", message=message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(code=405, reason="MethodNotAllowed", message=message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        code=415,
        reason="UnsupportedMediaType",
        message=f"the body of the request was in an unknown format - accepted media types "
        f"include: application/json, application/yaml, application/json-patch+json, "
        f"application/merge-patch+json, application/strategic-merge-patch+json "
        f"(got {content_type!r})",
    )


def too_large(message: str) -> ApiError:
    return ApiError(code=413, reason="RequestEntityTooLarge", message=message)


def unauthorized() -> ApiError:
    return ApiError(code=401, reason="Unauthorized", message="Unauthorized")


def not_implemented(message: str) -> ApiError:
    return ApiError(code=501, reason="NotImplemented", message=message)


def unprocessable(message: str) -> ApiError:
    return ApiError(code=422, reason="Invalid", message=message)
