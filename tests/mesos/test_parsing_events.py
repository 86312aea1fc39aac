"""Fidelity: every event shape a real Mesos master sends decodes into the right typed value."""

from __future__ import annotations

import json

import pytest

from k8sbridge.mesos import errors, events, types
from k8sbridge.model import resources as res
from tests.mesos import fixtures as fx


def decode(raw: dict[str, object]) -> events.Event:
    return events.decode(json.dumps(raw).encode())


def test_subscribed_carries_the_id_interval_and_master_info() -> None:
    ev = decode(fx.SUBSCRIBED)
    assert isinstance(ev, events.Subscribed)
    assert ev.framework_id == fx.FRAMEWORK_ID
    assert ev.heartbeat_interval_seconds == 15.0
    assert ev.master is not None
    assert (ev.master.id, ev.master.hostname, ev.master.port) == (fx.MASTER_ID, "master-1", 5050)
    assert ev.master.version == "1.11.0"


def test_offers_are_nested_twice_and_parsed_fully() -> None:
    ev = decode(fx.OFFERS)
    assert isinstance(ev, events.Offers)
    assert [o.id for o in ev.offers] == [f"{fx.MASTER_ID}-O1", f"{fx.MASTER_ID}-O2"]
    offer = ev.offers[0]
    assert offer.agent_id == fx.AGENT_ID
    assert offer.framework_id == fx.FRAMEWORK_ID
    assert offer.hostname == "agent-1.example.com"
    assert offer.agent_url == "http://agent-1.example.com:5051"
    assert (offer.region, offer.zone) == ("eu-west", "eu-west-1a")
    assert offer.allocation_role == "k8s"
    assert offer.executor_ids == ("exec-1",)
    assert offer.resources.scalar("cpus") == 4.5
    assert offer.resources.scalar("mem") == 7168.0
    assert offer.resources.ranges("ports") == ((31000, 32000),)
    assert offer.resources.reserved("k8s").scalar("cpus") == 1.0
    assert {a.name: a.value_str for a in offer.attributes} == {
        "rack": "r1",
        "level": "10",
        "keys": "[1000-1500]",
    }


def test_pre_and_post_refinement_reservations_parse_to_the_same_resources() -> None:
    refined = types.Offer.parse(fx.offer(1, refined=True))
    legacy = types.Offer.parse(fx.offer(1, refined=False))
    assert refined.resources == legacy.resources
    assert legacy.resources.reserved("k8s").items[0].reservations == (
        res.Reservation(type="STATIC", role="k8s"),
    )


def test_a_single_offer_object_instead_of_a_list_is_accepted() -> None:
    ev = decode({"type": "OFFERS", "offers": {"offers": fx.offer(3)}})
    assert isinstance(ev, events.Offers) and len(ev.offers) == 1


def test_update_carries_data_uuid_and_container_details() -> None:
    ev = decode(fx.update())
    assert isinstance(ev, events.Update)
    st = ev.status
    assert st.task_id == "pod-abc.web"
    assert st.state == "TASK_RUNNING"
    assert st.data == b"hello"
    assert st.uuid == fx.UUID_B64  # verbatim: ACKNOWLEDGE echoes it unchanged
    assert st.needs_ack
    assert st.agent_id == fx.AGENT_ID
    assert st.executor_id == "pod-abc"
    assert st.source == "SOURCE_EXECUTOR"
    assert st.healthy is True
    assert st.container_id == "c1"
    assert st.ip_addresses == ("10.0.0.5",)
    assert st.timestamp == pytest.approx(1732569600.123456)
    assert not st.is_terminal


def test_a_master_generated_update_has_no_uuid_and_needs_no_ack() -> None:
    ev = decode(fx.update(with_uuid=False, state="TASK_LOST"))
    assert isinstance(ev, events.Update)
    assert ev.status.uuid is None and not ev.status.needs_ack
    assert ev.status.reason == "REASON_RECONCILIATION"
    assert ev.status.is_terminal


def test_error_message_is_nested_under_error() -> None:
    ev = decode(fx.ERROR)
    assert ev == events.Error("Framework failed over")


def test_failure_without_executor_means_the_agent_was_lost() -> None:
    assert decode(fx.FAILURE_AGENT_LOST) == events.Failure(agent_id=fx.AGENT_ID)
    assert decode(fx.FAILURE_EXECUTOR) == events.Failure(
        agent_id=fx.AGENT_ID, executor_id="exec-1", status=256
    )


def test_rescind_message_and_heartbeat() -> None:
    assert decode(fx.RESCIND) == events.Rescind(f"{fx.MASTER_ID}-O1")
    assert decode(fx.MESSAGE) == events.Message(
        agent_id=fx.AGENT_ID, executor_id="exec-1", data=b"\x00\x01binary"
    )
    assert decode(fx.HEARTBEAT) == events.Heartbeat()


def test_inverse_offers_and_operation_updates() -> None:
    inv = decode(fx.INVERSE_OFFERS)
    assert isinstance(inv, events.InverseOffers)
    assert inv.inverse_offers[0].start == 1732569600.0
    assert inv.inverse_offers[0].duration == 3600.0
    assert decode(fx.RESCIND_INVERSE_OFFER) == events.RescindInverseOffer(f"{fx.MASTER_ID}-O9")
    op = decode(fx.UPDATE_OPERATION_STATUS)
    assert isinstance(op, events.UpdateOperationStatus)
    assert (op.operation_id, op.state, op.uuid) == ("op-1", "OPERATION_FINISHED", fx.UUID_B64)


def test_an_unknown_event_type_is_kept_not_fatal() -> None:
    ev = decode({"type": "SOMETHING_NEW", "something_new": {}})
    assert isinstance(ev, events.UnknownEvent) and ev.type == "SOMETHING_NEW"
    assert events.event_type(ev) == "SOMETHING_NEW"


def test_legacy_defaults_in_master_output_parse() -> None:
    info = types.FrameworkInfo.parse(fx.LEGACY_FRAMEWORK_INFO)
    assert info.roles == ("*",) and info.failover_timeout == 0.0 and not info.checkpoint
    assert info.capabilities == ()


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"no": "type"}', id="no-type"),
        pytest.param(b'{"type": "OFFERS"}', id="offers-without-body"),
        pytest.param(b'{"type": "UPDATE", "update": {"status": {"state": "X"}}}', id="no-task-id"),
        pytest.param(
            b'{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING",'
            b'"uuid":"%%%"}}}',
            id="bad-base64",
        ),
        pytest.param(
            b'{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o"},"framework_id":{"value":"f"},'
            b'"agent_id":{"value":"a"},"hostname":"h","resources":[{"name":"cpus","type":"BAD"}]}]}}',
            id="bad-resource",
        ),
        pytest.param(b'{"type":"SUBSCRIBED","subscribed":{}}', id="subscribed-without-id"),
    ],
)
def test_malformed_events_raise_protocol_error(record: bytes) -> None:
    with pytest.raises(errors.ProtocolError):
        events.decode(record)
