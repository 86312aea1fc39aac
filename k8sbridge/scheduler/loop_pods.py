"""The offer loop's pod side: which pods are ours, pending or deleting, and deletion.

Why here: a pod event changes which pods are pending (placement's input) and drives a
deletion (KILL with the pod's grace, then DELETE with grace 0 once every task ended); pods are
kept compact (``compact_pod``) because the loop keeps one per pod on our nodes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from k8sbridge.kube import errors as kube_errors
from k8sbridge.lifecycle import deletion, intents, taskids
from k8sbridge.model import ids
from k8sbridge.scheduler import loop_state
from k8sbridge.scheduler.loop_state import (
    RawPod,
)

__all__ = ["PodEvents", "compact_pod"]

log = logging.getLogger(__name__)


SHARED_STRING_MAX = 40  # strings up to this long are interned by ``compact_pod``


def compact_pod(raw: RawPod, previous: RawPod | None = None) -> RawPod:
    """The pod as it is kept for as long as it lives here: without ``managedFields`` (the
    API server's field ownership; nothing here reads it) and with its keys and short strings
    shared between pods (``sys.intern``).

    Why: every watch event is a freshly decoded object, so each kept pod would carry its own
    copy of every key and of every common value ("apiVersion", "Always", "busybox", condition
    types and reasons, timestamps of the same second). Sharing them takes a one-container
    pod from ~12 KiB of Python objects to ~5 KiB (the bridge keeps one per pod on its nodes),
    for ~30 µs per event.

    ``previous`` (the version kept so far) gives its compacted parts to the new one where
    they are equal (the spec, most of the metadata and status), two levels deep: an equality
    test in C instead of rebuilding them. Both are decoded from one API server's JSON (a field
    does not turn from ``1`` into ``1.0`` or ``true`` between versions) and kept versions are
    never mutated, so sharing their parts is safe."""
    meta = raw.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        raw = {**raw, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    if previous is not None:
        return _compact_like(raw, previous, 2)
    compacted: RawPod = _compact_json(raw)
    return compacted


def _compact_like(value: dict[str, Any], previous: dict[str, Any], depth: int,
                  _intern: Callable[[str], str] = sys.intern) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        before = previous.get(key)
        if before is not None and type(before) is type(item):
            if before == item:
                out[_intern(key)] = before
                continue
            if depth > 1 and type(item) is dict:
                out[_intern(key)] = _compact_like(item, before, depth - 1)
                continue
        out[_intern(key)] = _compact_json(item)
    return out


def _compact_json(value: Any, _intern: Callable[[str], str] = sys.intern) -> Any:
    if isinstance(value, dict):
        return {_intern(k) if isinstance(k, str) else k: _compact_json(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_compact_json(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return _intern(value)
    return value


class PodEvents(loop_state.LoopState):
    """Pod events: which pods are ours, pending or being deleted."""

    async def _initial_pod_list(self) -> None:
        for attempt in range(30):
            try:
                listed = (await self._list_pods_hook() if self._list_pods_hook is not None
                          else await self._kube.list_pods())
                for raw in listed:
                    self._observe_pod(None, raw)
                self._pods_synced = True
                return
            except kube_errors.KubeError as e:
                log.warning("listing pods failed (attempt %d): %s", attempt + 1, e)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        raise kube_errors.TransportError("could not list pods at start")

    def _observe_pod(self, etype: str | None, raw: RawPod) -> None:
        meta = raw.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        if etype == "DELETED":
            self._uids_seen.discard(uid)
        else:
            self._uids_seen.add(uid)
        if etype != "DELETED":
            raw = compact_pod(raw, self._pods.get(uid))
            meta = raw.get("metadata") or {}
        if etype == "DELETED":
            self._pods.pop(uid, None)
            self._parsed.pop(uid, None)
            self._pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
            self._pending_since.pop(uid, None)
            self._explained_at.pop(uid, None)
            if any(t.pod_uid == uid and not t.terminal for t in self._tasks.values()):
                self._lives.start_deleting(uid)  # force-deleted: kill at once (no grace)
            else:
                self._lives.launch_ended(uid)
                self._sink.forget(uid)
            return
        if not self._is_ours(raw) and self._lives.launch(uid) is None:
            self._pods.pop(uid, None)
            self._parsed.pop(uid, None)
            self._pending.pop(uid, None)
            return
        self._pods[uid] = raw
        self._sink.observe(raw)  # the writer keeps this version, not an older one
        phase = (raw.get("status") or {}).get("phase")
        spec = raw.get("spec") or {}
        if meta.get("deletionTimestamp"):
            self._pending.pop(uid, None)
            self._lives.start_deleting(uid)
            return
        if phase in ("Succeeded", "Failed"):
            self._pending.pop(uid, None)
            return
        if self._lives.launch(uid) is not None:
            return
        if spec.get("nodeName") and not self._reconciled:
            return  # bound pods wait for reconciliation: their task may exist already
        if uid not in self._pending:
            self._pending[uid] = None
            self._revive_wanted = True
            self._want_pass()

    async def _act_on_pod(self, uid: str) -> None:
        if self._lives.deleting(uid):
            await self._progress_deletion(uid)
        phase = ((self._pods.get(uid) or {}).get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):  # the kubelet stops the pod's sandbox then
            await self._end_sandboxes(uid, why=f"its pod is {phase}")
        if self._pending and (self._suppressed or self._revive_wanted):
            await self._maybe_revive()

    async def _progress_deletion(self, uid: str) -> None:
        """Execute the lifecycle's next deletion step (``lifecycle.deletion``): KILL with the
        pod's grace (sidecars last), then DELETE grace 0 with uid once every task ended."""
        pod = self._pods.get(uid)
        mine = [t for t in self._tasks.values() if t.pod_uid == uid]
        views = [
            deletion.TaskView(task_id=t.task_id, container=t.container, terminal=t.terminal,
                              killing=t.killing)
            for t in mine
        ]
        for intent in deletion.step(pod=pod, tasks=views):
            if isinstance(intent, intents.Kill):
                await self._kill(self._tasks[intent.task_id], grace=intent.grace,
                                 why="its pod is deleted" if pod is not None
                                 else "its pod was force-deleted")
            elif isinstance(intent, intents.DeletePod) and pod is not None:
                meta = pod.get("metadata") or {}
                await self._kube.delete_pod_now(
                    namespace=str(meta.get("namespace") or "default"),
                    name=str(meta.get("name")),
                    uid=uid,
                )
            elif isinstance(intent, intents.Forget):
                self._lives.forget(uid)
                self._pods.pop(uid, None)
                self._parsed.pop(uid, None)
                self._sink.forget(uid)
                for task in mine:
                    self._tasks.pop(task.task_id, None)
                    self._kills.forget(task.task_id)

    async def _end_sandboxes(self, uid: str, *, why: str,
                             keep: ids.TaskId | None = None) -> None:
        """Kill the pod's live sandbox tasks (``podsandbox``) but ``keep``."""
        for rec in list(self._tasks.values()):
            if (rec.pod_uid == uid and taskids.is_sandbox(rec.container) and not rec.terminal
                    and not rec.killing and rec.task_id != keep):
                await self._kill(rec, grace=0.0, why=why)

    async def _kill_for_lifecycle(self, uid: str, task_id: ids.TaskId) -> None:
        rec = self._tasks.get(task_id)
        if rec is None or rec.terminal or rec.killing or rec.pod_uid != uid:
            return
        pod = self._pods.get(uid)
        grace = (pod or {}).get("spec", {}).get("terminationGracePeriodSeconds", 30)
        await self._kill(rec, grace=float(grace if grace is not None else 30),
                         why="its pod's lifecycle stops it")
