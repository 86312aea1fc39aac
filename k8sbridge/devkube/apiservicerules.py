"""What kube-aggregator's ``ValidateAPIService`` refuses, in its words.

Why apart from ``apiservices``: validation runs inside the registry, which ``apiservices``
imports to create the defaults; these rules import nothing of the registry.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors, rbacstrategy

Cause = errors.Cause
GROUP = "apiregistration.k8s.io"


def causes(obj: dict[str, Any]) -> list[Cause]:
    """The name (a path segment that must be ``spec.version + "." + spec.group``), the
    version (required) and the two priorities (1..20000 and 1..1000)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    name = str(meta.get("name") or "")
    group = str(spec.get("group") or "")
    version = str(spec.get("version") or "")
    required = f"{version}.{group}"
    out = rbacstrategy.name_causes(name) if name else []
    if name and not out and name != required:
        out.append(("FieldValueInvalid", "metadata.name",
                    f'Invalid value: "{name}": must be `spec.version+"."+spec.group`: '
                    f'"{required}"'))
    if not version:
        out.append(("FieldValueRequired", "spec.version", "Required value"))
    for field, top in (("groupPriorityMinimum", 20000), ("versionPriority", 1000)):
        value = spec.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            out.append(("FieldValueInvalid", f"spec.{field}",
                        f"Invalid value: {value}: must be positive and less than {top}"))
        elif value > top:
            out.append(("FieldValueInvalid", f"spec.{field}",
                        f"Invalid value: {value}: must be positive and less than {top}"))
    return out
