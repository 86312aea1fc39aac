"""The object store: current objects, a global resourceVersion, change history and watch fan-out.

Why: list/watch consistency is the heart of every Kubernetes client. All mutations happen in
synchronous methods (no ``await`` inside), so on the single event loop thread each one is atomic
and the store needs no locks: it is owned by the loop, the same way a single task owns its state.
Every change gets the next global resourceVersion (no-op writes get none), is appended to a bounded
history (so watches can resume from an RV; older RVs are "too old", answered with an in-stream
410), is handed to the persistence hook, and is offered to every open watcher of its kind.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from k8sbridge.devkube import watch

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Persist = Callable[[watch.Change], None]


class TooOld(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, *, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class TooLarge(Exception):
    """The encoded object exceeds the store's per-object size limit."""

    def __init__(self, *, size: int, limit: int) -> None:
        super().__init__(f"object is too large: {size} bytes (limit {limit} bytes)")
        self.size = size
        self.limit = limit


# Where each top-level field's value lies in an object's JSON: data[start:end].
Spans = dict[str, tuple[int, int]]


class Stored:
    """A stored object together with its JSON encoding (never mutated once stored)."""

    __slots__ = ("obj", "data", "spans")

    def __init__(self, obj: dict[str, Any], data: bytes, spans: Spans | None = None) -> None:
        self.obj = obj
        self.data = data
        self.spans = spans


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps builds one per call
_KEY = json.encoder.encode_basestring_ascii  # how the encoder writes a str key (ensure_ascii)


def encode(obj: dict[str, Any]) -> bytes:
    return _ENCODER.encode(obj).encode()


_HEADS: dict[str, bytes] = {}  # a top-level key as the encoder writes it, with its ":"


def encode_reusing(obj: dict[str, Any], old: Stored | None) -> tuple[bytes, Spans | None]:
    """``encode(obj)``, byte for byte, and its spans when ``obj`` shares a top-level object or
    list with ``old`` (an update shares what it does not change: a status write keeps the
    stored spec): such values are copied from ``old``'s JSON instead of encoded again (never
    the metadata: the commit writes its resourceVersion). The encoder writes an object as
    ``{``, then ``key:value`` pairs joined by ``,``, then ``}``, each value as it encodes it
    alone. Without sharing (creates, PUTs of decoded bodies) the whole object is encoded at
    once, without spans, which costs least."""
    olds = old.obj if old is not None else None
    if olds is None or not any(
            olds.get(key) is value and type(value) in (dict, list) and key != "metadata"
            for key, value in obj.items()):
        return encode(obj), None
    assert old is not None
    reusable = old.spans
    parts: list[bytes] = []
    spans: Spans = {}
    pos = 1  # past "{"
    for key, value in obj.items():
        if type(key) is not str:  # the encoder converts such keys: leave it to the encoder
            return encode(obj), None
        head = _HEADS.get(key)
        if head is None:
            head = _KEY(key).encode() + b":"
            if len(_HEADS) < 1024:
                _HEADS[key] = head
        span = reusable.get(key) if reusable is not None and key != "metadata" \
            and olds.get(key) is value else None
        if span is not None:
            fragment = old.data[span[0]:span[1]]
        else:
            fragment = _ENCODER.encode(value).encode()
        start = pos + len(head)
        spans[key] = (start, start + len(fragment))
        parts.append(head + fragment)
        pos = start + len(fragment) + 1  # past ","
    return b"{" + b",".join(parts) + b"}", spans


HISTORY_BYTES = 64 * 1024 * 1024  # the watch history's budget, in _cost units


def _cost(change: watch.Change) -> int:
    """What a retained change costs: its JSON and about as much again for its decoded form."""
    return 2 * len(change.data)


