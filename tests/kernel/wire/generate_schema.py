"""Generate ``mesos_schema.py`` from Apache Mesos' v1 ``.proto`` files.

Why generated: the kernel must print what Mesos prints, and the field lists of ``mesos.proto``,
``master.proto`` and ``scheduler.proto`` are long; reading them by machine once gives a table
(message -> field -> type, label, default) that the wire test checks every emitted document
against. The proto text itself is not kept, only the table.

Usage: ``python -m tests.kernel.wire.generate_schema <mesos git dir or source tree>``; it reads
``include/mesos/v1/**.proto`` (``git show HEAD:`` when given a bare repository) and rewrites
``tests/kernel/wire/mesos_schema.py``.
"""

from __future__ import annotations

import pprint
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

FILES = ("mesos.proto", "master/master.proto", "scheduler/scheduler.proto",
         "quota/quota.proto", "maintenance/maintenance.proto", "allocator/allocator.proto")
SCALARS = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
           "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"}
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|[A-Za-z_.][A-Za-z0-9_.]*|-?[0-9][0-9.eE+-]*|[{}\[\]=;<>,()]')


def _read(source: Path, name: str) -> str:
    path = source / "include/mesos/v1" / name
    if path.exists():
        return path.read_text()
    argv = ["git", "--git-dir", str(source), "show", f"HEAD:include/mesos/v1/{name}"]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return _TOKEN.findall(text)


class _Parser:
    def __init__(self) -> None:
        self.messages: dict[str, list[tuple[str, str, str, Any, str]]] = {}
        self.enums: dict[str, list[str]] = {}

    def parse(self, text: str) -> None:
        toks = _tokens(text)
        package = ""
        i = 0
        while i < len(toks):
            t = toks[i]
            if t == "package":
                package = toks[i + 1]
                i = toks.index(";", i) + 1
            elif t in ("syntax", "import", "option"):
                i = toks.index(";", i) + 1
            elif t == "message":
                i = self._message(toks, i, package)
            elif t == "enum":
                i = self._enum(toks, i, package)
            else:
                i += 1

    def _skip_block(self, toks: list[str], i: int) -> int:
        depth = 0
        while True:
            if toks[i] == "{":
                depth += 1
            elif toks[i] == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1

    def _enum(self, toks: list[str], i: int, scope: str) -> int:
        name = f"{scope}.{toks[i + 1]}"
        values: list[str] = []
        i += 3
        while toks[i] != "}":
            if toks[i] in ("option", "reserved"):
                i = toks.index(";", i) + 1
                continue
            values.append(toks[i])
            i = toks.index(";", i) + 1
        self.enums[name] = values
        return i + 1

    def _message(self, toks: list[str], i: int, scope: str) -> int:
        name = f"{scope}.{toks[i + 1]}"
        fields: list[tuple[str, str, str, Any, str]] = []
        self.messages[name] = fields
        i += 3
        oneof_depth = 0
        while True:
            t = toks[i]
            if t == "}":
                if oneof_depth:
                    oneof_depth -= 1
                    i += 1
                    continue
                return i + 1
            if t == "message":
                i = self._message(toks, i, name)
            elif t == "enum":
                i = self._enum(toks, i, name)
            elif t == "oneof":
                oneof_depth += 1
                i += 3
            elif t in ("option", "reserved", "extensions"):
                i = toks.index(";", i) + 1
            elif t == "extend":
                i = self._skip_block(toks, i)
            else:
                label = "optional"
                if t in ("optional", "required", "repeated"):
                    label = t
                    i += 1
                if toks[i] == "map":
                    ftype = f"map<{toks[i + 2]},{toks[i + 4]}>"
                    i += 6
                else:
                    ftype = toks[i]
                    i += 1
                fname = toks[i]
                end = toks.index(";", i)
                opts = toks[i:end]
                default: Any = None
                # jsonify prints a declared default unless the field is deprecated.
                if "default" in opts and "deprecated" not in opts:
                    raw = opts[opts.index("default") + 2]
                    default = raw.strip('"') if raw.startswith('"') else raw
                fields.append((fname, ftype, label, default, name))
                i = end + 1

    def resolve(self, ref: str, scope: str) -> str:
        ref = ref.lstrip(".")
        parts = scope.split(".")
        for k in range(len(parts), -1, -1):
            candidate = ".".join(parts[:k] + [ref])
            if candidate in self.messages or candidate in self.enums:
                return candidate
        if ref.startswith("google.protobuf."):
            return ref
        raise KeyError(f"cannot resolve {ref} in {scope}")

    def _type(self, ftype: str, scope: str) -> str:
        if ftype in SCALARS:
            return ftype
        if ftype.startswith("map<"):
            key, value = ftype[4:-1].split(",")
            return f"map:{key}:{self._type(value, scope)}"
        full = self.resolve(ftype, scope)
        if full.startswith("google.protobuf."):
            return f"msg:{full}"
        return f"enum:{full}" if full in self.enums else f"msg:{full}"

    def _default(self, ftype: str, raw: Any) -> Any:
        if raw is None:
            return None
        if ftype in ("double", "float"):
            return float(raw)
        if ftype == "bool":
            return raw == "true"
        if ftype in SCALARS and ftype not in ("string", "bytes"):
            return int(raw)
        return raw

    def table(self) -> tuple[dict[str, dict[str, tuple[str, str, Any]]],
                             dict[str, tuple[str, ...]]]:
        out: dict[str, dict[str, tuple[str, str, Any]]] = {}
        for message, fields in self.messages.items():
            out[message] = {
                fname: (self._type(ftype, scope), label, self._default(ftype, default))
                for fname, ftype, label, default, scope in fields
            }
        out["google.protobuf.Duration"] = {"seconds": ("int64", "optional", None),
                                           "nanos": ("int32", "optional", None)}
        return out, {k: tuple(v) for k, v in self.enums.items()}


def main(argv: list[str]) -> None:
    source = Path(argv[1])
    parser = _Parser()
    for name in FILES:
        parser.parse(_read(source, name))
    messages, enums = parser.table()
    target = Path(__file__).with_name("mesos_schema.py")
    target.write_text(
        '"""GENERATED by tests/kernel/wire/generate_schema.py from Apache Mesos\' v1 protos: '
        "do not edit.\n\n"
        "MESSAGES: full message name -> field -> (type, label, default); a type is a proto\n"
        "scalar, 'enum:<name>', 'msg:<name>' or 'map:<key>:<value type>'. ENUMS: name -> values.\n"
        '"""\n\n'
        "from typing import Any\n\n"
        "# ruff: noqa: E501\n"
        "MESSAGES: dict[str, dict[str, tuple[str, str, Any]]] = "
        f"{pprint.pformat(messages, width=100)}\n\n"
        f"ENUMS: dict[str, tuple[str, ...]] = {pprint.pformat(enums, width=100, compact=True)}\n"
    )


if __name__ == "__main__":
    main(sys.argv)
