"""OpenAPI v2 and v3 schemas of the kinds devkube serves, built from the generated field tables.

Why: ``kubectl explain`` (also ``--recursive``), kubectl's client-side validation and strategic
merge patches, and server-side apply need the kinds' schemas with kube-apiserver's definition
names, descriptions and list/patch extensions. Writing them by hand would be a second copy of
the types; instead they come from protoschema (field names, types, repeated/maps, descriptions
and markers, all generated from kubernetes/api's generated.proto), the same tables the protobuf
decoder and shape checks use. Pure functions: the HTTP layer (discovery, server) serves them.
"""

from __future__ import annotations

import functools
from typing import Any

from k8sbridge.devkube import kinds, protoschema

Obj = dict[str, Any]

SCALARS: dict[str, Obj] = {
    "string": {"type": "string"},
    "bytes": {"type": "string", "format": "byte"},
    "bool": {"type": "boolean"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "uint32": {"type": "integer", "format": "int32"},
    "uint64": {"type": "integer", "format": "int64"},
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "double"},
}
# The types apimachinery serializes as JSON scalars or free objects: their OpenAPI forms.
SPECIAL_V2: dict[str, Obj] = {
    "meta.Time": {"type": "string", "format": "date-time"},
    "meta.MicroTime": {"type": "string", "format": "date-time"},
    "meta.Duration": {"type": "string"},
    "api.resource.Quantity": {"type": "string"},
    "util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "runtime.RawExtension": {"type": "object"},
    "meta.FieldsV1": {"type": "object"},
}
SPECIAL_V3: dict[str, Obj] = {
    **SPECIAL_V2,
    "api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    "util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
}
SPECIAL_DOCS = {
    "meta.Time": "Time is a wrapper around time.Time which supports correct marshaling to "
                 "YAML and JSON.",
    "meta.MicroTime": "MicroTime is version of Time with microsecond level precision.",
    "api.resource.Quantity": "Quantity is a fixed-point representation of a number.",
    "util.intstr.IntOrString": "IntOrString is a type that can hold an int32 or a string.",
    "runtime.RawExtension": "RawExtension is used to hold extensions in external versions.",
    "meta.FieldsV1": "FieldsV1 stores a set of fields in a data structure like a Trie, in "
                     "JSON format.",
    "meta.Duration": "Duration is a wrapper around time.Duration.",
}
TYPE_META = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an "
                  "object. Servers should convert recognized schemas to the latest internal "
                  "value, and may reject unrecognized values. More info: "
                  "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                  "api-conventions.md#resources",
    "kind": "Kind is a string value representing the REST resource this object represents. "
            "Servers may infer this from the client submitting requests. Cannot be updated. "
            "In CamelCase. More info: https://git.k8s.io/community/contributors/devel/"
            "sig-architecture/api-conventions.md#types-kinds",
}
GVK = "x-kubernetes-group-version-kind"


def definition_name(message: str) -> str:
    """kube-openapi's definition name of a protoschema message (``core.v1.Pod`` ->
    ``io.k8s.api.core.v1.Pod``, ``meta.ObjectMeta`` -> ``io.k8s.apimachinery.pkg.apis.meta.
    v1.ObjectMeta``)."""
    if message.startswith("meta."):
        return "io.k8s.apimachinery.pkg.apis.meta.v1." + message.removeprefix("meta.")
    if message.split(".")[0] in ("api", "util", "runtime"):
        return "io.k8s.apimachinery.pkg." + message
    return "io.k8s.api." + message


def message_of(kind: kinds.Kind) -> str | None:
    """The protoschema message of a served kind, None for kinds without one (metrics)."""
    return _message(kind.group, kind.version, kind.kind)


GVK_ = tuple[str, str, str]  # group, version, kind


def _message(group: str, version: str, kind: str) -> str | None:
    name = f"{group.split('.')[0] if group else 'core'}.{version}.{kind}"
    return name if name in protoschema.MESSAGES else None


def _served(extra: tuple[GVK_, ...]) -> dict[str, list[GVK_]]:
    out: dict[str, list[GVK_]] = {}
    served = [(k.group, k.version, k.kind) for table in kinds.BY_GROUP_VERSION.values()
              for k in table.values()]
    for gvk in [*served, *extra]:
        message = _message(*gvk)
        if message is not None and gvk not in out.get(message, []):
            out.setdefault(message, []).append(gvk)
    return out


