"""The offer book: bounded holding, rescinds, grouping per (agent, role)."""

from __future__ import annotations

import pytest

from k8sbridge.model import ids
from k8sbridge.model.resources import parse_resources_flag
from k8sbridge.scheduler import offers


def _raw(offer_id: str, agent: str, role: str = "kubernetes") -> dict[str, object]:
    res = parse_resources_flag("cpus:2;mem:512").allocated_to(role)
    return {
        "id": {"value": offer_id},
        "framework_id": {"value": "F"},
        "agent_id": {"value": agent},
        "hostname": f"{agent}.local",
        "resources": res.to_raw(),
        "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}],
        "domain": {"fault_domain": {"region": {"name": "eu"}, "zone": {"name": "eu-1"}}},
    }


def test_offers_are_held_for_a_bounded_time_and_grouped() -> None:
    book = offers.OfferBook(hold_seconds=5.0)
    book.add(offers.parse_offer(_raw("o1", "a1"), now=0.0))
    book.add(offers.parse_offer(_raw("o2", "a1"), now=3.0))
    book.add(offers.parse_offer(_raw("o3", "a2", role="other"), now=3.0))
    held = next(iter(book))
    assert held.role == "kubernetes" and held.zone == "eu-1" and held.attributes[0].text == "r1"
    assert book.expired(now=4.0) == []
    assert book.expired(now=5.0) == [ids.OfferId("o1")]
    groups = book.by_agent()
    assert sorted(o.offer_id for o in groups[(ids.AgentId("a1"), "kubernetes")]) == ["o1", "o2"]
    assert [o.offer_id for o in groups[(ids.AgentId("a2"), "other")]] == ["o3"]
    assert book.rescind(ids.OfferId("o2")) is not None
    assert book.rescind(ids.OfferId("o2")) is None  # twice is harmless
    assert [o.offer_id for o in book.take([ids.OfferId("o1"), ids.OfferId("zz")])] == ["o1"]
    assert len(book) == 1
    book.clear()
    assert len(book) == 0


def test_a_malformed_offer_is_a_clear_error() -> None:
    with pytest.raises(offers.OfferError, match="malformed offer"):
        offers.parse_offer({"id": {"value": "x"}}, now=0.0)
