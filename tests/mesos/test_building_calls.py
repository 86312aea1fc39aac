"""Every call renders the exact v1 wire shape (the reference's ⚠ traps included)."""

from __future__ import annotations

import pytest

from k8sbridge.mesos import calls, types
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId, TaskId
from tests.mesos import fixtures as fx

FID = FrameworkId("fw-0000")
INFO = types.FrameworkInfo(
    name="k8sbridge",
    user="root",
    roles=("k8s", "k8s-batch"),
    principal="bridge",
    webui_url="http://bridge:8080",
    labels=(("team", "infra"),),
    capabilities=("MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE", "GPU_RESOURCES",
                  "REGION_AWARE"),
    min_allocatable={"k8s": [{"cpus": 0.1, "mem": 32.0}]},
)


def test_a_new_subscription_sets_no_framework_id_and_the_full_framework_info() -> None:
    call = calls.subscribe(framework_info=INFO, suppressed_roles=["k8s-batch"])
    assert "framework_id" not in call
    info = call["subscribe"]["framework_info"]
    assert info == {
        "user": "root",
        "name": "k8sbridge",
        "roles": ["k8s", "k8s-batch"],
        "failover_timeout": 604800.0,
        "checkpoint": True,
        "principal": "bridge",
        "webui_url": "http://bridge:8080",
        "labels": {"labels": [{"key": "team", "value": "infra"}]},
        "capabilities": [
            {"type": "MULTI_ROLE"},
            {"type": "PARTITION_AWARE"},
            {"type": "TASK_KILLING_STATE"},
            {"type": "GPU_RESOURCES"},
            {"type": "REGION_AWARE"},
        ],
        "offer_filters": {
            "k8s": {
                "min_allocatable_resources": {
                    "quantities": [{"quantities": {"cpus": {"value": 0.1}, "mem": {"value": 32.0}}}]
                }
            }
        },
    }
    assert "role" not in info  # MULTI_ROLE: roles only
    assert call["subscribe"]["suppressed_roles"] == ["k8s-batch"]


def test_a_resubscription_sets_both_framework_ids() -> None:
    call = calls.subscribe(framework_info=INFO.with_id(FID))
    assert call["framework_id"] == {"value": FID}
    assert call["subscribe"]["framework_info"]["id"] == {"value": FID}


def test_framework_info_round_trips() -> None:
    assert types.FrameworkInfo.parse(INFO.to_raw()) == INFO


def test_framework_info_rejects_bad_roles_and_capabilities() -> None:
    with pytest.raises(ValueError):
        types.FrameworkInfo(name="x", user="u", roles=("-bad",))
    with pytest.raises(ValueError):
        types.FrameworkInfo(name="x", user="u", capabilities=("FLYING",))
    with pytest.raises(ValueError):
        types.FrameworkInfo(name="x", user="u", roles=("a", "b"), capabilities=())


def test_accept_sends_the_operations_as_given_with_filters() -> None:
    op = {"type": "LAUNCH_GROUP", "launch_group": {"executor": {}, "task_group": {"tasks": []}}}
    call = calls.accept(
        framework_id=FID, offer_ids=[OfferId("o1")], operations=[op], refuse_seconds=30
    )
    assert call["type"] == "ACCEPT" and call["framework_id"] == {"value": FID}
    body = call["accept"]
    assert body["offer_ids"] == [{"value": "o1"}]
    assert body["filters"] == {"refuse_seconds": 30.0}
    assert body["operations"] == [op]


def test_reserve_and_unreserve_operations() -> None:
    target = res.Resources.from_scalars({"cpus": 1}).reserve(
        res.Reservation(type="DYNAMIC", role="k8s", principal="bridge")
    )
    assert calls.reserve(target)["reserve"]["resources"][0]["reservations"] == [
        {"type": "DYNAMIC", "role": "k8s", "principal": "bridge"}
    ]
    assert calls.unreserve(target)["type"] == "UNRESERVE"


def test_decline_revive_suppress_kill() -> None:
    assert calls.decline(framework_id=FID, offer_ids=[OfferId("o")], refuse_seconds=3600) == {
        "type": "DECLINE",
        "framework_id": {"value": FID},
        "decline": {"offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": 3600.0}},
    }
    assert calls.revive(framework_id=FID, roles=["k8s"])["revive"] == {"roles": ["k8s"]}
    assert calls.revive(framework_id=FID)["revive"] == {}
    assert calls.suppress(framework_id=FID, roles=["k8s"])["suppress"] == {"roles": ["k8s"]}
    kill = calls.kill(
        framework_id=FID, task_id=TaskId("t"), agent_id=AgentId("a"), grace_period_seconds=2.5
    )
    assert kill["kill"] == {
        "task_id": {"value": "t"},
        "agent_id": {"value": "a"},
        "kill_policy": {"grace_period": {"nanoseconds": 2_500_000_000}},
    }


