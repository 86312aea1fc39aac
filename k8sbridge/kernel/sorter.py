"""Ordering policy of the allocator: which role, then which framework, gets an agent first.

Why a separate module: Mesos keeps the *policy* (a ``Sorter``: DRF or random) apart from the
*bookkeeping* (what each agent has left, owned by the allocator). A sorter knows only client
names, weights, the pool's scalar totals and how much each client holds; it never sees agents.
That keeps the fairness rules small enough to unit-test on their own (as Mesos'
``sorter_tests.cpp`` does) and lets the allocator be generic over the policy.

Clients are paths: a role ``a/b`` nests under ``a``. Hierarchical roles aggregate into their
parents as in Mesos' ``DRFSorter``: siblings are ordered by the share of their whole subtree
divided by their own weight, and the order is flattened depth-first. A client that also has
children (role ``a`` next to ``a/b``) competes with its children through a virtual ``.`` leaf
carrying its own allocation, exactly as Mesos does. Framework sorters use the same code with
flat names (framework ids contain no ``/``).

Pure and synchronous: no I/O, no clock; the random sorter takes a seeded ``random.Random``.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from typing import Protocol

__all__ = [
    "DEFAULT_WEIGHT",
    "DrfSorter",
    "RandomSorter",
    "Sorter",
    "SorterError",
    "make_sorter",
]

DEFAULT_WEIGHT = 1.0


class SorterError(ValueError):
    """A sorter was asked about a client it does not know, or an unknown kind was requested."""


class Sorter(Protocol):
    """The ordering policy the allocator consults (Mesos' ``sorter.hpp``, minus bookkeeping).

    ``allocated``/``unallocated`` carry scalar *quantities* (name -> amount, reservations and
    allocation roles already dropped); the sorter keeps only what it needs to order.
    """

    def add(self, client: str) -> None:
        """Add an inactive client (activate it to have it sorted)."""

    def remove(self, client: str) -> None: ...

    def contains(self, client: str) -> bool: ...

    def activate(self, client: str) -> None: ...

    def deactivate(self, client: str) -> None: ...

    def is_active(self, client: str) -> bool: ...

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Replace all weights (path -> weight); paths not named weigh ``DEFAULT_WEIGHT``."""

    def update_total(self, total: Mapping[str, float]) -> None:
        """The pool's scalar totals, the denominators of every share."""

    def allocated(self, client: str, quantities: Mapping[str, float]) -> None: ...

    def unallocated(self, client: str, quantities: Mapping[str, float]) -> None: ...

    def allocation(self, client: str) -> dict[str, float]:
        """What the client itself holds (not its sub-clients)."""

    def share(self, client: str) -> float:
        """The client's own dominant share divided by its weight."""

    def clients(self) -> list[str]: ...

    def sort(self) -> list[str]:
        """Active clients, most deserving first."""

    def iterate(self) -> Iterator[str]:
        """``sort()`` computed lazily, for callers that usually stop after a few clients.

        Each level's order is taken when the iteration reaches it; changing the allocation of
        the client just yielded moves keys only inside its own subtree, so the rest of the
        iteration is what ``sort()`` would have returned before the change (Mesos takes one
        ``sort()`` per agent).
        """


class _Node:
    """One path element. ``is_client`` nodes hold their own allocation (Mesos' ``.`` leaf)."""

    __slots__ = (
        "name",
        "path",
        "parent",
        "children",
        "is_client",
        "active",
        "own",
        "own_count",
        "subtree",
        "subtree_count",
        "active_below",
        "own_share",
        "subtree_share",
        "order",
        "entries",
        "key",
        "self_key",
    )

    def __init__(self, *, name: str, path: str, parent: _Node | None) -> None:
        self.name = name
        self.path = path
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.is_client = False
        self.active = False
        self.own: dict[str, float] = {}
        self.own_count = 0
        self.subtree: dict[str, float] = {}
        self.subtree_count = 0
        self.active_below = 0  # active clients in this subtree, self included
        # cached dominant shares divided by the node's weight (own / whole subtree)
        self.own_share = 0.0
        self.subtree_share = 0.0
        # DRF only: the sorted keys of this node's active entries (None = rebuild), the entry
        # of each key's path, this node's key in its parent's order and its own "." key.
        self.order: list[tuple[float, int, str]] | None = None
        self.entries: dict[str, tuple[bool, _Node]] = {}
        self.key: tuple[float, int, str] | None = None
        self.self_key: tuple[float, int, str] | None = None


def _add_into(target: dict[str, float], quantities: Mapping[str, float], sign: float) -> None:
    for name, value in quantities.items():
        new = round((target.get(name, 0.0) + sign * value) * 1000) / 1000
        if new > 0:
            target[name] = new
        else:
            target.pop(name, None)


class _TreeSorter:
    """Client tree and bookkeeping shared by both policies; subclasses define ``_order``."""

    def __init__(self) -> None:
        self._root = _Node(name="", path="", parent=None)
        self._clients: dict[str, _Node] = {}
        self._weights: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._cache: list[str] | None = None
        self._stale = False  # totals or weights changed since shares were computed

    # -- clients ------------------------------------------------------------------------------

    def _node(self, client: str) -> _Node:
        node = self._clients.get(client)
        if node is None:
            raise SorterError(f"unknown sorter client {client!r}")
        return node

    def add(self, client: str) -> None:
        if not client:
            raise SorterError("sorter client name must not be empty")
        if client in self._clients:
            raise SorterError(f"sorter client {client!r} already added")
        node = self._root
        path = ""
        for part in client.split("/"):
            path = f"{path}/{part}" if path else part
            child = node.children.get(part)
            if child is None:
                child = _Node(name=part, path=path, parent=node)
                node.children[part] = child
            node = child
        node.is_client = True
        self._clients[client] = node
        self._invalidate(node)

    def remove(self, client: str) -> None:
        self._fresh()
        node = self._node(client)
        self.deactivate(client)
        if node.own:
            self._propagate(node, dict(node.own), -1.0, -node.own_count)
        node.own = {}
        node.own_count = 0
        node.own_share = 0.0
        node.is_client = False
        del self._clients[client]
        # Prune internal nodes that hold no client any more.
        while node.parent is not None and not node.is_client and not node.children:
            del node.parent.children[node.name]
            node = node.parent
        self._invalidate(node)

    def contains(self, client: str) -> bool:
        return client in self._clients

    def clients(self) -> list[str]:
        return list(self._clients)

    def activate(self, client: str) -> None:
        node = self._node(client)
        if not node.active:
            node.active = True
            self._bump_active(node, +1)

    def deactivate(self, client: str) -> None:
        node = self._node(client)
        if node.active:
            node.active = False
            self._bump_active(node, -1)

    def is_active(self, client: str) -> bool:
        return self._node(client).active

    def _bump_active(self, node: _Node, delta: int) -> None:
        cur: _Node | None = node
        while cur is not None:
            cur.active_below += delta
            cur = cur.parent
        self._invalidate(node)

    def _invalidate(self, node: _Node) -> None:
        """The entries below ``node``'s ancestors changed: rebuild their orders lazily."""
        cur: _Node | None = node
        while cur is not None:
            cur.order = None
            cur = cur.parent
        self._cache = None

    # -- quantities ---------------------------------------------------------------------------

    def update_weights(self, weights: Mapping[str, float]) -> None:
        for role, weight in weights.items():
            if not weight > 0:
                raise SorterError(f"weight of {role!r} must be positive, got {weight}")
        self._weights = dict(weights)
        self._stale = True
        self._cache = None

    def update_total(self, total: Mapping[str, float]) -> None:
        self._total = {name: value for name, value in total.items() if value > 0}
        self._stale = True  # refreshed once before shares are next used (agents come in bulk)
        self._cache = None

    def _fresh(self) -> None:
        if self._stale:
            self._stale = False
            self._refresh_all()

    def _refresh(self, node: _Node) -> None:
        weight = self._weights.get(node.path, DEFAULT_WEIGHT)
        node.own_share = self._dominant(node.own) / weight
        node.subtree_share = self._dominant(node.subtree) / weight

    def _refresh_all(self) -> None:
        stack = list(self._root.children.values())
        self._root.order = None
        while stack:
            node = stack.pop()
            self._refresh(node)
            node.order = None
            stack.extend(node.children.values())
        self._cache = None

    def allocated(self, client: str, quantities: Mapping[str, float]) -> None:
        self._fresh()
        node = self._node(client)
        _add_into(node.own, quantities, +1.0)
        node.own_count += 1
        self._propagate(node, quantities, +1.0, +1)

    def unallocated(self, client: str, quantities: Mapping[str, float]) -> None:
        self._fresh()
        node = self._node(client)
        _add_into(node.own, quantities, -1.0)
        delta = -1 if node.own_count > 0 else 0
        node.own_count += delta
        self._propagate(node, quantities, -1.0, delta)

    def _propagate(
        self, node: _Node, quantities: Mapping[str, float], sign: float, count: int
    ) -> None:
        cur: _Node | None = node
        while cur is not None and cur is not self._root:
            _add_into(cur.subtree, quantities, sign)
            cur.subtree_count = max(0, cur.subtree_count + count)
            self._refresh(cur)
            self._rekey(cur, own_changed=cur is node)
            cur = cur.parent
        self._cache = None

    def _rekey(self, node: _Node, *, own_changed: bool) -> None:
        """``node``'s shares or counts changed (a hook for incremental orders)."""

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._node(client).own)

    def subtree_allocation(self, path: str) -> dict[str, float]:
        """What a path holds including every client below it (e.g. a parent role)."""
        node = self._root
        for part in path.split("/"):
            child = node.children.get(part)
            if child is None:
                return {}
            node = child
        return dict(node.subtree)

    def weight(self, path: str) -> float:
        return self._weights.get(path, DEFAULT_WEIGHT)

    def _dominant(self, held: Mapping[str, float]) -> float:
        share = 0.0
        total = self._total
        for name, value in held.items():
            denominator = total.get(name)
            if denominator:
                ratio = value / denominator
                if ratio > share:
                    share = ratio
        return share

    def share(self, client: str) -> float:
        self._fresh()
        return self._node(client).own_share

    # -- ordering -----------------------------------------------------------------------------

    def sort(self) -> list[str]:
        self._fresh()
        if self._cache is None:
            out: list[str] = []
            self._flatten(self._root, out)
            self._cache = out
        return list(self._cache)

    def _flatten(self, node: _Node, out: list[str]) -> None:
        # Entries: (is_self, node). The node's own allocation competes as a virtual leaf.
        entries: list[tuple[bool, _Node]] = [
            (False, child) for child in node.children.values() if child.active_below > 0
        ]
        if node.is_client and node.active and node is not self._root:
            entries.append((True, node))
        if not entries:
            return
        for is_self, child in self._order(entries):
            if is_self or not child.children:
                out.append(child.path)  # a client (plain leaves need no recursion)
            else:
                self._flatten(child, out)

    def _order(self, entries: list[tuple[bool, _Node]]) -> list[tuple[bool, _Node]]:
        raise NotImplementedError

    def _sort_from_scratch(self) -> list[str]:
        """Test hook: the order computed without any incremental state."""
        self._fresh()
        out: list[str] = []
        _TreeSorter._flatten(self, self._root, out)
        return out


