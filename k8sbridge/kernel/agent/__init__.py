"""The kernel's agents: run tasks as real processes and report them to the master over the link.

Layout: ``config`` (flags), ``detect`` (resource auto-detection), ``paths`` (Mesos sandbox and
meta layout), ``cgroups`` (limits), ``executor`` (the per-container supervisor process that
survives agent restarts), ``containers`` (the agent's side of an executor), ``updates``
(reliable status updates), ``checks`` (health checks and checks), ``http`` (the agent HTTP API)
and ``agent`` (the component that ties them together).
"""
