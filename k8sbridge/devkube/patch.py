"""The three PATCH flavours of the Kubernetes API as pure functions over JSON values.

Why: kubectl apply sends strategic merge patches, kopf sends JSON patches with a ``test`` of the
resourceVersion (a failed test must be a 422 so kopf retries), ``kubectl label``/``annotate`` and
many operators send merge patches. Pure functions are easy to test against the reference rules.

    PatchError            the patch cannot be applied (→ 422 or 400 at the server)
      PatchTestFailed     a JSON-patch ``test`` operation did not hold (→ 422)
"""

from __future__ import annotations

from typing import Any


class PatchError(Exception):
    """The patch is malformed or cannot be applied to this object."""


class PatchTestFailed(PatchError):
    """A JSON-patch ``test`` operation failed."""


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts and lists are copied; everything else is immutable).

    Several times faster than ``copy.deepcopy``, which the API server paid on every write.
    """
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


# --- RFC 6902 JSON patch -------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, insert: bool) -> int:
    if token == "-" and insert:
        return len(container)
    try:
        idx = int(token)
    except ValueError as e:
        raise PatchError(f"invalid array index {token!r}") from e
    limit = len(container) if insert else len(container) - 1
    if idx < 0 or idx > limit:
        raise PatchError(f"array index {idx} out of range")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"path component {token!r} not found")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, insert=False)]
        else:
            raise PatchError(f"cannot traverse into a scalar at {token!r}")
    return current


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {'/' + '/'.join(tokens)!r} not found")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, insert=False)]
    raise PatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, insert=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {'/' + '/'.join(tokens)!r} not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, insert=False))
    raise PatchError("cannot remove from a scalar")


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy_json(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}")
        kind = op["op"]
        tokens = _pointer(str(op["path"]))
        if kind == "add":
            doc = _add(doc, tokens, copy_json(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)
            if tokens:
                parent = _parent(doc, tokens)
                if isinstance(parent, dict):
                    parent[tokens[-1]] = copy_json(op.get("value"))
                else:
                    idx = _index(parent, tokens[-1], insert=False)
                    parent[idx] = copy_json(op.get("value"))
            else:
                doc = copy_json(op.get("value"))
        elif kind in ("move", "copy"):
            source = _pointer(str(op.get("from", "")))
            if kind == "move":
                doc, value = _remove(doc, source)
            else:
                value = copy_json(_get(doc, source))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            try:
                actual = _get(doc, tokens)
            except PatchError as e:
                raise PatchTestFailed(f"testing value {op['path']} failed: {e}") from e
            if actual != op.get("value"):
                raise PatchTestFailed(f"testing value {op['path']} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


# --- RFC 7386 merge patch ------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    """The merge patch's result as a private copy (``merge_patch_shared``, then copied)."""
    return copy_json(merge_patch_shared(doc, patch))


def merge_patch_shared(doc: Any, patch: Any) -> Any:
    """``merge_patch``'s result, copying only the objects the patch changes: every value the
    patch leaves alone is shared with ``doc`` (a stored object, never mutated), so the
    caller must not mutate the result below the patched objects. Comparisons and checks
    of the result can skip what is still ``doc``'s (``is``)."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    return _merge_shared(doc if isinstance(doc, dict) else {}, patch)


def _merge_shared(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = dict(doc)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = doc.get(key)
            result[key] = _merge_shared(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = copy_json(value)
    return result


# --- strategic merge patch -----------------------------------------------------------------

# The patchMergeKey of list fields (core/v1, apps/v1), by field name.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "schedulingGates": "name",
    "volumes": "name",
    "resourceClaims": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "readinessGates": "conditionType",
}
# Lists of primitives merged as sets.
SET_LISTS = frozenset({"finalizers"})


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # container ports merge on containerPort, Service ports on port.
        for item in items:
            if isinstance(item, dict) and "containerPort" in item:
                return "containerPort"
            if isinstance(item, dict) and "port" in item:
                return "port"
        return "containerPort"
    return MERGE_KEYS.get(field)


def strategic_merge(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _smp_map(copy_json(doc) if isinstance(doc, dict) else {}, patch)


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy_json(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    result = original
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/")):
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = copy_json(value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            existing = result.get(field)
            if isinstance(existing, list) and isinstance(value, list):
                result[field] = [v for v in existing if v not in value]
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            existing = result.get(field)
            if isinstance(existing, list) and isinstance(value, list):
                result[field] = _reorder(field, existing, value)
    if isinstance(retain, list):
        allowed = set(retain)
        result = {k: v for k, v in result.items() if k in allowed}
    return result


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, items)
    if key is None:
        position = {json_key(v): i for i, v in enumerate(order)}
        return sorted(items, key=lambda v: position.get(json_key(v), len(order)))
    position = {json_key(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(
        items,
        key=lambda v: position.get(json_key(v.get(key)) if isinstance(v, dict) else "", len(order)),
    )


def json_key(value: Any) -> str:
    return repr(value)


def _smp_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if field in SET_LISTS:
        result = list(original)
        for item in patch:
            if isinstance(item, dict):
                continue
            if item not in result:
                result.append(item)
        return result
    key = _merge_key(field, original + patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [copy_json(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return [copy_json(i) for i in patch]
    if any(i.get("$patch") == "replace" for i in patch):
        return [copy_json(i) for i in patch if "$patch" not in i]
    result = [copy_json(i) for i in original]
    for item in patch:
        if key not in item:
            raise PatchError(f"map in list {field!r} has no merge key {key!r}")
        match = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if match is not None:
                result.pop(match)
            continue
        body = {k: v for k, v in item.items() if k != "$patch"}
        if match is None:
            result.append(_smp_map({}, body))
        else:
            result[match] = _smp_map(result[match], body)
    return result