class DrfSorter(_TreeSorter):
    """Weighted Dominant Resource Fairness (Mesos' ``DRFSorter``).

    Siblings are ordered by (dominant share / weight, number of grants held, path). The order
    is kept incrementally: every node keeps its entries' keys sorted, and a change of one
    client's allocation moves only its path's keys (bisect), so a pass over thousands of agents
    does not re-sort every role and framework after each grant.
    """

    def _rekey(self, node: _Node, *, own_changed: bool) -> None:
        parent = node.parent
        if parent is not None and parent.order is not None and node.key is not None:
            new = (node.subtree_share, node.subtree_count, node.path)
            if new != node.key:
                if not _move(parent.order, node.key, new):
                    parent.order = None  # out of step: rebuild at the next sort
                node.key = new
        if own_changed and node.order is not None and node.self_key is not None:
            new = (node.own_share, node.own_count, node.path + "/.")
            if new != node.self_key:
                if not _move(node.order, node.self_key, new):
                    node.order = None
                node.self_key = new

    def _rebuild(self, node: _Node) -> list[tuple[float, int, str]]:
        keys: list[tuple[float, int, str]] = []
        entries: dict[str, tuple[bool, _Node]] = {}
        for child in node.children.values():
            if child.active_below > 0:
                child.key = (child.subtree_share, child.subtree_count, child.path)
                keys.append(child.key)
                entries[child.path] = (False, child)
            else:
                child.key = None
        if node.is_client and node.active and node is not self._root:
            node.self_key = (node.own_share, node.own_count, node.path + "/.")
            keys.append(node.self_key)
            entries[node.self_key[2]] = (True, node)
        else:
            node.self_key = None
        keys.sort()
        node.order = keys
        node.entries = entries
        return keys

    def iterate(self) -> Iterator[str]:
        self._fresh()
        return self._iterate(self._root)

    def _iterate(self, node: _Node) -> Iterator[str]:
        order = node.order if node.order is not None else self._rebuild(node)
        entries = node.entries
        for key in order[:]:  # a snapshot: grants below move keys while we iterate
            is_self, child = entries[key[2]]
            if is_self or not child.children:
                yield child.path
            else:
                yield from self._iterate(child)

    def _flatten(self, node: _Node, out: list[str]) -> None:
        order = node.order if node.order is not None else self._rebuild(node)
        entries = node.entries
        for key in order:
            is_self, child = entries[key[2]]
            if is_self or not child.children:
                out.append(child.path)
            else:
                self._flatten(child, out)

    def _order(self, entries: list[tuple[bool, _Node]]) -> list[tuple[bool, _Node]]:
        # Only the from-scratch reference order uses this (``_sort_from_scratch``).
        return sorted(entries, key=_drf_key)


