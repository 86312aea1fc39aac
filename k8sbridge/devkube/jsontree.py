"""Bounding and normalising decoded JSON/YAML trees without recursion.

Why: a body nested thousands of levels deep, or a small YAML document whose aliases expand into
millions of nodes, must be refused with a 400 rather than crash the server (RecursionError) or
exhaust it; and a YAML document must become what kube-apiserver's YAML-to-JSON conversion makes
of it (string keys, no dates, sets or bytes, no NaN). The walks here are iterative, so no input
can reach Python's recursion limit through them, and everything downstream may recurse safely.
"""

from __future__ import annotations

import base64
import datetime
import math
from typing import Any

MAX_DEPTH = 100  # far deeper than any object of the kinds devkube serves
MAX_NODES = 3 * 1024 * 1024  # a 3 MiB JSON body cannot hold more (aliases can)


class TreeError(ValueError):
    """The tree is too deep, too big, or holds a value JSON cannot carry."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests containers more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def depth_exceeds_besides(value: Any, old: Any, limit: int = MAX_DEPTH) -> bool:
    """``depth_exceeds(value)`` where ``old`` is a value already known not to exceed it (a
    stored object): the subtrees ``value`` shares with ``old`` at the same place (``is``)
    are not walked again."""
    stack: list[tuple[Any, Any, int]] = [(value, old, 1)]
    while stack:
        item, before, depth = stack.pop()
        if item is before:  # both containers (scalars are not stacked)
            continue
        if isinstance(item, dict):
            if depth > limit:
                return True
            olds = before if isinstance(before, dict) else {}
            stack.extend((child, olds.get(key), depth + 1) for key, child in item.items()
                         if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            if depth > limit:
                return True
            olds_list = before if isinstance(before, list) else []
            stack.extend((child, olds_list[i] if i < len(olds_list) else None, depth + 1)
                         for i, child in enumerate(item) if isinstance(child, (dict, list)))
    return False


def _key(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml turns it into a JSON object key."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return _scalar(key) if isinstance(key, float) else str(key)
    raise TreeError(f"unsupported map key of type {type(key).__name__}")


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TreeError(f"json: unsupported value: {value}")
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TreeError(f"unsupported value of type {type(value).__name__}")


def plain(value: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """A fresh JSON-compatible copy of ``value`` (aliases expanded), or TreeError."""
    root: list[Any] = [None]
    # (source, depth, container to fill, key or index in it)
    stack: list[tuple[Any, int, Any, Any]] = [(value, 1, root, 0)]
    nodes = 0
    while stack:
        item, depth, parent, slot = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise TreeError(f"the document expands to more than {max_nodes} values")
        if isinstance(item, dict):
            if depth > max_depth:
                raise TreeError(f"exceeded max depth of {max_depth}")
            keyed = [(_key(k), v) for k, v in item.items()]
            out: dict[str, Any] = dict.fromkeys(k for k, _ in keyed)  # keeps the key order
            parent[slot] = out
            stack.extend((v, depth + 1, out, k) for k, v in keyed)
        elif isinstance(item, (list, tuple)):
            if depth > max_depth:
                raise TreeError(f"exceeded max depth of {max_depth}")
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            stack.extend((v, depth + 1, items, i) for i, v in enumerate(item))
        elif isinstance(item, (set, frozenset)):
            raise TreeError("unsupported value of type set")
        else:
            parent[slot] = _scalar(item)
    return root[0]
