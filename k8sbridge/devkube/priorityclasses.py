"""scheduling.k8s.io/v1 PriorityClasses and the Priority admission plugin.

Why: a pod's ``priorityClassName`` means nothing to a scheduler; what it reads is
``spec.priority`` and ``spec.preemptionPolicy``, which kube-apiserver's Priority admission
plugin (``plugin/pkg/admission/priority``) writes at creation from the named class, the
``globalDefault`` class, or 0. It refuses a class that does not exist and a priority or
policy the user set that the class contradicts, and allows only one ``globalDefault``. The
API server also creates the two system classes (``system-node-critical``,
``system-cluster-critical``) at start, reserves the ``system-`` prefix and refuses to delete
them. Everything here is pure; the registry calls it at create, update and delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import errors
from k8sbridge.devkube.tablecells import Column, Row
from k8sbridge.devkube.tablecells import age as _age
from k8sbridge.devkube.tablecells import name as _name

Obj = dict[str, Any]
Cause = errors.Cause

GROUP = "scheduling.k8s.io"
PLURAL = "priorityclasses"
API_VERSION = f"{GROUP}/v1"
HIGHEST_USER_DEFINABLE = 1_000_000_000
SYSTEM_PREFIX = "system-"
PREEMPT_LOWER = "PreemptLowerPriority"
NEVER = "Never"
POLICIES = (PREEMPT_LOWER, NEVER)  # ValidatePreemptionPolicy's order
SYSTEM_CLASSES: dict[str, tuple[int, str]] = {
    "system-node-critical": (
        2_000_001_000, "Used for system critical pods that must not be moved from their "
        "current node."),
    "system-cluster-critical": (
        2_000_000_000, "Used for system critical pods that must run in the cluster, but can "
        "be moved to another node if necessary."),
}


def system_classes() -> list[Obj]:
    """The objects the API server creates at start (``AddSystemPriorityClasses``)."""
    return [{"apiVersion": API_VERSION, "kind": "PriorityClass", "metadata": {"name": name},
             "value": value, "description": description}
            for name, (value, description) in SYSTEM_CLASSES.items()]


def default_class(obj: Obj) -> None:
    """``SetDefaults_PriorityClass``; a false ``globalDefault`` and an empty ``description``
    are not shown (``omitempty``), as kube-apiserver's encoding drops them."""
    obj.setdefault("preemptionPolicy", PREEMPT_LOWER)
    for field, zero in (("globalDefault", False), ("description", "")):
        if field in obj and obj[field] == zero and type(obj[field]) is type(zero):
            del obj[field]


def _name_of(obj: Obj) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def _value(obj: Obj) -> int:
    value = obj.get("value")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _known_system_class(name: str, obj: Obj) -> str | None:
    """``IsKnownSystemPriorityClass``'s error, None when ``obj`` is that class."""
    if name not in SYSTEM_CLASSES:
        return f"{name} is not a known system priority class"
    value = SYSTEM_CLASSES[name][0]
    if _value(obj) != value:
        return f"value of {name} PriorityClass must be {value}"
    if obj.get("globalDefault") is True:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def causes(obj: Obj, *, old: Obj | None) -> list[Cause]:
    """``ValidatePriorityClass`` (and ``ValidatePriorityClassUpdate`` given ``old``)."""
    found: list[Cause] = []
    name = _name_of(obj)
    if name.startswith(SYSTEM_PREFIX):
        why = _known_system_class(name, obj)
        if why is not None:
            found.append(("FieldValueForbidden", "metadata.name",
                          f"Forbidden: priority class names with '{SYSTEM_PREFIX}' prefix are "
                          f"reserved for system use only. error: {why}"))
    elif _value(obj) > HIGHEST_USER_DEFINABLE:
        found.append(("FieldValueForbidden", "value",
                      "Forbidden: maximum allowed value of a user defined priority is "
                      f"{HIGHEST_USER_DEFINABLE}"))
    policy = obj.get("preemptionPolicy")
    if policy == "":
        found.append(("FieldValueRequired", "preemptionPolicy", "Required value"))
    elif policy is not None and policy not in POLICIES:
        found.append(("FieldValueNotSupported", "preemptionPolicy",
                      f'Unsupported value: "{policy}": supported values: '
                      + ", ".join(f'"{p}"' for p in POLICIES)))
    if old is not None:
        if _value(obj) != _value(old):
            found.append(("FieldValueForbidden", "value",
                          "Forbidden: may not be changed in an update."))
        if obj.get("preemptionPolicy") != old.get("preemptionPolicy"):
            found.append(("FieldValueInvalid", "preemptionPolicy",
                          f'Invalid value: "{obj.get("preemptionPolicy")}": field is immutable'))
    return found


