"""Server-side apply and ``metadata.managedFields``, as apimachinery's managedfields package and
structured-merge-diff's Updater do them.

Why: ``kubectl apply --server-side`` relies on the server to merge the applied configuration,
to remember per manager which fields it set (Apply and Update entries with fieldsV1 sets), to
refuse (409) changing a field another manager owns unless forced, and to remove a field a
manager stopped applying when nobody else owns it. Pure functions over JSON objects; the
registry calls them with the live object, the new one and who writes.

    Manager         who writes: fieldManager (or the user agent's product), subresource
    apply           Apply: merge, prune, conflicts, the new managedFields
    track_update    Update (create, PUT, non-apply PATCH): ownership of what changed
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from k8sbridge.devkube import errors, fieldsets, kinds, openapi

Obj = dict[str, Any]
Path = fieldsets.Path
# (manager, operation, subresource, apiVersion of an Update entry)
Key = tuple[str, str, str, str]
# Fields the managers never own (apimachinery's stripMeta); status belongs to the subresource.
STRIPPED = {("f:apiVersion",), ("f:kind",)} | {
    ("f:metadata", f"f:{f}") for f in (
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
        "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")}


@dataclasses.dataclass(frozen=True)
class Manager:
    name: str
    subresource: str = ""
    api_version: str = ""
    time: str = ""

    @staticmethod
    def from_request(field_manager: str | None, user_agent: str, *, subresource: str = "",
                     api_version: str, moment: datetime.datetime) -> Manager:
        """fieldManager, else the user agent up to its first ``/`` (prefixFromUserAgent)."""
        name = field_manager or user_agent.split("/", 1)[0][:128]
        return Manager(name=name, subresource=subresource, api_version=api_version,
                       time=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _schema(kind: kinds.Kind) -> Obj | None:
    name = openapi.kind_schema_name(kind)
    return None if name is None else {"$ref": "#/definitions/" + name}


# key -> (owned paths, time, apiVersion)
Entries = dict[Key, tuple[set[Path], str, str]]


def _key(entry: Any) -> Key | None:
    if not isinstance(entry, dict) or not entry.get("manager"):
        return None
    operation = str(entry.get("operation", "Update"))
    version = str(entry.get("apiVersion", ""))
    return (str(entry["manager"]), operation, str(entry.get("subresource", "")),
            version if operation == "Update" else "")


def _decode(obj: Obj) -> Entries:
    out: Entries = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        key = _key(entry)
        if key is not None:
            out[key] = (fieldsets.from_fields_v1(entry.get("fieldsV1")),
                        str(entry.get("time", "")), str(entry.get("apiVersion", "")))
    return out


def _encode(entries: Entries, kept: list[Obj] | None = None) -> list[Obj]:
    """The managedFields list of ``entries`` and of the ``kept`` entries (as they were)."""
    out = list(kept or ())
    for (manager, operation, sub, _), (paths, time, version) in entries.items():
        if not paths:
            continue
        entry: Obj = {"manager": manager, "operation": operation,
                      "apiVersion": version, "time": time,
                      "fieldsType": "FieldsV1", "fieldsV1": fieldsets.to_fields_v1(paths)}
        if sub:
            entry["subresource"] = sub
        out.append(entry)
    out.sort(key=lambda e: (e["operation"], e["time"], e["manager"], e["apiVersion"],
                            e.get("subresource", "")))
    return out


def _owned(flat: dict[Path, Any], subresource: str) -> dict[Path, Any]:
    """The paths a write can own: no stripped metadata; status only through /status."""
    out = {}
    for path, value in flat.items():
        if path[:1] in {("f:apiVersion",), ("f:kind",)} or path[:2] in STRIPPED:
            continue
        if (path[:1] == ("f:status",)) != (subresource == "status") \
                and path[:1] != ("f:metadata",):
            continue
        out[path] = value
    return out


def _flat(obj: Obj | None, schema: Obj, subresource: str,
          maps: bool = False) -> dict[Path, Any]:
    return _owned(fieldsets.flatten(obj or {}, schema, maps=maps), subresource)


def track_update(*, kind: kinds.Kind, old: Obj | None, new: Obj, manager: Manager) -> None:
    """Record an Update by ``manager`` in ``new``'s managedFields (in place): it owns what it
    added or changed, taken from the others; removed fields leave every set. Entries the
    update does not touch are kept as they were (decoding and encoding every entry of every
    write was most of the cost)."""
    schema = _schema(kind)
    if schema is None:
        return
    meta = new.setdefault("metadata", {})
    given = meta.get("managedFields")
    previous = (old or {}).get("metadata", {}).get("managedFields")
    client_set = bool(given) and given != previous  # a client that sets them replaces them
    source = new if client_set else (old or {})
    before, after = fieldsets.flatten_pair(old or {}, new, schema, maps=True)
    changed, removed = fieldsets.compare(_owned(before, manager.subresource),
                                         _owned(after, manager.subresource))
    touched = changed | removed
    key = (manager.name, "Update", manager.subresource, manager.api_version)
    kept: list[Obj] = []
    entries: Entries = {}
    for entry in (source.get("metadata") or {}).get("managedFields") or []:
        entry_key = _key(entry)
        if entry_key is None:
            continue
        tree = entry.get("fieldsV1")
        if not client_set and entry_key != key \
                and not any(fieldsets.holds(tree, p) for p in touched):
            kept.append(entry)
        else:
            entries[entry_key] = (fieldsets.from_fields_v1(tree), str(entry.get("time", "")),
                                  str(entry.get("apiVersion", "")))
    for other, (paths, time, version) in entries.items():
        if other != key:
            entries[other] = (paths - touched, time, version)
    mine, time, _ = entries.get(key, (set(), manager.time, ""))
    updated = (mine | changed) - removed
    entries[key] = (updated, manager.time if updated != mine else time, manager.api_version)
    encoded = _encode(entries, kept)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def apply(*, kind: kinds.Kind, live: Obj, config: Obj, manager: Manager, force: bool) -> Obj:
    """The object after ``manager`` applies ``config`` to ``live`` (both JSON objects), with
    its managedFields; a 409 Conflict (kube's message and causes) when the config changes
    fields other managers own and ``force`` is off."""
    schema = _schema(kind)
    if schema is None:
        raise errors.bad_request(f"no schema for {kind.kind} in {kind.api_version}: cannot "
                                 f"apply")
    if config.get("apiVersion") != kind.api_version:
        raise errors.bad_request(
            f"Incorrect version specified in apply patch. Specified patch version: "
            f"{config.get('apiVersion', '')}, expected: {kind.api_version}")
    if (config.get("metadata") or {}).get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    entries = _decode(live)
    key = (manager.name, "Apply", manager.subresource, "")
    last = entries.get(key, (set(), "", ""))[0]
    applied = set(_flat(config, schema, manager.subresource))
    merged = fieldsets.merge(live, config, schema)
    assert isinstance(merged, dict)
    others: set[Path] = set()
    for other, (paths, _, _) in entries.items():
        if other != key:
            others |= paths
    for path in sorted(last - applied - others, key=len):
        fieldsets.remove(merged, path)
        fieldsets.drop_empty_parents(merged, path)
    changed, removed = fieldsets.compare(_flat(live, schema, manager.subresource),
                                         _flat(merged, schema, manager.subresource))
    conflicts: dict[Key, set[Path]] = {}
    for other, (paths, time, version) in entries.items():
        if other == key:
            continue
        clash = paths & changed
        if clash:
            conflicts[other] = clash
        entries[other] = (paths - clash - removed, time, version)
    if conflicts and not force:
        raise _conflict(conflicts)
    # the time moves only when the object changes (managedFieldsUpdater): a repeated apply
    # stays a no-op
    unchanged = not changed and not removed and key in entries
    entries[key] = (applied, entries[key][1] if unchanged else manager.time, kind.api_version)
    meta = merged.setdefault("metadata", {})
    meta["managedFields"] = _encode(entries)
    return merged


def _describe(key: Key) -> str:
    """printManager: ``"m"``, ``"m" with subresource "status"``, ``"m" using apps/v1``."""
    manager, operation, sub, version = key
    text = json.dumps(manager)
    if sub:
        text += f" with subresource {json.dumps(sub)}"
    if operation == "Update":
        text += f" using {version}"
    return text


def check_options(*, apply: bool, field_manager: str | None, force: str | None) -> None:
    """ValidatePatchOptions: apply needs a fieldManager; force is for apply only."""
    if apply and not field_manager:
        raise errors.invalid(kind="PatchOptions", group="meta.k8s.io", name="", causes=[
            ("FieldValueRequired", "fieldManager", "Required value: is required for apply "
             "patch")])
    if not apply and force is not None:
        raise errors.invalid(kind="PatchOptions", group="meta.k8s.io", name="", causes=[
            ("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply "
             "patch")])
    if field_manager is not None and len(field_manager) > 128:
        raise errors.invalid(kind="PatchOptions", group="meta.k8s.io", name="", causes=[
            ("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")])


def _conflict(conflicts: dict[Key, set[Path]]) -> errors.ApiError:
    flat = [(key, path) for key in sorted(conflicts, key=_describe)
            for path in sorted(conflicts[key])]
    causes = [{"type": "FieldManagerConflict", "message": f"conflict with {_describe(key)}",
               "field": fieldsets.path_string(path)} for key, path in flat]
    if len(flat) == 1:
        key, path = flat[0]
        message = (f"Apply failed with 1 conflict: conflict with {_describe(key)}: "
                   f"{fieldsets.path_string(path)}")
    else:
        lines = []
        for key in sorted(conflicts, key=_describe):
            lines.append(f"conflicts with {_describe(key)}:")
            lines += [f"- {fieldsets.path_string(p)}" for p in sorted(conflicts[key])]
        message = f"Apply failed with {len(flat)} conflicts: " + "\n".join(lines)
    return errors.ApiError(code=409, reason="Conflict", message=message,
                           details={"causes": causes})