def test_acknowledge_echoes_the_uuid_and_refuses_updates_without_one() -> None:
    status = types.TaskStatus.parse(fx.update()["update"]["status"])
    call = calls.acknowledge(framework_id=FID, status=status)
    assert call["acknowledge"] == {
        "agent_id": {"value": fx.AGENT_ID},
        "task_id": {"value": "pod-abc.web"},
        "uuid": fx.UUID_B64,
    }
    master_update = types.TaskStatus.parse(fx.update(with_uuid=False)["update"]["status"])
    with pytest.raises(ValueError, match="no uuid"):
        calls.acknowledge(framework_id=FID, status=master_update)


def test_reconcile_request_message_shutdown_teardown_update_framework() -> None:
    assert calls.reconcile(framework_id=FID)["reconcile"] == {"tasks": []}
    assert calls.reconcile(framework_id=FID, tasks={TaskId("t"): AgentId("a")})["reconcile"] == {
        "tasks": [{"task_id": {"value": "t"}, "agent_id": {"value": "a"}}]
    }
    one_cpu = res.Resources.from_scalars({"cpus": 1})
    req = calls.request(framework_id=FID, requests=[(None, one_cpu)])
    assert "requests" in req["request"] and "requests" not in req
    msg = calls.message(
        framework_id=FID, agent_id=AgentId("a"), executor_id=ExecutorId("e"), data=b"hi"
    )
    assert msg["message"]["data"] == "aGk="
    sd = calls.shutdown(framework_id=FID, executor_id=ExecutorId("e"), agent_id=AgentId("a"))
    assert sd["shutdown"] == {"executor_id": {"value": "e"}, "agent_id": {"value": "a"}}
    assert calls.teardown(framework_id=FID) == {"type": "TEARDOWN", "framework_id": {"value": FID}}
    upd = calls.update_framework(framework_info=INFO.with_id(FID), suppressed_roles=["k8s"])
    assert upd["framework_id"] == upd["update_framework"]["framework_info"]["id"]
    with pytest.raises(ValueError):
        calls.update_framework(framework_info=INFO)
    ops = calls.reconcile_operations(framework_id=FID, operations={"op": AgentId("a")})
    assert ops["reconcile_operations"]["operations"][0]["operation_id"] == {"value": "op"}
    ack = calls.acknowledge_operation_status(
        framework_id=FID, agent_id=AgentId("a"), operation_id="op", uuid=fx.UUID_B64
    )
    assert ack["acknowledge_operation_status"]["operation_id"] == {"value": "op"}


def test_inverse_offer_answers() -> None:
    acc = calls.accept_inverse_offers(framework_id=FID, inverse_offer_ids=["i1"], refuse_seconds=1)
    assert acc["accept_inverse_offers"] == {
        "inverse_offer_ids": [{"value": "i1"}],
        "filters": {"refuse_seconds": 1.0},
    }
    dec = calls.decline_inverse_offers(framework_id=FID, inverse_offer_ids=["i1"])
    assert dec["type"] == "DECLINE_INVERSE_OFFERS"
    assert dec["decline_inverse_offers"] == {"inverse_offer_ids": [{"value": "i1"}]}


def test_offer_constraints_render_the_proto_shape() -> None:
    rack = calls.attribute_constraint(attribute="rack", predicate="text_equals", value="r1")
    zone = calls.attribute_constraint(pseudo="ZONE", predicate="text_matches", value="eu-.*")
    gpu = calls.attribute_constraint(attribute="gpu", predicate="not_exists")
    assert calls.offer_constraints({"k8s": [[rack, zone], [gpu]]}) == {
        "role_constraints": {
            "k8s": {
                "groups": [
                    {
                        "attribute_constraints": [
                            {
                                "selector": {"attribute_name": "rack"},
                                "predicate": {"text_equals": {"value": "r1"}},
                            },
                            {
                                "selector": {"pseudoattribute_type": "ZONE"},
                                "predicate": {"text_matches": {"regex": "eu-.*"}},
                            },
                        ]
                    },
                    {
                        "attribute_constraints": [
                            {"selector": {"attribute_name": "gpu"}, "predicate": {"not_exists": {}}}
                        ]
                    },
                ]
            }
        }
    }
    with pytest.raises(ValueError):
        calls.attribute_constraint(attribute="rack", predicate="text_equals")
    with pytest.raises(ValueError):
        calls.attribute_constraint(attribute="rack", pseudo="ZONE", predicate="exists")
    with pytest.raises(ValueError):
        calls.attribute_constraint(attribute="rack", predicate="bigger_than", value="1")
