"""Which user a task runs as, and what that user is on this agent (uid, gid, groups), as Mesos
decides it.

Why by name on the agent's host: Mesos runs a task as ``CommandInfo.user``, else the
framework's ``FrameworkInfo.user`` (a task group's task without one inherits its executor's,
which is the framework's), unless the agent runs with ``--switch_user=false``. The name is
looked up with ``getpwnam`` in the agent's own ``/etc/passwd`` (stout's ``os::getuid``, before
any change of root: a container's image is never consulted, and its ``User`` is ignored with a
warning by ``docker/runtime``); the groups are the user's primary group plus
``getgrouplist``. A numeric string is a name like any other: "1000" resolves only if a user
is *named* "1000". The sandbox is ``chown``ed to the user when it is made, and an unknown user
fails there, with Mesos' words.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
from typing import Any

__all__ = ["Credentials", "UserError", "resolve", "task_user"]


class UserError(Exception):
    """A user that cannot be resolved (the message is Mesos' ``os::chown`` wording)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def to_raw(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}


def task_user(*, command: Any, framework: Any, switch_user: bool) -> str | None:
    """The user a task runs as (None: the agent's own, with ``--switch_user=false``)."""
    if not switch_user:
        return None
    if isinstance(command, dict) and isinstance(command.get("user"), str):
        return str(command["user"])
    user = framework.get("user") if isinstance(framework, dict) else None
    return str(user) if isinstance(user, str) else ""


def resolve(name: str) -> Credentials | None:
    """``name``'s credentials, or None when it is the agent's own effective user (Mesos then
    changes nothing). Raises ``UserError`` for an unknown user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"Failed to chown directory to '{name}': No such user '{name}'") from None
    if entry.pw_uid == os.geteuid():
        return None
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return Credentials(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def chown_tree(path: str, uid: int, gid: int) -> None:
    """``os::chown(user, path)``: the path and everything under it (links not followed)."""
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