def _move(
    order: list[tuple[float, int, str]], old: tuple[float, int, str], new: tuple[float, int, str]
) -> bool:
    """Replace ``old`` by ``new`` keeping ``order`` sorted; False if ``old`` is not there."""
    index = bisect.bisect_left(order, old)
    if index >= len(order) or order[index] != old:
        return False
    del order[index]
    bisect.insort(order, new)
    return True


def _drf_key(entry: tuple[bool, _Node]) -> tuple[float, int, str]:
    is_self, node = entry
    if is_self:  # Mesos' virtual "." leaf: the node's own allocation next to its children
        return (node.own_share, node.own_count, node.path + "/.")
    return (node.subtree_share, node.subtree_count, node.path)


class RandomSorter(_TreeSorter):
    """Weighted random order at every level of the tree (Mesos' ``RandomSorter``).

    Uses Efraimidis-Spirakis keys (``u ** (1 / weight)``, largest first), so a client with
    twice the weight is twice as likely to come first among two.
    """

    def __init__(self, *, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def sort(self) -> list[str]:
        self._cache = None  # a fresh draw on every call
        return super().sort()

    def iterate(self) -> Iterator[str]:
        return iter(self.sort())

    def _order(self, entries: list[tuple[bool, _Node]]) -> list[tuple[bool, _Node]]:
        keyed = [
            (self._rng.random() ** (1.0 / self.weight(node.path)), index)
            for index, (_, node) in enumerate(entries)
        ]
        keyed.sort(reverse=True)
        return [entries[index] for _, index in keyed]


def make_sorter(kind: str, *, rng: random.Random) -> DrfSorter | RandomSorter:
    """``drf`` or ``random`` (Mesos' ``--role_sorter`` / ``--framework_sorter`` values)."""
    if kind == "drf":
        return DrfSorter()
    if kind == "random":
        return RandomSorter(rng=rng)
    raise SorterError(f"unknown sorter {kind!r} (want 'drf' or 'random')")
