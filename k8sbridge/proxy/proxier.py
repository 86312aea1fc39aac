"""The proxy's one stateful component: the Services and EndpointSlices that exist, and the
rules programmed for them.

Why one task owning everything (no locks): watch events only update the stores and mark a
Service dirty; the sync loop renders the dirty Services (``rules.render``, pure) and commits
the difference to the table as one nftables transaction, so the kernel never sees half a
change. The difference is taken between the dirty Services' old rules merged and their new
rules merged (``rules.diff_many``), not Service by Service, as a cluster IP or a NodePort can
pass from one Service to another within one sync. Events that arrive during a commit are
coalesced into the next one. The first sync after start, and any sync after nft refused a
transaction (the table was changed behind our back), replaces the whole table atomically
instead. On stop the table is deleted, as ``kube-proxy --cleanup`` does.

Why per-Service rendering: at 1,000 Services × 10 endpoints the ruleset has some 11,000
chains; re-rendering and diffing all of it for each change costs more than the 200 ms target
(``bench/bench_proxy.py``), rendering only the changed Service does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from k8sbridge.proxy import model, nft, rules

__all__ = ["Proxier"]

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after nft refused a transaction
RawObject = dict[str, Any]
EMPTY = rules.Ruleset(chains={}, affinity={}, elements={})


def _key(raw: RawObject) -> str:
    meta = raw.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _service_of(raw: RawObject) -> str | None:
    meta = raw.get("metadata") or {}
    name = (meta.get("labels") or {}).get(model.SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or 'default'}/{name}" if name else None


class Proxier:
    def __init__(self, *, config: rules.ProxyConfig, tool: nft.Nft,
                 on_sync: Callable[[float, int], None] | None = None) -> None:
        self.config = config
        self.tool = tool
        self.services: dict[str, RawObject] = {}
        self.slices: dict[str, dict[str, RawObject]] = {}  # service key → slice key → slice
        self._slice_owner: dict[str, str] = {}  # slice key → service key
        self._applied: dict[str, rules.Ruleset] = {}
        self._dirty: set[str] = set()
        self._full = True
        self._wake = asyncio.Event()
        self._on_sync = on_sync  # (seconds the commit took, Services in it); for benchmarks
        self.syncs = 0

    # -- the stores (called by the watches) ----------------------------------------------

    def _touch(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    def replace_services(self, items: list[RawObject]) -> None:
        fresh = {_key(raw): raw for raw in items}
        for key in set(self.services) | set(fresh):
            if self.services.get(key) != fresh.get(key):
                self._touch(key)
        self.services = fresh

    def update_service(self, kind: str, raw: RawObject) -> None:
        key = _key(raw)
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = raw
        self._touch(key)

    def replace_slices(self, items: list[RawObject]) -> None:
        for key in list(self._slice_owner):
            self.update_slice("DELETED", {"metadata": {"namespace": key.split("/")[0],
                                                       "name": key.split("/", 1)[1]}})
        for raw in items:
            self.update_slice("ADDED", raw)

    def update_slice(self, kind: str, raw: RawObject) -> None:
        key = _key(raw)
        owner = self._slice_owner.pop(key, None)
        if owner is not None:
            self.slices.get(owner, {}).pop(key, None)
            self._touch(owner)
        service = _service_of(raw)
        if kind == "DELETED" or service is None:
            return
        self._slice_owner[key] = service
        self.slices.setdefault(service, {})[key] = raw
        self._touch(service)

    # -- planning and committing ---------------------------------------------------------

    def plan(self, key: str) -> rules.Ruleset:
        """The rules of Service ``key`` (empty when it does not exist)."""
        raw = self.services.get(key)
        if raw is None:
            return EMPTY
        slices = list(self.slices.get(key, {}).values())
        ports = [(sp, model.endpoints_of(sp, slices)) for sp in model.service_ports(raw)]
        return rules.render(ports, self.config)

    async def sync(self) -> None:
        """Commit what changed since the last sync (everything after a failure)."""
        started = time.perf_counter()
        dirty, self._dirty = self._dirty, set()
        self._wake.clear()
        whole = self._full
        try:
            if whole:
                desired = {key: self.plan(key) for key in self.services}
                await self.tool.apply(rules.full_text(rules.merge(desired.values()), self.config))
                self._applied, self._full = desired, False
                count = len(desired)
            else:
                planned = {key: self.plan(key) for key in dirty}
                text = rules.diff_many(((self._applied.get(key, EMPTY), new)
                                        for key, new in planned.items()), self.config)
                await self.tool.apply(text)
                for key, new in planned.items():
                    if new.chains or new.affinity or any(new.elements.values()):
                        self._applied[key] = new
                    else:
                        self._applied.pop(key, None)
                count = len(planned)
        except nft.NftError:
            self._full = True
            self._wake.set()
            raise
        self.syncs += 1
        seconds = time.perf_counter() - started
        if whole or count > 1:
            log.info("programmed %d Service(s) in %.0f ms%s", count, seconds * 1000,
                     " (the whole table)" if whole else "")
        else:
            log.debug("programmed %d Service(s) in %.0f ms", count, seconds * 1000)
        if self._on_sync is not None:
            self._on_sync(seconds, count)

    async def run(self, *, watches: list[asyncio.Task[Any]], listed: asyncio.Event,
                  stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Sync once ``listed`` is set, then whenever something changes, until ``stop``;
        then delete the table. ``watches`` (tasks feeding the stores) are cancelled on the
        way out, and one that ends early ends this too."""
        waiter = asyncio.ensure_future(stop.wait())
        lister = asyncio.ensure_future(listed.wait())
        try:
            await asyncio.wait([waiter, lister, *watches], return_when=asyncio.FIRST_COMPLETED)
            while not stop.is_set():
                for task in watches:
                    if task.done():
                        task.result()  # its error, if any
                        raise RuntimeError("a watch ended")
                try:
                    await self.sync()
                    ready.set()
                except nft.NftError as e:
                    log.error("programming the rules failed (replacing the whole table "
                              "next): %s", e)
                    await asyncio.wait([waiter], timeout=RETRY_SECONDS)
                    continue
                wake = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([waiter, wake, *watches],
                                   return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
        finally:
            waiter.cancel()
            lister.cancel()
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            try:
                await self.tool.apply(rules.delete_table_text(self.config))
            except nft.NftError as e:
                log.error("could not remove the table: %s", e)
            self.tool.close()
