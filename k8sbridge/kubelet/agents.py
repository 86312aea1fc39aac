"""The kubelet's names for what it reads from Mesos outside the scheduler stream.

Why this module is only names: the reads themselves live in ``k8sbridge.mesos.operator`` on
the scheduler client's transport (one leader, the same credentials and CA), and the agent
record in ``k8sbridge.model.agents``. The kubelet (nodes, the kubelet API) and its tests keep
importing these names from here.
"""

from __future__ import annotations

from k8sbridge.mesos import errors
from k8sbridge.mesos.operator import OperatorClient
from k8sbridge.model.agents import AgentInfo, parse_agents

__all__ = ["AgentInfo", "AgentsError", "FileNotFound", "MesosReader", "parse_agents"]

MesosReader = OperatorClient
AgentsError = errors.OperatorError
FileNotFound = errors.FileNotFound
