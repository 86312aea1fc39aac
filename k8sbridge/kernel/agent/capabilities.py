"""Linux capabilities of a task (``LinuxInfo.effective_capabilities``, ``bounding_capabilities``
and the deprecated ``capability_info``) as Mesos' ``linux/capabilities`` isolator decides them,
and the credentials switch a task's child makes before its ``exec`` (Mesos' launcher).

Decision (``plan``, pure): without the isolator in ``--isolation`` nothing is applied (as
Mesos). With it: the task's effective set (else the agent's ``--effective_capabilities``),
its bounding set (else the agent's ``--bounding_capabilities``, else the effective set); a
bounding set outside the agent's, or an effective set outside the bounding one, fails the
launch with Mesos' words. This agent's tasks never get ``SYS_ADMIN`` or ``SYS_PTRACE``
(``confinement``): asking for them fails the launch too, rather than silently running without.

Switch (``become``, in the forked child, single-threaded): as Mesos' launcher, keep the
permitted set across ``setuid`` (``PR_SET_KEEPCAPS``), then ``setgid``, ``setgroups``,
``setuid``; then drop from the bounding set what is not in it, and make the effective,
permitted, inheritable and ambient sets the effective set (ambient: so a non-root user keeps
them across ``exec``). Why ctypes: Python has no ``capset`` and no ambient ``prctl``.
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from typing import Any

from k8sbridge.kernel.agent import confinement

__all__ = ["CapabilityError", "NAMES", "become", "parse_flag", "plan"]

# CapabilityInfo.Capability (the enum's values are the kernel's numbers + 1000).
NAMES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
         "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
         "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
         "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
         "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
_NUMBER = {name: i for i, name in enumerate(NAMES)}
NEVER = frozenset({"SYS_ADMIN", "SYS_PTRACE"})  # confinement.TASK_DROPPED_CAPABILITIES


class CapabilityError(ValueError):
    """A capability request Mesos (or this agent) refuses; the message is the reason."""


def _names(info: Any) -> frozenset[str]:
    """The names of a ``CapabilityInfo`` (JSON: names or enum numbers)."""
    out = set()
    for cap in (info or {}).get("capabilities") or [] if isinstance(info, dict) else []:
        name = NAMES[cap - 1000] if isinstance(cap, int) and 1000 <= cap < 1000 + len(
            NAMES) else cap
        if name not in _NUMBER:
            raise CapabilityError(f"Unknown capability {cap!r}")
        out.add(str(name))
    return frozenset(out)


def _show(names: frozenset[str]) -> str:
    """stout's ``stringify(set<Capability>)`` (ordered by number)."""
    ordered = sorted(names, key=_NUMBER.__getitem__)
    return "{ " + ", ".join(ordered) + " }"


def parse_flag(text: str) -> frozenset[str] | None:
    """An agent ``--effective_capabilities``/``--bounding_capabilities`` value (JSON
    ``CapabilityInfo``), None when unset."""
    if not text:
        return None
    try:
        return _names(json.loads(text))
    except (json.JSONDecodeError, IndexError) as e:
        raise CapabilityError(f"Invalid CapabilityInfo: {e}") from e


def plan(linux_info: Any, *, isolation: frozenset[str], flag_effective: frozenset[str] | None,
         flag_bounding: frozenset[str] | None) -> dict[str, list[int]] | None:
    """``{"effective": [...], "bounding": [...]}`` (kernel numbers) for a task, None when its
    capabilities are left alone. Raises ``CapabilityError`` (Mesos' isolator messages)."""
    if "linux/capabilities" not in isolation:
        return None
    linux = linux_info if isinstance(linux_info, dict) else {}
    if "capability_info" in linux and "effective_capabilities" in linux:
        raise CapabilityError("Only one of 'capability_info' or 'effective_capabilities' is "
                              "allowed")
    effective: frozenset[str] | None = None
    if "capability_info" in linux:
        effective = _names(linux["capability_info"])
    if "effective_capabilities" in linux:
        effective = _names(linux["effective_capabilities"])
    bounding = _names(linux["bounding_capabilities"]) if "bounding_capabilities" in linux \
        else None
    if effective is None:
        effective = flag_effective
    if bounding is not None and flag_bounding is not None and not bounding <= flag_bounding:
        raise CapabilityError(f"Bounding capabilities '{_show(bounding)}', but only "
                              f"'{_show(flag_bounding)}' are allowed")
    if bounding is None:
        bounding = flag_bounding
    if effective is not None and bounding is None:
        bounding = effective
    if effective is not None and bounding is not None and not effective <= bounding:
        raise CapabilityError(f"Requested capabilities '{_show(effective)}', but only "
                              f"'{_show(bounding)}' are allowed")
    if effective is None and bounding is None:
        return None
    assert bounding is not None
    refused = (bounding | (effective or frozenset())) & NEVER
    if (effective or frozenset()) & NEVER:
        raise CapabilityError(f"Requested capabilities '{_show(effective or frozenset())}', "
                              f"but this agent never grants '{_show(refused)}'")
    bounding = bounding - NEVER  # already out of every task's bounding set
    return {"effective": sorted(_NUMBER[n] for n in effective or frozenset()),
            "given": [1] if effective is not None else [],
            "bounding": sorted(_NUMBER[n] for n in bounding)}


# -- in the child --------------------------------------------------------------------------

PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = confinement._libc
_libc.capset.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data)]
_libc.capget.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data)]


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    confinement._check(_libc.capset(ctypes.byref(header), data), "Failed to set capabilities")


def _permitted() -> int:
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    confinement._check(_libc.capget(ctypes.byref(header), data), "capget")
    return int(data[0].permitted) | (int(data[1].permitted) << 32)


def become(raw_user: dict[str, Any] | None, caps: dict[str, list[int]] | None
           ) -> Callable[[], None] | None:
    """The pre-exec step that gives a task its user and capabilities (None: nothing to do)."""
    if raw_user is None and caps is None:
        return None
    last = _last_cap()

    def switch() -> None:
        if caps is not None and raw_user is not None:
            confinement._check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keep capabilities")
        if raw_user is not None:
            os.setgid(int(raw_user["gid"]))
            os.setgroups([int(g) for g in raw_user["groups"]])
            os.setuid(int(raw_user["uid"]))
        if caps is None:
            return
        permitted = _permitted()
        setpcap = 1 << _NUMBER["SETPCAP"]
        # After setuid the effective set is empty: SETPCAP back first (to drop from bounding).
        effective = permitted if raw_user is None else permitted & setpcap
        _capset(effective, permitted, 0)
        bounding = set(caps["bounding"])
        for cap in range(last + 1):
            if cap not in bounding:
                confinement._check(_libc.prctl(confinement.PR_CAPBSET_DROP, cap, 0, 0, 0),
                                   "Failed to drop capability")
        inheritable = sum(1 << cap for cap in bounding)  # Mesos: inheritable = bounding
        if caps.get("given"):
            target = sum(1 << cap for cap in caps["effective"])
            effective = permitted = target
        _capset(effective, permitted, inheritable)
        confinement._check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
                           "Failed to clear ambient capabilities")
        for cap in caps["effective"] if caps.get("given") else []:
            confinement._check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                               f"Failed to raise capability {NAMES[cap]} to the ambient set")

    return switch
