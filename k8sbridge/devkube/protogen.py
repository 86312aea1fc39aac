"""Regenerates protoschema.py from checkouts of kubernetes/api and kubernetes/apimachinery.

Why: the protobuf field tables must match the Go types exactly; they are derived from the
``generated.proto`` files (field numbers, JSON names, types) and ``types.go`` (which zero values
are meaningful: pointers and fields without ``omitempty``), never written by hand.

    python -m k8sbridge.devkube.protogen --api ~/src/api --apimachinery ~/src/apimachinery \\
        > k8sbridge/devkube/protoschema.py
"""

from __future__ import annotations

import argparse
import pprint
import re
import subprocess
import sys
from pathlib import Path

API_GROUPS = ("core/v1", "apps/v1", "batch/v1", "coordination/v1", "events/v1",
              "autoscaling/v1", "authentication/v1", "scheduling/v1alpha3", "scheduling/v1",
              "discovery/v1",
              "rbac/v1", "authorization/v1", "policy/v1",
              "autoscaling/v2")
MACHINERY = ("pkg/apis/meta/v1", "pkg/api/resource", "pkg/util/intstr", "pkg/runtime",
             "pkg/runtime/schema")
ROOTS = (
    *(f"k8s.io.api.core.v1.{k}" for k in (
        "Pod", "Node", "Namespace", "Event", "ConfigMap", "Secret", "Service", "ServiceAccount",
        "Endpoints", "Binding", "ReplicationController")),
    "k8s.io.api.apps.v1.Deployment", "k8s.io.api.apps.v1.ReplicaSet",
    "k8s.io.api.apps.v1.StatefulSet", "k8s.io.api.apps.v1.DaemonSet",
    "k8s.io.api.apps.v1.ControllerRevision",
    "k8s.io.api.batch.v1.Job", "k8s.io.api.batch.v1.CronJob",
    "k8s.io.api.coordination.v1.Lease", "k8s.io.api.events.v1.Event",
    "k8s.io.api.discovery.v1.EndpointSlice",
    "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler",
    "k8s.io.api.policy.v1.PodDisruptionBudget", "k8s.io.api.policy.v1.Eviction",
    "k8s.io.api.scheduling.v1.PriorityClass",
    "k8s.io.api.autoscaling.v1.Scale", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    *(f"k8s.io.api.authentication.v1.{k}" for k in (
        "TokenRequest", "TokenReview", "SelfSubjectReview")),
    *(f"k8s.io.api.rbac.v1.{k}" for k in (
        "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
    *(f"k8s.io.api.authorization.v1.{k}" for k in (
        "SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
        "SelfSubjectRulesReview")),
    "k8s.io.apimachinery.pkg.runtime.Unknown",
    # for the OpenAPI documents (lists, error bodies)
    "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta", "k8s.io.apimachinery.pkg.apis.meta.v1.Status",
)
# Decoded specially by protobuf.py (not walked into).
SPECIAL = frozenset({
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time", "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
})
SCALARS = frozenset({"string", "bytes", "bool", "int32", "int64", "double", "float", "uint32",
                     "uint64"})
Field = tuple[int, str, str, str]  # number, name, label, type
# Go scalar types that upstream tags "bytes" nonetheless (e.g. ``*bool``): their zero matters
SCALAR_GO_TYPE = re.compile(r"^\*?(string|bool|u?int(8|16|32|64)?|float(32|64))$")


def _parse_protos(texts: list[str]) -> dict[str, tuple[str, list[Field]]]:
    messages: dict[str, tuple[str, list[Field]]] = {}
    for text in texts:
        match = re.search(r"^package ([\w.]+);", text, re.M)
        if match is None:
            continue
        package = match.group(1)
        text = re.sub(r"//.*", "", text)
        for m in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
            fields: list[Field] = []
            for f in re.finditer(
                r"^\s*(optional|repeated)?\s*(map<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)"
                r"\s*=\s*(\d+)", m.group(2), re.M,
            ):
                label, typ, _, map_value, name, number = f.groups()
                fields.append((int(number), name, label or "optional",
                               f"map:{map_value}" if map_value else typ))
            messages[f"{package}.{m.group(1)}"] = (package, fields)
    return messages


Docs = dict[str, tuple[str, dict[int, str]]]
Extensions = dict[str, dict[int, dict[str, object]]]
MARKERS = {"patchStrategy": "x-kubernetes-patch-strategy",
           "patchMergeKey": "x-kubernetes-patch-merge-key",
           "listType": "x-kubernetes-list-type", "listMapKey": "x-kubernetes-list-map-keys",
           "mapType": "x-kubernetes-map-type"}


def _describe(lines: list[str]) -> str:
    """A comment block as kube-openapi turns it into a description: lines of a paragraph
    joined by spaces, paragraphs by blank lines, ``+marker`` lines dropped, text after a
    ``---`` line dropped."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("---"):
            break
        if line.startswith("+"):
            continue
        if not line.strip():
            paragraphs.append([])
        else:
            paragraphs[-1].append(line.strip())
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _markers(lines: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for line in lines:
        m = re.match(r"^\+(\w+)=(\S+)", line)
        if m is None or m.group(1) not in MARKERS:
            continue
        name = MARKERS[m.group(1)]
        if name == "x-kubernetes-list-map-keys":
            keys = out.setdefault(name, [])
            assert isinstance(keys, list)
            keys.append(m.group(2))
        else:
            out[name] = m.group(2)
    return out


def docs(texts: list[str], names: set[str]) -> tuple[Docs, Extensions]:
    """Descriptions (message and field comments) and the list/patch markers of each field, by
    short message name and field number, for the messages of the tables."""
    described: Docs = {}
    extended: Extensions = {}
    for text in texts:
        match = re.search(r"^package ([\w.]+);", text, re.M)
        if match is None:
            continue
        package = match.group(1)
        comment: list[str] = []
        current = ""
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("//"):
                comment.append(line[2:].removeprefix(" "))
                continue
            m = re.match(r"^message (\w+) \{", line)
            f = re.match(r"^(?:optional |repeated )?(?:map<[^>]*>|[\w.]+)\s+\w+\s*=\s*(\d+)",
                         line)
            if m is not None:
                current = _short(f"{package}.{m.group(1)}")
                if current in names:
                    described[current] = (_describe(comment), {})
            elif f is not None and current in described:
                number = int(f.group(1))
                if text_ := _describe(comment):
                    described[current][1][number] = text_
                marks = _markers(comment)
                if "+optional" in comment:
                    marks["optional"] = True
                if "+required" in comment:
                    marks["required"] = True
                if marks:
                    extended.setdefault(current, {})[number] = marks
            elif line == "}":
                current = ""
            comment = []
    return described, extended


def required(types_go: dict[str, str], extended: Extensions,
             table: Table) -> list[tuple[str, str]]:
    """(message, JSON field) kube-openapi marks required: ``+required``, or a field whose JSON
    tag has no ``omitempty`` and which is not ``+optional``. Takes the markers out of
    ``extended`` (they are not OpenAPI extensions)."""
    plain: set[tuple[str, str]] = set()
    for package, text in types_go.items():
        for m in re.finditer(r"^type (\w+) struct \{(.*?)^\}", text, re.M | re.S):
            for tags in re.findall(r"`([^`]*)`", m.group(2)):
                json_tag = re.search(r'json:"([^"]*)"', tags)
                if json_tag:
                    name, *options = json_tag.group(1).split(",")
                    if name and "omitempty" not in options and "inline" not in options:
                        plain.add((f"{package}.{m.group(1)}", name))
    out: set[tuple[str, str]] = set()
    for message, fields in table.items():
        for number, (name, label, _) in fields.items():
            marks = extended.get(message, {}).get(number, {})
            optional = marks.pop("optional", False)
            forced = marks.pop("required", False)
            if marks == {} and number in extended.get(message, {}):
                del extended[message][number]
            if label != "inline" and (forced or ((message, name) in plain and not optional)):
                out.add((message, name))
    return sorted(out)


def _short(name: str) -> str:
    return (name.replace("k8s.io.apimachinery.pkg.apis.meta.v1.", "meta.")
            .replace("k8s.io.apimachinery.pkg.", "").replace("k8s.io.api.", ""))


def _resolve(messages: dict[str, tuple[str, list[Field]]], package: str, typ: str) -> str:
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        return typ[1:]
    if f"{package}.{typ}" in messages:
        return f"{package}.{typ}"
    raise KeyError(f"cannot resolve {typ} in {package}")


Table = dict[str, dict[int, tuple[str, str, str]]]


def json_names(types_go: dict[str, str]) -> dict[tuple[str, str], str]:
    """(message, proto field name) -> JSON name where they differ ("" for an inline field,
    whose members appear in the parent object): ``uID`` is ``uid`` in BoundObjectReference,
    ``volumeSource`` is inline in Volume."""
    out: dict[tuple[str, str], str] = {}
    for package, text in types_go.items():
        for m in re.finditer(r"^type (\w+) struct \{(.*?)^\}", text, re.M | re.S):
            for tags in re.findall(r"`([^`]*)`", m.group(2)):
                json_tag = re.search(r'json:"([^"]*)"', tags)
                proto_tag = re.search(r'protobuf:"[^"]*name=(\w+)', tags)
                if json_tag and proto_tag:
                    name = json_tag.group(1).split(",")[0]
                    if name != proto_tag.group(1):
                        out[(f"{package}.{m.group(1)}", proto_tag.group(1))] = name
    return out


def tables(messages: dict[str, tuple[str, list[Field]]],
           renames: dict[tuple[str, str], str] | None = None) -> Table:
    renames = renames or {}
    out: Table = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        package, fields = messages[name]
        entry: dict[int, tuple[str, str, str]] = {}
        for number, field, label, typ in fields:
            kind = "map" if typ.startswith("map:") else (
                "repeated" if label == "repeated" else "single")
            target = _resolve(messages, package, typ.removeprefix("map:"))
            json_name = renames.get((_short(name), field), field)
            if json_name == "":
                json_name, kind = field, "inline"
            entry[number] = (json_name, kind, target)
            if target not in SCALARS and target not in SPECIAL and target not in out:
                todo.append(target)
        out[name] = entry
    return {_short(k): {n: (f, lbl, _short(t)) for n, (f, lbl, t) in sorted(v.items())}
            for k, v in sorted(out.items())}


def keep_zero(types_go: dict[str, str]) -> list[tuple[str, str]]:
    """(message, field) whose zero value is meaningful: Go pointers and non-omitempty fields."""
    keep: set[tuple[str, str]] = set()
    for package, text in types_go.items():
        for m in re.finditer(r"^type (\w+) struct \{(.*?)^\}", text, re.M | re.S):
            for f in re.finditer(r"^\s*\w+\s+(\S+)\s+`([^`]*)`", m.group(2), re.M):
                typ, tags = f.groups()
                json_tag = re.search(r'json:"([^"]*)"', tags)
                proto_tag = re.search(r'protobuf:"(\w+),(\d+),', tags)
                if not json_tag or not proto_tag:
                    continue
                name, *options = json_tag.group(1).split(",")
                wire = proto_tag.group(1)
                if wire not in ("varint", "fixed64", "fixed32", "bytes"):
                    continue
                if wire == "bytes" and not SCALAR_GO_TYPE.match(typ):
                    continue
                if typ.startswith("*") or "omitempty" not in options:
                    keep.add((f"{package}.{m.group(1)}", name))
    return sorted(keep)


def _show(repo: Path, path: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"],
                            capture_output=True, text=True, check=True)
    return result.stdout


def _head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", type=Path, required=True, help="kubernetes/api git checkout")
    parser.add_argument("--apimachinery", type=Path, required=True,
                        help="kubernetes/apimachinery git checkout")
    args = parser.parse_args()
    protos = [_show(args.api, f"{g}/generated.proto") for g in API_GROUPS]
    protos += [_show(args.apimachinery, f"{p}/generated.proto") for p in MACHINERY]
    types_go = {g.replace("/", "."): _show(args.api, f"{g}/types.go") for g in API_GROUPS}
    types_go["meta"] = _show(args.apimachinery, "pkg/apis/meta/v1/types.go")
    messages = tables(_parse_protos(protos), json_names(types_go))
    keep = keep_zero(types_go)
    described, extended = docs(protos, set(messages))
    must = required(types_go, extended, messages)
    title = "Protobuf field tables of the Kubernetes types devkube accepts in binary form"
    sys.stdout.write(f'''"""{title} (generated data).

Why: client-go's typed clients (e.g. `kubectl create deployment|job|configmap|secret|token`)
send request bodies as `application/vnd.kubernetes.protobuf` and do not fall back to JSON. These
tables map field numbers to JSON names so k8sbridge.devkube.protobuf can decode such bodies.

Generated by k8sbridge.devkube.protogen from kubernetes/api @{_head(args.api)[:12]} and
kubernetes/apimachinery @{_head(args.apimachinery)[:12]}: message -> {{field number: (JSON name,
"single" | "repeated" | "map" | "inline", type)}}; a map's type is its value type; an inline
field's members belong to the enclosing object; type is a scalar or another message of this
table. KEEP_ZERO lists the fields whose zero value is meaningful (Go
pointers and fields without ``omitempty`` in types.go); other zero values are dropped.
DOCS carries each message's and field's description (the generated.proto comments, as
kube-openapi renders them) and EXTENSIONS the fields' list and patch markers
(``+listType``, ``+listMapKey``, ``+patchStrategy``, ``+patchMergeKey``, ``+mapType``) as the
OpenAPI extensions kube-apiserver publishes, REQUIRED the fields kube-openapi marks required;
k8sbridge.devkube.openapi builds the served
OpenAPI documents from these tables. Regenerate rather than edit by hand.
"""

# ruff: noqa: E501

from __future__ import annotations

MESSAGES: dict[str, dict[int, tuple[str, str, str]]] = {pprint.pformat(messages, width=98)}

KEEP_ZERO: frozenset[tuple[str, str]] = frozenset({pprint.pformat(keep, width=98)})

DOCS: dict[str, tuple[str, dict[int, str]]] = {pprint.pformat(described, width=98)}

EXTENSIONS: dict[str, dict[int, dict[str, object]]] = {pprint.pformat(extended, width=98)}

REQUIRED: frozenset[tuple[str, str]] = frozenset({pprint.pformat(must, width=98)})
''')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
