"""kube-apiserver's validation of Events (``pkg/apis/core/validation/events.go``), for both APIs.

Why: one stored Event is written through core/v1 (kubelets, kopf) and events.k8s.io/v1
(kube-scheduler, client-go's new recorder), and the apiserver holds each to different rules.
Every write passes the legacy rules: an event without ``eventTime`` only needs its namespace to
agree with its object's; one with ``eventTime`` (a "new" event) also needs a reporting
controller (a qualified name), a reporting instance, an action and a reason, with length limits.
A create through events.k8s.io/v1 must moreover have ``eventTime``, a type Normal or Warning, a
``series`` (if any) of count >= 2 with ``lastObservedTime``, and none of the deprecated fields;
an update there must leave everything but the series (and the metadata) as it was. The checks
run on the stored (core/v1) form, so the fields are named as the apiserver names them there
(``message``, not ``note``). Pure functions: (reason, field, message) causes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from k8sbridge.devkube import errors

Obj = dict[str, Any]
Cause = errors.Cause

NEW_GROUP = "events.k8s.io"
REPORTING_INSTANCE_LIMIT = 128
ACTION_LIMIT = 128
REASON_LIMIT = 128
NOTE_LIMIT = 1024

_QUALIFIED_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_IMMUTABLE = ("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp",
              "count", "type", "eventTime", "action", "related", "reportingComponent",
              "reportingInstance")
_EMPTY: dict[str, Any] = {"count": 0}  # how a missing field compares (Go's zero values)


def _required(field: str) -> Cause:
    return ("FieldValueRequired", field, "Required value")


def _invalid(field: str, value: str, detail: str) -> Cause:
    return ("FieldValueInvalid", field, f"Invalid value: {json.dumps(value)}: {detail}")


def _qualified_name(value: str) -> list[str]:
    """``IsQualifiedName``: an optional DNS subdomain prefix, then a name part."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _QUALIFIED_MSG
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    out: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            out.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            out.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                       "alphanumeric characters, '-' or '.', and must start and end with an "
                       "alphanumeric character (e.g. 'example.com', regex used for validation "
                       "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not _QUALIFIED_PART.match(name):
        out.append("name part " + _QUALIFIED_MSG)
    return out


def _text(obj: Obj, field: str) -> str:
    value = obj.get(field)
    return value if isinstance(value, str) else ""


def _size(obj: Obj, field: str) -> int:
    """A string's length as Go's ``len``: in bytes."""
    return len(_text(obj, field).encode())


def legacy_causes(obj: Obj) -> list[Cause]:
    """``legacyValidateEvent``: every create and update, through either API."""
    causes: list[Cause] = []
    namespace = _text(obj.get("metadata") or {}, "namespace")
    involved = _text(obj.get("involvedObject") or {}, "namespace")
    if not obj.get("eventTime"):
        if (not involved and namespace not in ("", "default")) or (
                involved and namespace != involved):
            causes.append(_invalid("involvedObject.namespace", involved,
                                   "does not match event.namespace"))
        return causes
    if not involved and namespace not in ("default", "kube-system"):
        causes.append(_invalid("involvedObject.namespace", involved,
                               "does not match event.namespace"))
    controller = _text(obj, "reportingComponent")
    if not controller:
        causes.append(_required("reportingController"))
    causes += [_invalid("reportingController", controller, m)
               for m in _qualified_name(controller)]
    instance = _text(obj, "reportingInstance")
    if not instance:
        causes.append(_required("reportingInstance"))
    if _size(obj, "reportingInstance") > REPORTING_INSTANCE_LIMIT:
        causes.append(_invalid("reportingInstance", "",
                               f"can have at most {REPORTING_INSTANCE_LIMIT} characters"))
    for field, limit in (("action", ACTION_LIMIT), ("reason", REASON_LIMIT)):
        value = _text(obj, field)
        if not value:
            causes.append(_required(field))
        if _size(obj, field) > limit:
            causes.append(_invalid(field, "", f"can have at most {limit} characters"))
    if _size(obj, "message") > NOTE_LIMIT:
        causes.append(_invalid("message", "", f"can have at most {NOTE_LIMIT} characters"))
    return causes


def series_causes(obj: Obj) -> list[Cause]:
    """``validateV1EventSeries``."""
    series = obj.get("series")
    if not isinstance(series, dict):
        return []
    causes: list[Cause] = []
    count = series.get("count")
    if not isinstance(count, int) or count < 2:
        causes.append(_invalid("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        causes.append(_required("series.lastObservedTime"))
    return causes


def create_causes(group: str, obj: Obj) -> list[Cause]:
    """``ValidateEventCreate`` for a request through ``group`` ("" for core/v1), on the
    stored form as sent (before any defaulting)."""
    causes = legacy_causes(obj)
    if group != NEW_GROUP:
        return causes
    causes += series_causes(obj)
    if not obj.get("eventTime"):
        causes.append(_required("eventTime"))
    kind = obj.get("type")
    if kind not in ("Normal", "Warning"):
        causes.append(_invalid("type", "", f"has invalid value: {kind or ''}"))
    for field in ("firstTimestamp", "lastTimestamp", "count"):
        if obj.get(field):
            causes.append(_invalid(field, "", "needs to be unset"))
    source = obj.get("source") or {}
    if source.get("component") or source.get("host"):
        causes.append(_invalid("source", "", "needs to be unset"))
    return causes


def _shown(value: Any) -> str:
    """A value as ``field.Invalid`` shows it: strings quoted, numbers bare, the rest as JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def update_causes(group: str, new: Obj, old: Obj) -> list[Cause]:
    """``ValidateEventUpdate``: the legacy rules; through events.k8s.io/v1 also a changed
    series' rules and the immutable fields."""
    causes = legacy_causes(new)
    if group != NEW_GROUP:
        return causes
    if new.get("series") != old.get("series"):
        causes += series_causes(new)
    for field in _IMMUTABLE:
        before = old.get(field) or _EMPTY.get(field)
        after = new.get(field) or _EMPTY.get(field)
        if before != after:
            name = "reportingController" if field == "reportingComponent" else field
            causes.append(("FieldValueInvalid", name,
                           f"Invalid value: {_shown(after)}: field is immutable"))
    return causes
