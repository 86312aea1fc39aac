"""The kernel's agents: run tasks as real processes and report them to the master over the link.

Layout: ``config`` (flags), ``detect`` (resource auto-detection), ``paths`` (Mesos sandbox and
meta layout), ``cgroups`` (limits), ``executor`` (the container daemon: one process per agent
that supervises every container and survives agent restarts), ``containers`` (the agent's side
of that daemon and of each container), ``fetcher`` (``CommandInfo.uris``), ``updates`` (reliable
status updates), ``checks`` (health checks and checks), ``http`` (the agent HTTP API),
``errors`` and ``agent`` (the component that ties them together).
"""
