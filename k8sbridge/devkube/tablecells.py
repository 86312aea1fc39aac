"""The cells shared by the ``Table`` printers (``tables``, ``tables_apps``): names, ages as
Go's ``duration.HumanDuration`` prints them, selectors as kubectl shows them.

Why apart: the printers are split by group to keep each module small; these helpers are what
they all use.
"""

from __future__ import annotations

import datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority, format
Row = list[Any]


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration`` (the AGE column)."""
    s = int(seconds)
    if s < 0:
        s = 0
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d"
    return f"{hours // (24 * 365)}y"


def since(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def age(obj: Obj) -> str:
    return since((obj.get("metadata") or {}).get("creationTimestamp"))


def name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def none(value: Any) -> Any:
    return "<none>" if value in (None, "", []) else value


def selector(raw: Obj | None) -> str:
    if not raw:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((raw.get("matchLabels") or {}).items())]
    for expr in raw.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr.get('key')} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr.get('key')} notin ({values})")
        elif op == "Exists":
            parts.append(str(expr.get("key")))
        else:
            parts.append(f"!{expr.get('key')}")
    return ",".join(parts) or "<none>"


def template_containers(obj: Obj) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images
