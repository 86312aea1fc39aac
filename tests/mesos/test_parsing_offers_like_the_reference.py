"""The fast ``Offer.parse`` and ``events.decode`` give what the plain code gave, GC paused or not.

Why: OFFERS decoding was optimised for the issue 3 benchmark (exact-type checks, error texts
built only on error, a slot-level constructor, the collector paused while a big record is
decoded). The reference below is the parser as it was before, written the straightforward way;
generated offers, well-formed and damaged field by field, must give equal values or both a
``ProtocolError``.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.mesos import events, recordio, types
from k8sbridge.mesos import wirevalues as wv
from k8sbridge.mesos.errors import ProtocolError
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId


def reference_parse(raw: Any) -> types.Offer:
    what = "offer"
    raw = wv.as_obj(raw, what=what)
    offer_id = wv.id_value(raw.get("id"), what=f"{what}.id")
    what = f"offer {offer_id}"
    url = raw.get("url")
    agent_url = None
    if url:
        url = wv.as_obj(url, what=f"{what}.url")
        address = wv.as_obj(url.get("address", {}), what=f"{what}.url.address")
        host = address.get("hostname") or address.get("ip")
        if host and address.get("port"):
            agent_url = f"{url.get('scheme', 'http')}://{host}:{int(address['port'])}"
    fault = wv.as_obj(raw.get("domain") or {}, what=f"{what}.domain").get("fault_domain") or {}
    region = (fault.get("region") or {}).get("name")
    zone = (fault.get("zone") or {}).get("name")
    resources = wv.parse_resources(raw.get("resources"), what=f"{what}.resources")
    alloc = (raw.get("allocation_info") or {}).get("role")
    if alloc is None:
        roles = {r.allocation_role for r in resources if r.allocation_role}
        alloc = roles.pop() if len(roles) == 1 else None
    start = duration = None
    if raw.get("unavailability"):
        un = wv.as_obj(raw["unavailability"], what=f"{what}.unavailability")
        start = wv.parse_duration(un.get("start", {}), what=f"{what}.unavailability.start")
        if un.get("duration") is not None:
            duration = wv.parse_duration(un["duration"], what=f"{what}.unavailability.duration")
    return types.Offer(
        id=OfferId(offer_id),
        framework_id=FrameworkId(wv.id_value(raw.get("framework_id"), what=f"{what}.fw")),
        agent_id=AgentId(wv.id_value(raw.get("agent_id"), what=f"{what}.agent_id")),
        hostname=wv.req_str(raw, "hostname", what=what),
        resources=resources,
        attributes=wv.parse_attributes(raw.get("attributes"), what=f"{what}.attributes"),
        allocation_role=alloc,
        agent_url=agent_url,
        region=region,
        zone=zone,
        executor_ids=tuple(
            ExecutorId(wv.id_value(e, what=f"{what}.executor_ids"))
            for e in wv.as_list(raw.get("executor_ids"), what=f"{what}.executor_ids")
        ),
        unavailable_from=start,
        unavailable_for=duration,
    )


def good_offer(n: int) -> dict[str, Any]:
    return {
        "id": {"value": f"O{n}"},
        "framework_id": {"value": "F"},
        "agent_id": {"value": f"S{n}"},
        "hostname": f"agent-{n}",
        "url": {"scheme": "https", "address": {"ip": "10.0.0.1", "port": 5051}},
        "domain": {"fault_domain": {"region": {"name": "r"}, "zone": {"name": "z"}}},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.5},
             "allocation_info": {"role": "k8s"}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024},
             "reservations": [{"type": "DYNAMIC", "role": "k8s", "principal": "p"}],
             "allocation_info": {"role": "k8s"}},
            {"name": "ports", "type": "RANGES", "allocation_info": {"role": "k8s"},
             "ranges": {"range": [{"begin": 31000, "end": 31010}]}},
        ],
        "attributes": [
            {"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
            {"name": "gen", "type": "SCALAR", "scalar": {"value": 3}},
        ],
        "executor_ids": [{"value": "e1"}],
        "unavailability": {"start": {"nanoseconds": 10**18}, "duration": {"nanoseconds": 10**9}},
    }


FIELDS = ["id", "framework_id", "agent_id", "hostname", "url", "domain", "resources",
          "attributes", "executor_ids", "unavailability", "allocation_info"]
DAMAGE = st.sampled_from(
    [None, "", "x", 0, 1.5, True, [], {}, [{}], {"value": ""}, {"value": 7}, {"value": "v"},
     {"address": "x"}, {"address": {"hostname": "h", "port": "80"}}, {"fault_domain": "x"},
     [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}],
     [{"name": "a", "type": "TEXT"}], {"name": "a", "type": "SCALAR", "scalar": {"value": 1}},
     {"start": "x"}, {"role": "eng"}, "MISSING"]
)


# What ``events.decode`` turns into a ProtocolError for the client: the same outcome.
REJECTED = (ProtocolError, KeyError, TypeError, ValueError, AttributeError, OverflowError)


def outcome(raw: Any) -> Any:
    try:
        return types.Offer.parse(raw)
    except REJECTED:
        return "rejected"


def reference_outcome(raw: Any) -> Any:
    try:
        return reference_parse(raw)
    except REJECTED:
        return "rejected"


@settings(max_examples=400, deadline=None)
@given(damage=st.dictionaries(st.sampled_from(FIELDS), DAMAGE, max_size=3))
def test_offer_parse_matches_the_reference(damage: dict[str, Any]) -> None:
    raw = good_offer(1)
    for field, value in damage.items():
        if value == "MISSING":
            raw.pop(field, None)
        else:
            raw[field] = value
    assert outcome(raw) == reference_outcome(raw)


def test_a_well_formed_offer_has_every_field() -> None:
    offer = types.Offer.parse(good_offer(7))
    assert offer == reference_parse(good_offer(7))
    assert (offer.id, offer.framework_id, offer.agent_id, offer.hostname) == (
        "O7", "F", "S7", "agent-7"
    )
    assert offer.agent_url == "https://10.0.0.1:5051"
    assert (offer.region, offer.zone, offer.allocation_role) == ("r", "z", "k8s")
    assert offer.resources.scalar("cpus") == 2.5 and offer.resources.reserved("k8s").scalar(
        "mem"
    ) == 1024.0
    assert offer.executor_ids == ("e1",)
    assert (offer.unavailable_from, offer.unavailable_for) == (1e9, 1.0)
    assert [a.value_str for a in offer.attributes] == ["r1", "3"]
    with pytest.raises(ProtocolError, match="offer: expected an object"):
        types.Offer.parse([good_offer(7)])
    with pytest.raises(ProtocolError, match=r"offer O7\.executor_ids"):
        types.Offer.parse({**good_offer(7), "executor_ids": {}})


def big_offers_record(count: int) -> bytes:
    event = {"type": "OFFERS", "offers": {"offers": [good_offer(n) for n in range(count)]}}
    return json.dumps(event).encode()


def test_a_big_record_is_decoded_with_the_collector_paused_and_restored() -> None:
    record = big_offers_record(60)
    assert len(record) >= events.GC_PAUSE_MIN_BYTES
    seen: list[bool] = []
    original = events._decode

    def spy(rec: bytes) -> events.Event:
        seen.append(gc.isenabled())
        return original(rec)

    events._decode = spy  # type: ignore[assignment]
    try:
        assert gc.isenabled()
        event = events.decode(record)
        assert isinstance(event, events.Offers) and len(event.offers) == 60
        assert gc.isenabled() and seen == [False]
        events.decode(b'{"type":"HEARTBEAT"}')  # small: not paused
        assert seen == [False, True]
        gc.disable()  # someone else turned it off: it stays off
        try:
            events.decode(record)
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        events._decode = original  # type: ignore[assignment]


def test_a_bad_big_record_raises_and_restores_the_collector() -> None:
    record = big_offers_record(60)
    broken = record[:-2]  # invalid JSON
    with pytest.raises(ProtocolError, match="not valid JSON"):
        events.decode(broken)
    assert gc.isenabled()
    huge = record.replace(b'"value": 2.5', b'"value": 1' + b"0" * 400, 1)
    with pytest.raises(ProtocolError):
        events.decode(huge)
    assert gc.isenabled()
    framed = recordio.encode(record)
    (again,) = recordio.Decoder().feed(framed)
    assert isinstance(events.decode(again), events.Offers)