def _gvk(gvk: GVK_, suffix: str = "") -> Obj:
    return {"group": gvk[0], "kind": gvk[2] + suffix, "version": gvk[1]}


class _Builder:
    def __init__(self, *, v3: bool) -> None:
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"
        self.special = SPECIAL_V3 if v3 else SPECIAL_V2

    def ref(self, message: str, description: str = "") -> Obj:
        target = {"$ref": self.prefix + definition_name(message)}
        if not description:
            return target
        if self.v3:
            return {"allOf": [target], "description": description}
        return {**target, "description": description}

    def field(self, typ: str, label: str, description: str, extensions: Obj) -> Obj:
        value = dict(SCALARS[typ]) if typ in SCALARS else self.ref(typ)
        if label == "repeated":
            schema: Obj = {"type": "array", "items": value}
        elif label == "map":
            schema = {"type": "object", "additionalProperties": value}
        elif typ in SCALARS:
            schema = value
        else:
            schema = self.ref(typ, description)
            description = ""
        if description:
            schema["description"] = description
        return {**schema, **extensions}

    def properties(self, message: str) -> Obj:
        props: Obj = {}
        docs = protoschema.DOCS.get(message, ("", {}))[1]
        extensions = protoschema.EXTENSIONS.get(message, {})
        for number, (name, label, typ) in protoschema.MESSAGES[message].items():
            if label == "inline":
                props.update(self.properties(typ))
                continue
            props[name] = self.field(typ, label, docs.get(number, ""),
                                     dict(extensions.get(number, {})))
        return props

    def definition(self, message: str) -> Obj:
        if message in self.special:
            return {**self.special[message], "description": SPECIAL_DOCS[message]}
        schema: Obj = {"type": "object", "properties": self.properties(message)}
        if must := [name for name in schema["properties"]
                    if (message, name) in protoschema.REQUIRED]:
            schema["required"] = must
        if description := protoschema.DOCS.get(message, ("", {}))[0]:
            schema["description"] = description
        return schema

    def definitions(self, extra: tuple[GVK_, ...]) -> Obj:
        out: Obj = {}
        served = _served(extra)
        for message in protoschema.MESSAGES:
            out[definition_name(message)] = self.definition(message)
        for message in self.special:
            out[definition_name(message)] = self.definition(message)
        for message, served_as in served.items():
            schema = out[definition_name(message)]
            type_meta = {k: {"type": "string", "description": v} for k, v in TYPE_META.items()}
            schema["properties"] = {**type_meta, **schema["properties"]}
            schema[GVK] = [_gvk(gvk) for gvk in served_as]
            out[definition_name(message) + "List"] = {
                "type": "object",
                "description": f"{message.rsplit('.', 1)[1]}List is a list of "
                               f"{message.rsplit('.', 1)[1]} objects.",
                "required": ["items"],
                "properties": {
                    **type_meta,
                    "items": {"type": "array", "items": self.ref(message),
                              "description": "List of objects."},
                    "metadata": self.ref("meta.ListMeta", "Standard list metadata."),
                },
                GVK: [_gvk(gvk, "List") for gvk in served_as],
            }
        return out


@functools.cache
def v2_definitions(extra: tuple[GVK_, ...] = ()) -> Obj:
    """Every definition, in OpenAPI v2 (swagger) form, by kube-openapi's names; ``extra``:
    kinds served outside the kinds table (the create-only reviews)."""
    return _Builder(v3=False).definitions(extra)


@functools.cache
def v3_schemas(extra: tuple[GVK_, ...] = ()) -> Obj:
    return _Builder(v3=True).definitions(extra)


def v3_components(roots: list[str], extra: tuple[GVK_, ...] = ()) -> Obj:
    """The v3 schemas the given definitions reach (what one group-version document holds)."""
    schemas = v3_schemas(extra)
    out: Obj = {}
    todo = [name for name in roots if name in schemas]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = schemas[name]
        todo.extend(ref.rsplit("/", 1)[1] for ref in _refs(schemas[name]))
    return dict(sorted(out.items()))


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        for item in value.values():
            found.extend(_refs(item))
        return found
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    return []


def kind_schema_name(kind: kinds.Kind) -> str | None:
    message = message_of(kind)
    return None if message is None else definition_name(message)


def gvk_schema_name(group: str, version: str, kind: str) -> str | None:
    message = _message(group, version, kind)
    return None if message is None else definition_name(message)
