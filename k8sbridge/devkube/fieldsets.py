"""Field paths and field sets of objects, as structured-merge-diff defines them for managedFields.

Why: server-side apply tracks which manager owns which field. A path is a tuple of fieldsV1
elements (``f:name`` a field or map key, ``k:{"name":"c"}`` an associative-list item by its
keys, ``v:"x"`` a set-list item, ``i:3`` an item of a list without keys); the list kind of each
field comes from the OpenAPI extensions (``x-kubernetes-list-type``/``-list-map-keys``, or an
older ``patch-strategy: merge`` with a merge key) of openapi's v2 definitions, so containers
are owned by name and ports by containerPort+protocol, as on a cluster. Pure functions.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from k8sbridge.devkube import openapi

Obj = dict[str, Any]
Path = tuple[str, ...]
MEMBER = object()  # the flattened value of a list item or map entry (not a leaf)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def resolve(schema: Obj | None) -> Obj:
    """The definition a field's schema refers to ({} for an unknown field)."""
    defs = openapi.v2_definitions()
    while schema:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in schema:
            schema = schema["allOf"][0]
        else:
            return schema
    return {}


def _list_keys(field: Obj) -> tuple[str, list[str]]:
    """("map", keys) | ("set", []) | ("atomic", []) for a list field's schema."""
    kind = field.get("x-kubernetes-list-type")
    if kind == "map":
        return "map", list(field.get("x-kubernetes-list-map-keys") or [])
    if kind in ("set", "atomic"):
        return str(kind), []
    if "merge" in str(field.get("x-kubernetes-patch-strategy", "")).split(","):
        key = field.get("x-kubernetes-patch-merge-key")
        return ("map", [str(key)]) if key else ("set", [])
    return "atomic", []


# Defaults of list-map key fields that configurations usually leave out (kube's schemas default
# every ``protocol`` key to TCP), so an applied port matches the defaulted live one.
KEY_DEFAULTS = {"protocol": "TCP"}


@functools.lru_cache(maxsize=4096)
def _key_element(typed: tuple[tuple[str, type, Any], ...]) -> str:
    """``k:`` and the keys' JSON (names and values with their types, so 1 and True differ)."""
    return "k:" + _dump({k: v for k, _, v in typed})


def item_element(item: Any, kind: str, keys: list[str], index: int) -> str:
    if kind == "map" and isinstance(item, dict):
        values = {k: item.get(k, KEY_DEFAULTS.get(k)) for k in keys
                  if k in item or k in KEY_DEFAULTS}
        if all(type(v) in (str, int) for v in values.values()):  # the usual keys: cached
            return _key_element(tuple((k, type(v), v) for k, v in values.items()))
        return "k:" + _dump(values)
    if kind == "set":
        return "v:" + _dump(item)
    return f"i:{index}"


def flatten(value: Any, schema: Obj | None, path: Path = (),
            out: dict[Path, Any] | None = None, *, maps: bool = False) -> dict[Path, Any]:
    """Every leaf (scalar, atomic value, empty object) and every list item or map entry
    (as MEMBER) of a value, by path: the set ToFieldSet gives, with the leaves' values.
    ``maps``: the maps themselves (labels, data) are members too, as a comparison of an
    Update sees a map appear."""
    out = {} if out is None else out
    node = resolve(schema)
    props = node.get("properties")
    extra = node.get("additionalProperties")
    atomic_map = node.get("x-kubernetes-map-type") == "atomic"
    if isinstance(value, dict) and value and (props is not None or isinstance(extra, dict)) \
            and not atomic_map:
        if maps and props is None and path:
            out[path] = MEMBER
        for key, child in value.items():
            sub = path + (f"f:{key}",)
            field = props.get(key) if props is not None else extra
            if props is None or field is None:
                out[sub] = MEMBER
            flatten(child, field if isinstance(field, dict) else None, sub, out, maps=maps)
        return out
    if isinstance(value, list) and node.get("type") == "array":
        kind, keys = _list_keys(node)
        if kind != "atomic":
            item_schema = node.get("items")
            for index, item in enumerate(value):
                sub = path + (item_element(item, kind, keys, index),)
                if kind == "set":
                    out[sub] = _dump(item)
                    continue
                out[sub] = MEMBER
                if isinstance(item, dict):
                    for key, child in item.items():
                        item_node = resolve(item_schema)
                        field = (item_node.get("properties") or {}).get(key)
                        flatten(child, field, sub + (f"f:{key}",), out, maps=maps)
            return out
    # scalars compared with their type (so 1 and true differ), other leaves as JSON text
    leaf = (type(value), value) if value is None or isinstance(value, (str, int, float)) \
        else _dump(value)
    if path and path not in out:
        out[path] = leaf
    elif path:
        out[path] = (MEMBER, leaf)
    return out