class Store:
    def __init__(
        self, *, history_size: int = 10_000, history_bytes: int = HISTORY_BYTES,
        persist: Persist | None = None, max_object_bytes: int = 1536 * 1024,
    ) -> None:
        self._rv = 0
        self._max_object_bytes = max_object_bytes
        self._sorted: dict[str, list[Key]] = {}  # cached key order per kind (None = stale)
        self._objects: dict[str, dict[Key, Stored]] = collections.defaultdict(dict)
        self._history: collections.deque[watch.Change] = collections.deque()
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._history_cost = 0  # sum of _cost over _history
        self._compacted = 0  # every change with rv > _compacted is in _history
        self._watchers: dict[str, set[watch.Watcher]] = collections.defaultdict(set)
        self._persist = persist
        self._versions: collections.Counter[str] = collections.Counter()  # changes per kind

    @property
    def rv(self) -> int:
        return self._rv

    def load(self, *, rv: int, objects: list[tuple[str, dict[str, Any]]]) -> None:
        """Restore persisted state (at startup, before serving)."""
        self._rv = max(self._rv, rv)
        for store_key, obj in objects:
            meta = obj["metadata"]
            self._objects[store_key][(meta.get("namespace", ""), meta["name"])] = Stored(
                obj, encode(obj)
            )
        self._sorted.clear()
        self._compacted = self._rv

    # --- reads ---------------------------------------------------------------------------

    def peek(self, store_key: str, namespace: str, name: str) -> Stored | None:
        return self._objects[store_key].get((namespace, name))

    def get(self, store_key: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A private, mutable copy of the object."""
        stored = self._objects[store_key].get((namespace, name))
        if stored is None:
            return None
        copy: dict[str, Any] = json.loads(stored.data)
        return copy

    def items(self, store_key: str, namespace: str | None = None) -> Iterator[Stored]:
        """Objects in (namespace, name) order."""
        objects = self._objects[store_key]
        keys = self._sorted.get(store_key)
        if keys is None:
            keys = self._sorted[store_key] = sorted(objects)
        for key in keys:
            if namespace is None or key[0] == namespace:
                stored = objects.get(key)
                if stored is not None:  # deleted while the caller iterates
                    yield stored

    def changes_since(self, rv: int, store_key: str) -> list[watch.Change] | None:
        """The changes of ``store_key`` after ``rv`` (oldest first), or None when some of them
        have left the history (the caller reads the objects instead)."""
        if rv < self._compacted:
            return None
        found: list[watch.Change] = []
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.store_key == store_key:
                found.append(change)
        found.reverse()
        return found

    def version(self, store_key: str) -> int:
        """How many changes a kind has had in this process (caches built from it compare)."""
        return self._versions[store_key]

    def count(self, store_key: str) -> int:
        return len(self._objects[store_key])

    def namespaced_keys(self) -> list[str]:
        return list(self._objects)

    # --- writes --------------------------------------------------------------------------

    def _commit(
        self, *, store_key: str, event: watch.EventType, obj: dict[str, Any],
        previous: Stored | None,
    ) -> Stored:
        old = previous.obj if previous is not None else None
        obj["metadata"]["resourceVersion"] = str(self._rv + 1)
        data, spans = encode_reusing(obj, previous)
        if event != "DELETED" and len(data) > self._max_object_bytes:
            raise TooLarge(size=len(data), limit=self._max_object_bytes)
        change = watch.Change(
            rv=self._rv + 1, store_key=store_key, type=event, obj=obj, data=data, old=old
        )
        if self._persist is not None:
            self._persist(change)  # first: if the disk write fails, nothing has changed
        self._rv += 1
        self._versions[store_key] += 1
        stored = Stored(obj, data, spans)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        objects = self._objects[store_key]
        if event == "DELETED":
            objects.pop(key, None)
            self._sorted.pop(store_key, None)
        else:
            if key not in objects:
                self._sorted.pop(store_key, None)
            objects[key] = stored
        self._history.append(change)
        self._history_cost += _cost(change)
        while len(self._history) > 1 and (
            len(self._history) > self._history_size or self._history_cost > self._history_bytes
        ):
            dropped = self._history.popleft()
            self._history_cost -= _cost(dropped)
            self._compacted = dropped.rv
        for watcher in list(self._watchers.get(store_key, ())):
            try:
                watcher.offer(change)
            except Exception:  # one broken watcher must not break the commit or the others
                log.exception("dropping a watcher of %s that failed to render a change", store_key)
                watcher.drop()
        return stored

    def create(self, store_key: str, obj: dict[str, Any]) -> Stored:
        """Store a new object (the caller checked it does not exist)."""
        return self._commit(store_key=store_key, event="ADDED", obj=obj, previous=None)

    def update(self, store_key: str, obj: dict[str, Any]) -> tuple[Stored, bool]:
        """Replace an existing object; returns (stored, changed). No-op writes keep the RV."""
        meta = obj["metadata"]
        current = self._objects[store_key][(meta.get("namespace", ""), meta["name"])]
        meta["resourceVersion"] = current.obj["metadata"]["resourceVersion"]
        if obj == current.obj:
            return current, False
        return self._commit(store_key=store_key, event="MODIFIED", obj=obj,
                            previous=current), True

    def delete(self, store_key: str, namespace: str, name: str) -> Stored:
        current = self._objects[store_key][(namespace, name)]
        obj: dict[str, Any] = json.loads(current.data)
        return self._commit(store_key=store_key, event="DELETED", obj=obj, previous=current)

    # --- watch ---------------------------------------------------------------------------

    def subscribe(self, watcher: watch.Watcher, *, since: int | None) -> None:
        """Register ``watcher``; ``since`` None means "send every current object as ADDED".

        Raises TooOld when changes after ``since`` have left the history.
        """
        if since is None:
            objects = self._objects[watcher.store_key]
            snapshot = [objects[k] for k in sorted(objects)]
            watcher.initial = (
                watch.line("ADDED", watcher.encoder(s.obj, s.data))
                for s in snapshot
                if watcher.matches(s.obj)
            )
        else:
            if since < self._compacted:
                raise TooOld(requested=since, oldest=self._compacted + 1)
            replay: list[bytes] = []
            for change in self._history:
                if change.rv > since and change.store_key == watcher.store_key:
                    rendered = watcher.render(change)
                    if rendered is not None:
                        replay.append(rendered)
            watcher.initial = replay
        self._watchers[watcher.store_key].add(watcher)

    def unsubscribe(self, watcher: watch.Watcher) -> None:
        self._watchers[watcher.store_key].discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
