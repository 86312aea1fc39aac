"""Authorization as Mesos' local authorizer decides it, over an ``--acls`` document.

Why a module: the local authorizer (``src/authorizer/local/authorizer.cpp``) is a pure
function of the ACLs, the subject (a principal, or nobody) and the object; the master only
asks it "may this principal register these roles / launch as this user / tear down that
framework?". The matching rules are Mesos' two matrices (``matches`` picks the first ACL that
applies, ``allows`` decides it) and a request no ACL matches gets ``permissive`` (default
true). Only the actions this master performs are read: ``register_frameworks``, ``run_tasks``,
``teardown_frameworks`` and ``mark_agents_gone``; other ACL kinds in the document are accepted
and unused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from k8sbridge.kernel.master.authn import AuthConfigError

SOME, ANY, NONE = "SOME", "ANY", "NONE"


@dataclasses.dataclass(frozen=True, slots=True)
class Entity:
    """``ACL::Entity``: ``type`` SOME (the proto default) with ``values``, or ANY, or NONE."""

    type: str = SOME
    values: tuple[str, ...] = ()


def _entity(raw: Any, where: str) -> Entity:
    if raw is None:
        return Entity(type=SOME)
    if not isinstance(raw, dict):
        raise AuthConfigError(f"Failed to parse ACLs: '{where}' is not a JSON object")
    kind = raw.get("type", SOME)
    if kind not in (SOME, ANY, NONE):
        raise AuthConfigError(f"Failed to parse ACLs: unknown entity type '{kind}' in "
                              f"'{where}'")
    values = raw.get("values", [])
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuthConfigError(f"Failed to parse ACLs: '{where}.values' is not a list of "
                              "strings")
    return Entity(type=kind, values=tuple(values))


def _matches(request: Entity, acl: Entity) -> bool:
    if request.type == NONE:
        return acl.type == NONE
    if request.type == ANY:
        return acl.type in (ANY, NONE)
    if acl.type in (ANY, NONE):
        return True
    return all(v in acl.values for v in request.values)


def _allows(request: Entity, acl: Entity) -> bool:
    if request.type != SOME:  # the master never asks about NONE; ANY only ANY allows
        return acl.type == ANY
    if acl.type == ANY:
        return True
    if acl.type == NONE:
        return False
    return all(v in acl.values for v in request.values)


def _nested(parent: str, child: str) -> bool:
    """``isNestedHierarchy``: ``eng/%`` covers ``eng/a`` and ``eng/a/b``, not ``eng``."""
    prefix = parent[:-1]  # keep the slash
    return child.startswith(prefix) and len(child) > len(prefix)


@dataclasses.dataclass(frozen=True, slots=True)
class Acl:
    subjects: Entity
    objects: Entity


def _subject(principal: str | None) -> Entity:
    return Entity(type=ANY) if principal is None else Entity(values=(principal,))


@dataclasses.dataclass(frozen=True, slots=True)
class Authorizer:
    permissive: bool
    register_frameworks: tuple[Acl, ...]
    run_tasks: tuple[Acl, ...]
    teardown_frameworks: tuple[Acl, ...]
    mark_agents_gone: tuple[Acl, ...] = ()

    def _approved(self, acls: Sequence[Acl], subject: Entity, obj: Entity, *,
                  recursive: bool = False) -> bool:
        for acl in acls:
            is_recursive = (recursive and len(acl.objects.values) == 1
                            and acl.objects.values[0].endswith("/%"))
            if not is_recursive:
                if _matches(subject, acl.subjects) and _matches(obj, acl.objects):
                    return _allows(subject, acl.subjects) and _allows(obj, acl.objects)
            elif obj.type == SOME and _nested(acl.objects.values[0], obj.values[0]):
                if _matches(subject, acl.subjects):
                    return _allows(subject, acl.subjects) and _allows(obj, Entity(type=ANY))
        return self.permissive

    def may_register(self, *, principal: str | None, roles: Sequence[str]) -> bool:
        """REGISTER_FRAMEWORK: every role the framework asks for must be approved."""
        if not roles:
            return self.permissive
        return all(self._approved(self.register_frameworks, _subject(principal),
                                  Entity(values=(role,)), recursive=True) for role in roles)

    def may_run_task(self, *, principal: str | None, user: str) -> bool:
        """RUN_TASK: the user the task runs as (command, executor or framework user)."""
        return self._approved(self.run_tasks, _subject(principal), Entity(values=(user,)))

    def may_teardown(self, *, principal: str | None, framework_principal: str) -> bool:
        """TEARDOWN_FRAMEWORK: the torn-down framework's principal ('' when it has none)."""
        return self._approved(self.teardown_frameworks, _subject(principal),
                              Entity(values=(framework_principal,)))

    def may_mark_agent_gone(self, *, principal: str | None) -> bool:
        """MARK_AGENT_GONE: the object is implicit (ANY), so only ``agents`` ANY allows it and
        ``agents`` NONE denies it."""
        return self._approved(self.mark_agents_gone, _subject(principal), Entity(type=ANY))


