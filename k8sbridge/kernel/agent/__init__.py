"""The kernel's agents: run tasks as real processes and report them to the master over the link.

Layout: ``config`` (flags), ``detect`` (resource auto-detection), ``paths`` (Mesos sandbox and
meta layout), ``cgroups`` and ``limits`` (requests and limits as cgroups), ``executor`` (the
container daemon: one process per agent that survives agent restarts) and ``supervisor`` (what
it runs for each container), ``containers`` (the agent's side of that daemon and of each
container), ``fetcher`` (``CommandInfo.uris``), ``updates`` (reliable status updates),
``checks`` (health checks and checks), ``calls`` and ``http`` (the agent HTTP API) with
``httpauth`` (its HTTP Basic realms), ``garbage`` (sandbox garbage collection), ``confinement``
(the tasks' read-only view of the cgroup file system), ``viewmaker`` (the process that forks
the namespace holders of containers with views of their own), ``errors``,
and the agent component itself, split by responsibility: ``state`` (records), ``core``
(tables, status stream, checkpoints), ``running`` (executor events, kills, probes),
``launching`` (containers from the master's launches), ``recovery`` (after a restart) and
``agent`` (the link to the master).
"""
