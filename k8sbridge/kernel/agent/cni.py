"""The ``network/cni`` isolator: a container whose ``ContainerInfo.network_infos`` names a CNI
network gets a network namespace of its own, attached by the CNI plugins of
``--network_cni_plugins_dir`` with the configurations of ``--network_cni_config_dir`` (ADD on
launch, DEL on end), as Mesos' isolator does.

Layout (Mesos' ``paths``): ``<root>/<container id>/ns`` is the namespace (a bind mount of its
``nsfs`` file, made by a worker thread: see below), ``hosts``, ``hostname`` and ``resolv.conf``
beside it are the container's network files, and ``<root>/<container id>/<network>/<ifname>/``
holds the configuration ADD was given (DEL gets the same) and what it answered. The root is
``<work_dir>/isolators/network/cni`` with ``--network_cni_root_dir_persist``, else under
``RUN_BASE`` (gone with a reboot, as the namespaces are). That directory is the checkpoint: a
restarted agent reads the addresses of surviving containers from it, and detaches what no live
container owns.

Why ``RUN_BASE`` is a tmpfs: what is under ``/run`` must be gone after a reboot, and Linux
distributions mount ``/run`` as a tmpfs for that. Where it is not one (this project's test
machines: the root ext4, without a journal, where making a file in a directory of many
recently deleted ones scans their inodes), the agent that makes ``RUN_BASE`` mounts a tmpfs
there (``make_run_base``), as Mesos' isolator bind-mounts its root on itself, and leaves it,
as ``/run`` stays. The embedded cluster keeps ``host-local``'s leases in the agent's
``runtime_dir`` too, as kind's ``kindnet`` keeps them in ``/run/cni-ipam-state``: they go with
the reboot that ended their containers. An attach of a burst of 100 cost 21-28 ms of the box's
CPU with both on the ext4, 15-17 ms on a tmpfs (``bench_cni_attach.py --burst 100``).

Where the plugins run (a compatible extension, ``--network_cni_plugins_netns``): a plugin
attaches the container to "the host" -- the network namespace it runs in. The embedded cluster
runs it inside a namespace of its own (``k8sbridge.kernel.network``), so bridges, veths and
gateways never appear in the machine's own namespace; without the flag it runs in the
agent's, as Mesos'. A plugin that does not answer within ``--network_cni_plugin_timeout`` is
killed (Mesos waits forever) and its message says so.

Where the processes come from (what an attach costs): the namespace is made by a worker thread
of the agent (a thread's network namespace is its own: ``unshare``, bind its nsfs file at
``ns``, bring its ``lo`` up, go back), not by an ``unshare`` exec; every plugin is spawned by a
worker thread that has joined the plugins' namespace for the spawn (a child starts in its
parent thread's namespace), not through an ``nsenter`` exec. ``lo`` comes up by the
``SIOCSIFFLAGS`` ioctl ``ifconfig lo up`` makes (Mesos' ``NetworkCniIsolatorSetup`` spawns
``ip link set dev lo up``, and ``ifconfig lo up`` when that fails): the same flag on the same
device, without a process (``bench_cni_attach.py --lo 40``: ``ip`` 1.9 ms of CPU, the ioctl
under 0.05 ms; the ``loopback`` plugin before ``ip`` 2.5 ms). So an attach runs the
network's plugins (``bridge``, which runs ``host-local``) and nothing else. The thread only
holds the plugins' namespace while it spawns, so no thread of the agent keeps the cluster's
namespace alive once ``k8sbridge run`` deletes it. The bridge plugin's own per-ADD work
(``accept_ra`` on the bridge and host veth, ``accept_dad`` and ``arp_notify`` in the container,
the bridge's gateway address, reading ``ip_forward``) is unconditional in the reference
plugin: no configuration key turns it off.

Leftovers of agents whose work directory is gone (an extension): the root under ``/run`` is
named after a hash of the work directory, so an agent killed for good (a crashed or timed-out
``k8sbridge run``, whose data directory was temporary) leaves its containers' namespace binds
there, and no later agent has the same root to recover them. Each bind keeps a network
namespace alive, and the kernel's cost of a mount namespace copy and of a ``/proc/sys/net``
lookup grows with their number (4,158 such binds on this project's test machine made a CNI
attach cost 45 ms of CPU instead of 24). So the root's directory records its work directory
(``work_dir``), and an agent starting on this host unmounts and removes every root whose
recorded work directory no longer exists.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cnispec, mounting
from k8sbridge.kernel.agent.cnispec import CniError, Network, Result

__all__ = ["RUN_BASE", "Attachment", "CniError", "Isolator", "claim", "make_run_base", "root_dir",
           "runtime_dir", "sweep_orphans"]

log = logging.getLogger(__name__)

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


RUN_BASE = Path("/run/k8sbridge")
_RUN_BASE_FLAGS = mounting.MS_NOSUID | mounting.MS_NODEV | mounting.MS_NOEXEC
_OWNER = "work_dir"  # beside ``isolators`` in a root's directory under RUN_BASE
_SPAWNERS = 16  # worker threads per isolator: plugin calls at once (each waits for its plugin)
_THREAD_NETNS = "/proc/thread-self/ns/net"
# <linux/sockios.h>, <net/if.h>: struct ifreq is the name, then a 24-byte union (flags first)
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")
_LO_FAILED = "Failed to bring up the loopback interface in the new network namespace"


def _make_netns(path: str) -> None:
    """A new network namespace bound at ``path`` (an existing file), with its ``lo`` up, made
    by the calling thread, which goes back to its own namespace before it returns.
    ``CniError`` when ``lo`` cannot be brought up (the namespace stays bound: detach removes
    it)."""
    home = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mounting.unshare(mounting.CLONE_NEWNET)
        try:
            mounting.mount(_THREAD_NETNS, path, None, mounting.MS_BIND)
            _loopback_up()
        finally:
            mounting.setns(home, mounting.CLONE_NEWNET)
    finally:
        os.close(home)


def _loopback_up() -> None:
    """``lo`` up in the calling thread's network namespace (a socket belongs to the namespace
    of the thread that makes it): ``IFF_UP`` added to its flags, as ``ifconfig lo up`` does."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
            if not flags & _IFF_UP:
                fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))
    except OSError as e:
        raise CniError(f"{_LO_FAILED}: {e}") from None


