"""The master's small error hierarchy.

::

    MasterError
    ├── CallError      an HTTP answer for a bad call (status + Mesos' message)
    ├── TaskInvalid    a task or task group that gets TASK_ERROR (the message is the reason)
    └── RegistryError  the SQLite registry cannot be read or written
"""

from __future__ import annotations


class MasterError(Exception):
    """Base of every error the master raises on purpose."""


class CallError(MasterError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TaskInvalid(MasterError):
    """A LAUNCH / LAUNCH_GROUP that Mesos answers with TASK_ERROR."""


class RegistryError(MasterError):
    """The registry database is unusable (corrupt, unwritable)."""
