"""The agent's errors, one small tree (the link has its own ``LinkError``)::

    AgentError                the agent cannot start: bad flags, unusable work dir or port
    +-- ContainerError        the container daemon or a supervisor cannot be started/reached
    +-- FetchError            a task's URI cannot be fetched (its task fails)
"""

from __future__ import annotations

__all__ = ["AgentError", "ContainerError", "FetchError"]


class AgentError(Exception):
    """Base of the agent's errors; raised alone when the agent cannot start."""


class ContainerError(AgentError):
    """The container daemon or a supervisor could not be started or reached."""


class FetchError(AgentError):
    """A URI could not be fetched (the message names it)."""