def _object_node(value: Any, node: Obj) -> bool:
    """Whether ``flatten`` walks ``value`` field by field at this schema node."""
    return isinstance(value, dict) and bool(value) \
        and (node.get("properties") is not None
             or isinstance(node.get("additionalProperties"), dict)) \
        and node.get("x-kubernetes-map-type") != "atomic"


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: Python's ``==`` has ``True == 1 == 1.0``, so types are compared
    too (dicts as maps: a key order never matters to a field set). A value shared by both
    objects (``patch.merge_patch_shared``) is the same without a look."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return len(a) == len(b) and all(k in b and _same(v, b[k]) for k, v in a.items())
    if kind is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def flatten_pair(old: Any, new: Any, schema: Obj | None, path: Path = (),
                 outs: tuple[dict[Path, Any], dict[Path, Any]] | None = None, *,
                 maps: bool = False) -> tuple[dict[Path, Any], dict[Path, Any]]:
    """``flatten`` of two values, leaving out the fields equal in both (an update's metadata
    and spec are mostly unchanged): ``compare`` of the pair gives what ``compare`` of the full
    flattenings gives, since a field's entries all lie under its own path."""
    old_out, new_out = ({}, {}) if outs is None else outs
    node = resolve(schema)
    if isinstance(old, list) and isinstance(new, list) and node.get("type") == "array":
        if _pair_items(old, new, node, path, old_out, new_out, maps):
            return old_out, new_out
    if not (_object_node(old, node) and _object_node(new, node)):
        flatten(old, schema, path, old_out, maps=maps)
        flatten(new, schema, path, new_out, maps=maps)
        return old_out, new_out
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if maps and props is None and path:
        old_out[path] = new_out[path] = MEMBER
    for key in old.keys() | new.keys():
        in_old, in_new = key in old, key in new
        if in_old and in_new and _same(old[key], new[key]):
            continue
        sub = path + (f"f:{key}",)
        field = props.get(key) if props is not None else extra
        child = field if isinstance(field, dict) else None
        if props is None or field is None:
            if in_old:
                old_out[sub] = MEMBER
            if in_new:
                new_out[sub] = MEMBER
        if in_old and in_new:
            flatten_pair(old[key], new[key], child, sub, (old_out, new_out), maps=maps)
        elif in_old:
            flatten(old[key], child, sub, old_out, maps=maps)
        else:
            flatten(new[key], child, sub, new_out, maps=maps)
    return old_out, new_out


def _keyed(items: list[Any], keys: list[str]) -> dict[str, Any] | None:
    """An associative list's items by element, or None when one is not an object or two
    share an element (``flatten`` then decides what the paths hold)."""
    out = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        element = item_element(item, "map", keys, 0)
        if element in out:
            return None
        out[element] = item
    return out


def _pair_items(old: list[Any], new: list[Any], node: Obj, path: Path,
                old_out: dict[Path, Any], new_out: dict[Path, Any], maps: bool) -> bool:
    """``flatten_pair`` of two associative lists item by item (conditions, container
    statuses: a status write changes one or two items of each): the fields equal in an
    item of both are left out. False (nothing done) for other lists."""
    kind, keys = _list_keys(node)
    if kind != "map":
        return False
    olds, news = _keyed(old, keys), _keyed(new, keys)
    if olds is None or news is None:
        return False
    item_props = resolve(node.get("items")).get("properties") or {}
    for element in olds.keys() | news.keys():
        old_item, new_item = olds.get(element), news.get(element)
        if old_item is not None and new_item is not None and _same(old_item, new_item):
            continue
        sub = path + (element,)
        if old_item is not None:
            old_out[sub] = MEMBER
        if new_item is not None:
            new_out[sub] = MEMBER
        for key in (old_item or {}).keys() | (new_item or {}).keys():
            in_old = old_item is not None and key in old_item
            in_new = new_item is not None and key in new_item
            field = item_props.get(key)
            child = sub + (f"f:{key}",)
            if in_old and in_new:
                assert old_item is not None and new_item is not None
                if not _same(old_item[key], new_item[key]):
                    flatten_pair(old_item[key], new_item[key], field, child,
                                 (old_out, new_out), maps=maps)
            elif in_old:
                assert old_item is not None
                flatten(old_item[key], field, child, old_out, maps=maps)
            elif in_new:
                assert new_item is not None
                flatten(new_item[key], field, child, new_out, maps=maps)
    return True


def compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two flattened values."""
    changed = {p for p, v in new.items() if p not in old or old[p] != v}
    return changed, set(old) - set(new)


def merge(live: Any, config: Any, schema: Obj | None) -> Any:
    """The applied configuration merged into the live value: objects field by field (a null
    removes the field), associative and set lists item by item, everything else replaced."""
    node = resolve(schema)
    if isinstance(config, dict) and isinstance(live, dict) \
            and node.get("x-kubernetes-map-type") != "atomic" \
            and (node.get("properties") is not None
                 or isinstance(node.get("additionalProperties"), dict)):
        props = node.get("properties")
        out = dict(live)
        for key, value in config.items():
            field = props.get(key) if props is not None else node["additionalProperties"]
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(live.get(key), value, field)
        return out
    if isinstance(config, list) and isinstance(live, list) and node.get("type") == "array":
        kind, keys = _list_keys(node)
        if kind == "set":
            return live + [item for item in config if item not in live]
        if kind == "map":
            applied = {item_element(item, kind, keys, 0): item for item in config}
            out_list = []
            for item in live:
                element = item_element(item, kind, keys, 0)
                if element in applied:
                    out_list.append(merge(item, applied.pop(element), node.get("items")))
                else:
                    out_list.append(item)
            return out_list + list(applied.values())
    return config


def remove(value: Any, path: Path) -> None:
    """Delete one path (a field, map entry or list item) from a value, in place."""
    *parents, last = path
    for element in parents:
        value = _child(value, element)
        if value is None:
            return
    if isinstance(value, dict) and last.startswith("f:"):
        value.pop(last[2:], None)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if _matches(item, last, index):
                del value[index]
                return


def drop_empty_parents(value: Any, path: Path) -> None:
    """After a prune: remove the objects and lists the removal left empty, innermost first,
    up to (not including) the top-level fields."""
    for depth in range(len(path) - 1, 1, -1):
        parent = path[:depth]
        node = value
        for element in parent:
            node = _child(node, element)
        if node in ({}, []):
            remove(value, parent)
        else:
            return


def _matches(item: Any, element: str, index: int) -> bool:
    if element.startswith("k:"):
        keys = json.loads(element[2:])
        return isinstance(item, dict) and all(item.get(k, KEY_DEFAULTS.get(k)) == v
                                              for k, v in keys.items())
    if element.startswith("v:"):
        return bool(_dump(item) == element[2:])
    return element == f"i:{index}"


def _child(value: Any, element: str) -> Any:
    if isinstance(value, dict) and element.startswith("f:"):
        return value.get(element[2:])
    if isinstance(value, list):
        for index, item in enumerate(value):
            if _matches(item, element, index):
                return item
    return None


def to_fields_v1(paths: set[Path]) -> Obj:
    """The fieldsV1 tree of a set: ``{}`` for a leaf, ``".": {}`` for a member with children.
    The pods of a workload have the same sets: each tree is built once and shared, never to
    be mutated (as the entries a write keeps are shared between an object's versions)."""
    return _fields_v1(frozenset(paths))


@functools.lru_cache(maxsize=1024)
def _fields_v1(paths: frozenset[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _finish(tree)


def _finish(tree: Obj) -> Obj:
    out: Obj = {}
    for key, child in sorted(tree.items()):
        if key == ".":
            continue
        if set(child) == {"."}:
            out[key] = {}
        else:
            inner = _finish(child)
            out[key] = {".": {}, **inner} if "." in child else inner
    return out


def holds(tree: Any, path: Path) -> bool:
    """Whether a fieldsV1 tree's set has ``path`` (as ``path in from_fields_v1(tree)``)."""
    node = tree
    for element in path:
        if not isinstance(node, dict) or element not in node:
            return False
        node = node[element]
    return isinstance(node, dict) and (not node or "." in node) and bool(path)


def from_fields_v1(tree: Any, path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    if not tree and path:
        out.add(path)
    for key, child in tree.items():
        if key == ".":
            out.add(path)
        else:
            out |= from_fields_v1(child, path + (key,))
    return out


def path_string(path: Path) -> str:
    """fieldpath.Path's String(): ``.spec.containers[name="c"].image``."""
    parts = []
    for element in path:
        kind, text = element[:2], element[2:]
        if kind == "f:":
            parts.append("." + text)
        elif kind == "k:":
            keys = json.loads(text)
            parts.append("[" + ",".join(f"{k}={_dump(v)}" for k, v in sorted(keys.items()))
                         + "]")
        elif kind == "v:":
            parts.append(f"[={text}]")
        else:
            parts.append(f"[{text}]")
    return "".join(parts)