def _acl_list(doc: dict[str, Any], key: str, object_key: str) -> tuple[Acl, ...]:
    raw = doc.get(key, [])
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise AuthConfigError(f"Failed to parse ACLs: '{key}' is not a JSON array")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise AuthConfigError(f"Failed to parse ACLs: '{key}[{i}]' is not a JSON object")
        for field in ("principals", object_key):
            if field not in item:
                raise AuthConfigError(f"Failed to parse ACLs: Missing required fields: "
                                      f"{key}[{i}].{field}")
        out.append(Acl(subjects=_entity(item["principals"], f"{key}[{i}].principals"),
                       objects=_entity(item[object_key], f"{key}[{i}].{object_key}")))
    return tuple(out)


def parse_acls(flag: str) -> Authorizer:
    """The ``--acls`` flag: the JSON itself, or ``file:///path`` / ``/path`` to a JSON file
    (stout's flag loading)."""
    text = flag
    if flag.startswith(("file://", "/")):
        path = Path(flag[len("file://"):] if flag.startswith("file://") else flag)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AuthConfigError(f"Failed to load flag 'acls': Error reading file '{path}': "
                                  f"{e}") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AuthConfigError(f"Failed to load flag 'acls': Failed to parse JSON: {e}") from e
    if not isinstance(doc, dict):
        raise AuthConfigError("Failed to load flag 'acls': Expecting a JSON object")
    permissive = doc.get("permissive", True)
    if not isinstance(permissive, bool):
        raise AuthConfigError("Failed to parse ACLs: 'permissive' is not a boolean")
    return Authorizer(
        permissive=permissive,
        register_frameworks=_acl_list(doc, "register_frameworks", "roles"),
        run_tasks=_acl_list(doc, "run_tasks", "users"),
        teardown_frameworks=_acl_list(doc, "teardown_frameworks", "framework_principals"),
        mark_agents_gone=_acl_list(doc, "mark_agents_gone", "agents"),
    )


def task_user(task: dict[str, Any], framework_info: dict[str, Any], *,
              in_group: bool = False) -> str:
    """The user RUN_TASK is asked about: the task's ``command.user``, else (a LAUNCH task)
    its executor's ``command.user``, else the framework's ``user`` (the local authorizer's
    order; tasks of a group carry no executor)."""
    command = task.get("command")
    if isinstance(command, dict) and isinstance(command.get("user"), str):
        return str(command["user"])
    executor = task.get("executor")
    if not in_group and isinstance(executor, dict):
        exec_command = executor.get("command")
        if isinstance(exec_command, dict) and isinstance(exec_command.get("user"), str):
            return str(exec_command["user"])
    return str(framework_info.get("user", ""))
