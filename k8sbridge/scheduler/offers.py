"""The offer book: which offers we hold right now, since when, and which are too old to keep.

Why its own module: holding offers is where frameworks hurt their neighbours (hoarding,
forgetting a rescind, declining one offer and losing the batch). The book is owned by the
scheduler loop's single task (no locks); it only records facts — the loop decides when to place,
accept or decline — and it makes the bound on holding time explicit: ``expired(now)`` lists
offers held longer than ``hold_seconds`` so the loop declines them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from k8sbridge.model import ids
from k8sbridge.model.resources import Attribute, ResourceError, Resources

__all__ = ["HeldOffer", "OfferBook", "OfferError", "parse_offer"]


class OfferError(ValueError):
    """An offer we cannot read (it is declined, never silently kept)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HeldOffer:
    offer_id: ids.OfferId
    agent_id: ids.AgentId
    hostname: str
    role: str
    resources: Resources
    attributes: tuple[Attribute, ...]
    region: str | None
    zone: str | None
    received: float  # monotonic seconds


def parse_offer(raw: Mapping[str, Any], *, now: float) -> HeldOffer:
    try:
        resources = Resources.parse(raw.get("resources") or [])
        role = (raw.get("allocation_info") or {}).get("role")
        if role is None:
            roles = {r.allocation_role for r in resources if r.allocation_role}
            role = roles.pop() if len(roles) == 1 else "*"
        fault = (raw.get("domain") or {}).get("fault_domain") or {}
        return HeldOffer(
            offer_id=ids.OfferId(str(raw["id"]["value"])),
            agent_id=ids.AgentId(str(raw["agent_id"]["value"])),
            hostname=str(raw.get("hostname") or ""),
            role=str(role),
            resources=resources,
            attributes=tuple(Attribute.parse(a) for a in raw.get("attributes") or []),
            region=(fault.get("region") or {}).get("name"),
            zone=(fault.get("zone") or {}).get("name"),
            received=now,
        )
    except (KeyError, TypeError, ValueError, ResourceError) as e:
        raise OfferError(f"malformed offer: {e}") from e


class OfferBook:
    def __init__(self, *, hold_seconds: float) -> None:
        self._hold = hold_seconds
        self._offers: dict[ids.OfferId, HeldOffer] = {}

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self) -> Iterator[HeldOffer]:
        return iter(list(self._offers.values()))

    def __contains__(self, offer_id: object) -> bool:
        return offer_id in self._offers

    def add(self, offer: HeldOffer) -> None:
        self._offers[offer.offer_id] = offer

    def rescind(self, offer_id: ids.OfferId) -> HeldOffer | None:
        return self._offers.pop(offer_id, None)

    def take(self, offer_ids: Iterable[ids.OfferId]) -> list[HeldOffer]:
        """Remove and return these offers (they are being accepted or declined)."""
        out = []
        for oid in offer_ids:
            offer = self._offers.pop(oid, None)
            if offer is not None:
                out.append(offer)
        return out

    def take_all(self) -> list[HeldOffer]:
        out = list(self._offers.values())
        self._offers.clear()
        return out

    def expired(self, *, now: float) -> list[ids.OfferId]:
        return [o.offer_id for o in self._offers.values() if now - o.received >= self._hold]

    def by_agent(self) -> dict[tuple[ids.AgentId, str], list[HeldOffer]]:
        """Offers grouped by (agent, role): one ACCEPT may combine exactly such a group."""
        out: dict[tuple[ids.AgentId, str], list[HeldOffer]] = {}
        for offer in self._offers.values():
            out.setdefault((offer.agent_id, offer.role), []).append(offer)
        return out

    def clear(self) -> None:
        """Forget everything (after a re-subscription every old offer is void)."""
        self._offers.clear()