def _default_class(classes: list[Obj]) -> Obj | None:
    """The global default; after a race left two, the one of lowest value."""
    chosen: Obj | None = None
    for pc in classes:
        if pc.get("globalDefault") is True and (chosen is None or _value(pc) < _value(chosen)):
            chosen = pc
    return chosen


def admit_class(obj: Obj, *, old: Obj | None, classes: Callable[[], list[Obj]]) -> None:
    """The plugin's validation of a PriorityClass create (``old`` None) or update: one
    ``globalDefault`` only."""
    if obj.get("globalDefault") is not True:
        return
    current = _default_class(classes())
    if current is not None and (old is None or _name_of(current) != _name_of(obj)):
        raise errors.forbidden(
            plural=PLURAL, group=GROUP, name=_name_of(obj),
            why=f"PriorityClass {_name_of(current)} is already marked as default. Only one "
                "default can exist")


def admit_pod(pod: Obj, *, classes: Callable[[], list[Obj]]) -> None:
    """Resolve a new pod's ``priority`` and ``preemptionPolicy`` from its class or the
    global default, or refuse it with kube-apiserver's 403."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    shown = str(meta.get("name") or meta.get("generateName") or "Unknown")

    def forbidden(why: str) -> errors.ApiError:
        return errors.forbidden(plural="pods", group="", name=shown, why=why)

    name = spec.get("priorityClassName")
    if not name:
        found = _default_class(classes())
        if found is not None:
            spec["priorityClassName"] = _name_of(found)
        value, policy = (_value(found), found.get("preemptionPolicy")) if found else (
            0, PREEMPT_LOWER)
    else:
        found = next((pc for pc in classes() if _name_of(pc) == name), None)
        if found is None:
            raise forbidden(f"no PriorityClass with name {name} was found")
        value, policy = _value(found), found.get("preemptionPolicy")
    given = spec.get("priority")
    if given is not None and given != value:
        raise forbidden(f"the integer value of priority ({given}) must not be provided in pod "
                        f"spec; priority admission controller computed {value} from the given "
                        "PriorityClass name")
    spec["priority"] = value
    if policy is not None:
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise forbidden(f"the string value of PreemptionPolicy ({given_policy}) must not be "
                            f"provided in pod spec; priority admission controller computed "
                            f"{policy} from the given PriorityClass name")
        spec["preemptionPolicy"] = policy


def keep_priority(old: Obj, new: Obj) -> None:
    """The plugin on a pod update: a priority the new object leaves out is the old one (the
    update may change neither)."""
    spec, old_spec = new.get("spec"), old.get("spec")
    if isinstance(spec, dict) and isinstance(old_spec, dict):
        if spec.get("priority") is None and old_spec.get("priority") is not None:
            spec["priority"] = old_spec["priority"]


def check_delete(name: str) -> None:
    """The registry's refusal to delete a system class."""
    if name in SYSTEM_CLASSES:
        raise errors.forbidden(plural=PLURAL, group=GROUP, name=name,
                               why="this is a system priority class and cannot be deleted")


def _row(obj: Obj) -> Row:
    return [_name(obj), _value(obj), obj.get("globalDefault") is True, _age(obj),
            str(obj.get("preemptionPolicy") or "")]


COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Value", "integer", 0, ""),
    ("Global-Default", "boolean", 0, ""), ("Age", "string", 0, ""),
    ("PreemptionPolicy", "string", 0, ""),
]
PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {PLURAL: (COLUMNS, _row)}
