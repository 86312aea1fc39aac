"""The bridge children of ``k8sbridge run``: one, or ``embedded.bridge_replicas`` replicas
electing a leader.

Why apart from ``embedded``: with 2+ replicas each child gets leader election on
(``leader.enabled``), an identity of its own and a kubelet port of its own, is ready once it
waits as the standby, and the supervisor restarts a killed one, which comes back as the
standby while the other takes over (``replica``). So a ``kill -9`` of the leading bridge is
answered by a takeover bounded by the Lease, not by a restart of the only bridge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from k8sbridge import settings as bridge_settings
from k8sbridge import supervise

__all__ = ["REPLICA_LEADS", "REPLICA_READY", "replica_settings", "spawn_bridges"]

# a bridge replica (embedded.bridge_replicas 2+) is up once it waits as the standby; one leads
REPLICA_READY = re.compile(r"^k8sbridge is a standby until it holds the leader Lease")
REPLICA_LEADS = re.compile(
    r"^k8sbridge is ready \(leader\): framework (?P<framework>\S+), kubelet API on port "
    r"(?P<port>\d+)", re.MULTILINE)


def replica_settings(settings: bridge_settings.BridgeSettings, index: int
                     ) -> bridge_settings.BridgeSettings:
    """Bridge replica ``index`` (0-based) of ``embedded.bridge_replicas`` 2+: leader election
    on, an identity unique per process (``replica.replica_identity``: a restarted replica never
    takes its previous life's Lease for its own), its kubelet API on ``kubelet.port + index``
    (0 stays 0: any free port)."""
    kubelet = settings.kubelet
    port = kubelet.port + index if kubelet.port else 0
    return dataclasses.replace(
        settings, leader=dataclasses.replace(settings.leader, enabled=True, identity=""),
        kubelet=dataclasses.replace(kubelet, port=port))


async def spawn_bridges(
    group: supervise.Group, bridge_cfg: bridge_settings.BridgeSettings, *, data_dir: Path,
    py: Sequence[str], env: dict[str, str], kernel_url: str, kubeconfig: Path,
    stop: asyncio.Event | None, write: Callable[[Path, str], None], ready: re.Pattern[str],
    start_timeout: float, stop_grace: float,
) -> re.Match[str]:
    """The bridge child, or ``embedded.bridge_replicas`` replicas of it (``bridge``,
    ``bridge-2``, ...); the ready line (``ready``: a lone bridge's) of the one that leads.
    ``write`` writes a private file (its settings)."""
    count = bridge_cfg.embedded.bridge_replicas
    children: list[tuple[supervise.Child, int]] = []
    for index in range(count):
        name = "bridge" if index == 0 else f"bridge-{index + 1}"
        cfg = bridge_cfg if count == 1 else replica_settings(bridge_cfg, index)
        settings_file = data_dir / f"{name}-settings.yaml"
        write(settings_file, yaml.safe_dump(bridge_settings.dump(cfg),
                                                     sort_keys=False))
        log_file = data_dir / "logs" / f"{name}.log"
        offset = log_file.stat().st_size if log_file.exists() else 0
        child = await group.spawn(supervise.ChildSpec(
            name=name,
            argv=(*py, "run", "--config", str(settings_file), "--master", kernel_url,
                  "--kubeconfig", str(kubeconfig)),
            log_file=log_file, ready=ready if count == 1 else REPLICA_READY,
            stop_grace_seconds=stop_grace, env=env,
        ))
        children.append((child, offset))
    if count == 1:
        return await group.wait_ready(children[0][0], timeout=start_timeout, stop=stop)
    for child, _ in children:
        await group.wait_ready(child, timeout=start_timeout, stop=stop)
    return await _leader_line(group, children, stop=stop, timeout=start_timeout)


async def _leader_line(group: supervise.Group, children: list[tuple[supervise.Child, int]],
                       *, stop: asyncio.Event | None, timeout: float) -> re.Match[str]:
    """The first replica's leader line (read from its log past ``offset``); the Lease of an
    earlier run killed without releasing it delays this by up to its duration."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for child, offset in children:
            with child.spec.log_file.open("rb") as f:
                f.seek(offset)
                match = REPLICA_LEADS.search(f.read().decode(errors="replace"))
            if match is not None:
                return match
        for other in group.children:
            if other.exited.done():
                raise supervise.ChildExited(other)
        if stop is not None and stop.is_set():
            raise supervise.Interrupted("stopped while the bridge replicas were electing")
        await asyncio.sleep(0.2)
    raise supervise.ChildError(f"no bridge replica led within {timeout:g}s")