def _spawn(argv: list[str], *, env: dict[str, str], netns: str | None) -> subprocess.Popen[bytes]:
    """``argv`` started in ``netns`` (None: the calling thread's own): the thread joins it for
    the spawn only."""
    if netns is None:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    home = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mounting.setns(target, mounting.CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        finally:
            mounting.setns(home, mounting.CLONE_NEWNET)
    finally:
        os.close(home)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The plugin and what it started (its own session: ``host-local`` under ``bridge``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)


def _run(argv: list[str], *, stdin: bytes, env: dict[str, str], netns: str | None,
         timeout: float, started: list[subprocess.Popen[bytes]], stop: threading.Event
         ) -> tuple[int | None, bytes, bytes]:
    """One plugin process to its end, in a worker thread (``started``: where the awaiting
    side finds it to kill it when cancelled, ``stop`` set then); TimeoutError, after killing
    it, when it does not end within ``timeout``."""
    proc = _spawn(argv, env=env, netns=netns)
    started.append(proc)
    if stop.is_set():
        _kill(proc)
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        raise TimeoutError from None
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    return proc.returncode, stdout, stderr


def runtime_dir(*, work_dir: Path) -> Path:
    """The agent's directory under RUN_BASE (Mesos' ``--runtime_dir``: what the agent keeps
    across its own restarts but not across a reboot), named after its work directory."""
    return RUN_BASE / hashlib.sha1(str(work_dir).encode()).hexdigest()[:16]


def root_dir(*, work_dir: Path, persist: bool) -> Path:
    """Where the isolator keeps its containers (see the module docstring)."""
    if persist:
        return work_dir / "isolators" / "network" / "cni"
    return runtime_dir(work_dir=work_dir) / "isolators" / "network" / "cni"


def make_run_base(base: Path = RUN_BASE) -> bool:
    """``base`` made when it is missing or empty, as a tmpfs of its own when the file system
    it is on is not one (see the module docstring); True when this call mounted it. Agents
    starting at once take turns (a lock on the parent directory). A base that holds anything
    is left as it is: another agent's namespaces may be bound in it."""
    base.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(base.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base.mkdir(mode=0o755, exist_ok=True)
        if _file_system(base) == "tmpfs" or any(base.iterdir()):
            return False
        try:
            mounting.mount("tmpfs", str(base), "tmpfs", _RUN_BASE_FLAGS, "mode=0755")
        except OSError as e:
            log.warning("agent: network/cni: cannot mount a tmpfs at %s (%s): network "
                        "namespaces and IPAM leases are kept on its file system", base, e)
            return False
        return True
    finally:
        os.close(lock)


def _file_system(path: Path) -> str:
    """The type of the file system ``path`` is on (its deepest mount in mountinfo)."""
    target, found, depth = str(path), "", -1
    for m in mounting.mountinfo("self"):
        point = m.point.rstrip("/")
        if (target == m.point or target.startswith(point + "/")) and len(point) > depth:
            found, depth = m.fstype, len(point)
    return found


def claim(root: Path, *, work_dir: Path) -> None:
    """Record whose root under RUN_BASE this is (see the module docstring)."""
    if root.parents[2].parent == RUN_BASE:
        (root.parents[2] / _OWNER).write_text(str(work_dir.resolve()))


def sweep_orphans(base: Path = RUN_BASE) -> int:
    """Unmount the namespace binds of every root under ``base`` whose recorded work directory
    is gone, and remove the root; how many binds went."""
    swept = 0
    for top in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            owner = (top / _OWNER).read_text()
        except OSError:
            continue  # not claimed (yet): an agent starting now, or an older version's
        if not owner or os.path.exists(owner):
            continue
        for ns in sorted(top.glob("isolators/network/cni/*/ns")):
            with contextlib.suppress(OSError):
                mounting.umount(str(ns), detach=True)
                swept += 1
        shutil.rmtree(top, ignore_errors=True)
    return swept


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    """A container's namespace, its hostname and its network files, and the ``NetworkInfo``
    of each network it joined with the addresses it got."""

    netns: str
    hostname: str
    etc: dict[str, str]  # /etc/hosts, /etc/hostname, /etc/resolv.conf -> source
    network_infos: list[dict[str, Any]]

    @property
    def ips(self) -> list[str]:
        return [a["ip_address"] for n in self.network_infos for a in n["ip_addresses"]]


class Isolator:
    """One agent's ``network/cni`` isolator."""

    def __init__(self, *, networks: dict[str, Network], plugins_dir: str, root: Path,
                 plugins_netns: str | None, timeout: float) -> None:
        self.networks = networks
        self._plugins_dir = plugins_dir
        self._root = root
        self._plugins_netns = plugins_netns
        self._timeout = timeout
        self._attached: dict[str, Attachment] = {}
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=_SPAWNERS, thread_name_prefix="network-cni")

    @classmethod
    def load(cls, *, config_dir: str, plugins_dir: str, root: Path, plugins_netns: str | None,
             timeout: float) -> Isolator:
        """The networks of ``config_dir`` whose plugins ``plugins_dir`` has. One whose plugin
        is missing is left out with one warning: tasks naming it fail, host-network tasks run
        as ever."""
        networks: dict[str, Network] = {}
        directory = Path(config_dir)
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            if not path.is_file():
                continue
            try:
                network = cnispec.parse_network_config(path.read_text(), path=str(path))
            except (CniError, OSError, UnicodeDecodeError) as e:
                log.error("agent: network/cni: %s", e)
                continue
            if network.name in networks:
                log.error("agent: network/cni: CNI network '%s' is defined twice (%s, %s); "
                          "using the first", network.name, networks[network.name].path, path)
                continue
            networks[network.name] = network
        missing = sorted({n.plugin for n in networks.values()})
        missing = [p for p in missing if not os.access(Path(plugins_dir) / p, os.X_OK)]
        if missing:
            log.warning("agent: network/cni: the CNI plugin(s) %s are not in %s (install "
                        "Debian's containernetworking-plugins, scripts/system-packages): this "
                        "agent offers no CNI network; host-network tasks run as usual",
                        ", ".join(missing), plugins_dir)
            networks = {}
        root.mkdir(parents=True, exist_ok=True)
        return cls(networks=networks, plugins_dir=plugins_dir, root=root,
                   plugins_netns=plugins_netns, timeout=timeout)

    def status(self, container_id: str) -> Attachment | None:
        """The attachment of a live container (read back from its directory after a
        restart), or None if it joined no CNI network."""
        found = self._attached.get(container_id)
        if found is None and (self._root / container_id / "attachment.json").exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                raw = json.loads((self._root / container_id / "attachment.json").read_text())
                found = Attachment(netns=raw["netns"], hostname=raw["hostname"],
                                   etc=dict(raw["etc"]), network_infos=list(raw["network_infos"]))
                self._attached[container_id] = found
        return found

    def containers(self) -> list[str]:
        """The containers the root directory has (live ones and leftovers)."""
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir())

    async def attach(self, container_id: str, *, networks: list[Network],
                     network_infos: list[dict[str, Any]], hostname: str | None) -> Attachment:
        """A namespace for ``container_id`` attached to ``networks`` (``network_infos``: the
        framework's ``NetworkInfo`` of each); on any failure nothing of it is left and
        ``CniError`` says why."""
        directory = self._root / container_id
        netns = directory / "ns"
        try:
            directory.mkdir(parents=True)
            netns.touch()
            await asyncio.get_running_loop().run_in_executor(
                self._threads, _make_netns, str(netns))
            infos: list[dict[str, Any]] = []
            results: list[Result] = []
            for index, (network, info) in enumerate(zip(networks, network_infos, strict=True)):
                result = await self._plugin("ADD", container_id, network=network,
                                            ifname=f"eth{index}", netns=netns, network_info=info)
                assert result is not None
                results.append(result)
                infos.append({**info, "ip_addresses": [
                    {"protocol": "IPv6" if ":" in ip else "IPv4", "ip_address": ip}
                    for ip in result.ips]})
            name = hostname or container_id
            etc = self._write_files(directory, hostname=name, results=results)
        except (CniError, OSError) as e:
            await self.detach(container_id)
            raise CniError(str(e)) from None
        except BaseException:
            await asyncio.shield(self.detach(container_id))
            raise
        attachment = Attachment(netns=str(netns), hostname=name, etc=etc, network_infos=infos)
        (directory / "attachment.json").write_text(json.dumps(dataclasses.asdict(attachment)))
        self._attached[container_id] = attachment
        return attachment

    async def detach(self, container_id: str) -> None:
        """DEL on every network the container was attached to (logged, not raised, when a
        plugin fails: what it holds cannot be freed by us either), then its namespace and
        directory go."""
        self._attached.pop(container_id, None)
        directory = self._root / container_id
        netns = directory / "ns"
        if not directory.is_dir():
            return
        for conf in sorted(directory.glob("*/*/network.conf")):
            ifname, name = conf.parent.name, conf.parent.parent.name
            try:
                network = cnispec.parse_network_config(conf.read_text(), path=str(conf))
                await self._plugin("DEL", container_id, network=network, ifname=ifname,
                                   netns=netns)
            except (CniError, OSError) as e:
                log.warning("agent: network/cni: DEL of container %s from network '%s' "
                            "failed: %s", container_id, name, e)
        with contextlib.suppress(OSError):
            mounting.umount(str(netns), detach=True)
        shutil.rmtree(directory, ignore_errors=True)

    async def _plugin(self, command: str, container_id: str, *, network: Network,
                      ifname: str, netns: Path, network_info: dict[str, Any] | None = None
                      ) -> Result | None:
        """One plugin call, run in the plugins' namespace."""
        stdin = cnispec.plugin_input(network, network_info=network_info or {})
        if command == "ADD":
            ifdir = self._root / container_id / network.name / ifname
            ifdir.mkdir(parents=True, exist_ok=True)
            (ifdir / "network.conf").write_bytes(json.dumps(network.config).encode())
        env = cnispec.plugin_env(command=command, container_id=container_id, netns=str(netns),
                                 ifname=ifname, plugins_dir=self._plugins_dir,
                                 path=os.environ.get("PATH", _DEFAULT_PATH))
        binary = str(Path(self._plugins_dir) / network.plugin)
        try:
            code, stdout, stderr = await self._exec(
                [binary], stdin=stdin, env=env, netns=self._plugins_netns)
        except TimeoutError:
            raise CniError(f"The CNI plugin '{binary}' did not {command} container "
                           f"{container_id} on CNI network '{network.name}' within "
                           f"{self._timeout:g} seconds; it was killed") from None
        if code != 0:
            raise CniError(cnispec.plugin_error(binary, container_id=container_id,
                                                network=network.name, code=code,
                                                stdout=stdout, stderr=stderr))
        if command != "ADD":
            return None
        result = cnispec.parse_result(stdout, plugin=binary)
        (self._root / container_id / network.name / ifname / "network.info").write_bytes(stdout)
        return result

    async def _exec(self, argv: list[str], *, stdin: bytes, env: dict[str, str],
                    netns: str | None) -> tuple[int | None, bytes, bytes]:
        """A plugin process run by a worker thread (``_run``); killed if the call is
        cancelled."""
        started: list[subprocess.Popen[bytes]] = []
        stop = threading.Event()
        call = asyncio.get_running_loop().run_in_executor(
            self._threads, lambda: _run(argv, stdin=stdin, env=env, netns=netns,
                                        timeout=self._timeout, started=started, stop=stop))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            stop.set()
            for proc in list(started):
                _kill(proc)
            with contextlib.suppress(Exception):
                await call  # the thread reaps it
            raise

    def _write_files(self, directory: Path, *, hostname: str, results: list[Result]
                     ) -> dict[str, str]:
        """``hostname``, ``hosts`` and ``resolv.conf`` of the container (the host's
        ``resolv.conf`` when no plugin gave DNS settings), as Mesos writes them."""
        (directory / "hostname").write_text(hostname + "\n")
        (directory / "hosts").write_text(cnispec.hosts_file(
            hostname=hostname, ips=[ip for r in results for ip in r.ips]))
        resolv: str | None = None
        for result in results:
            resolv = resolv or cnispec.resolv_conf(result.dns)
        etc = {"/etc/hosts": str(directory / "hosts"),
               "/etc/hostname": str(directory / "hostname")}
        if resolv is not None:
            (directory / "resolv.conf").write_text(resolv)
            etc["/etc/resolv.conf"] = str(directory / "resolv.conf")
        elif os.path.exists("/etc/resolv.conf"):
            etc["/etc/resolv.conf"] = os.path.realpath("/etc/resolv.conf")
        else:
            raise CniError("Cannot find host's /etc/resolv.conf")
        return etc
