"""The framework driver against a replay master speaking Mesos' framing and status codes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge.mesos import calls, errors, events, framework, types
from k8sbridge.mesos.client import ClientConfig, MesosClient
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId, TaskId
from tests.mesos import fixtures as fx
from tests.mesos.helpers import Recorder, make_tls, running
from tests.mesos.replay import ReplayMaster, Script

INFO = types.FrameworkInfo(name="k8sbridge-test", user="root", roles=("k8s",))
REMOVED = "Framework has been removed"


def make(
        *masters: str,
        handler: Recorder | None = None,
        store: framework.FrameworkIdStore | None = None,
        client: dict[str, object] | None = None,
        **settings: object,
) -> tuple[framework.Framework, Recorder]:
    recorder = handler or Recorder()
    options: dict[str, object] = {"call_timeout": 5, "connect_timeout": 2, **(client or {})}
    cfg = ClientConfig(masters=masters, **options)  # type: ignore[arg-type]
    fw = framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=INFO,
            client=cfg,
            backoff_initial=0.05,
            backoff_max=0.2,
            **settings,  # type: ignore[arg-type]
        ),
        handler=recorder,
        id_store=store,
        _rng=random.Random(7),
    )
    return fw, recorder


@pytest.fixture
async def master() -> AsyncIterator[ReplayMaster]:
    m = ReplayMaster()
    await m.start()
    yield m
    await m.stop()


@pytest.fixture
async def second_master() -> AsyncIterator[ReplayMaster]:
    m = ReplayMaster()
    await m.start()
    yield m
    await m.stop()


def subscribed(interval: float = 15.0, framework_id: str = fx.FRAMEWORK_ID) -> bytes:
    raw = json.loads(json.dumps(fx.SUBSCRIBED))
    raw["subscribed"]["heartbeat_interval_seconds"] = interval
    raw["subscribed"]["framework_id"]["value"] = framework_id
    return fx.frame(raw)


def is_update(task_id: str) -> object:
    return lambda e: isinstance(e, events.Update) and e.status.task_id == task_id


async def test_subscribes_delivers_every_event_and_acks_only_uuid_updates_after_the_handler(
        master: ReplayMaster,
) -> None:
    chunks = b"".join(
        [
            subscribed(),
            fx.frame(fx.HEARTBEAT),
            fx.frame(fx.OFFERS),
            fx.frame(fx.update("with-uuid")),
            fx.frame(fx.update("no-uuid", with_uuid=False)),
            fx.frame(fx.RESCIND),
            fx.frame(fx.MESSAGE),
            fx.frame(fx.FAILURE_AGENT_LOST),
            fx.frame(fx.INVERSE_OFFERS),
            fx.frame(fx.UPDATE_OPERATION_STATUS),
        ]
    )
    # Split the stream at odd places: records straddle chunk boundaries.
    master.scripts.append(Script(chunks=[chunks[i : i + 97] for i in range(0, len(chunks), 97)]))
    store = framework.MemoryFrameworkIdStore()
    fw, rec = make(master.address, store=store)
    rec.gate = asyncio.Event()
    async with running(fw) as run:
        await run.ready()
        assert store.framework_id == fx.FRAMEWORK_ID
        assert fw.framework_id == fx.FRAMEWORK_ID
        await asyncio.sleep(0.2)
        assert master.calls_of("ACKNOWLEDGE") == []  # the handler has not returned yet
        rec.gate.set()
        ack = await master.wait_for_call("ACKNOWLEDGE")
        await rec.wait_for(lambda e: isinstance(e, events.UpdateOperationStatus))
        await asyncio.sleep(0.1)
    assert ack.body == {
        "type": "ACKNOWLEDGE",
        "framework_id": {"value": fx.FRAMEWORK_ID},
        "acknowledge": {
            "agent_id": {"value": fx.AGENT_ID},
            "task_id": {"value": "with-uuid"},
            "uuid": fx.UUID_B64,
        },
    }
    assert ack.headers["Mesos-Stream-Id"] == "stream-1"
    assert len(master.calls_of("ACKNOWLEDGE")) == 1  # never the uuid-less master update
    kinds = [events.event_type(e) for e in rec.events]
    assert kinds == [
        "SUBSCRIBED",
        "OFFERS",
        "UPDATE",
        "UPDATE",
        "RESCIND",
        "MESSAGE",
        "FAILURE",
        "INVERSE_OFFERS",
        "UPDATE_OPERATION_STATUS",
    ]
    sub = master.subscribes[0]
    assert "framework_id" not in sub.body
    assert sub.body["subscribe"]["framework_info"]["roles"] == ["k8s"]
    assert sub.body["subscribe"]["framework_info"]["checkpoint"] is True
    assert "Mesos-Stream-Id" not in sub.headers
    assert sub.headers["Content-Type"] == "application/json"
    assert sub.headers["Accept"] == "application/json"
    snap = fw.metrics.snapshot()
    assert snap["events/HEARTBEAT"] == 1 and snap["events/OFFERS"] == 1
    assert snap["calls/SUBSCRIBE/ok"] == 1 and snap["calls/ACKNOWLEDGE/ok"] == 1


async def test_a_failing_handler_is_logged_and_its_update_not_acknowledged(
        master: ReplayMaster,
) -> None:
    master.scripts.append(
        Script(chunks=[subscribed(), fx.frame(fx.update("t1")), fx.frame(fx.OFFERS)])
    )
    fw, rec = make(master.address)
    rec.fail_updates = True
    async with running(fw):
        await rec.wait_for(lambda e: isinstance(e, events.Offers))
    assert master.calls_of("ACKNOWLEDGE") == []
    assert fw.metrics.get("handler_errors") == 1


async def test_bad_input_on_the_stream_is_logged_and_survived(
        master: ReplayMaster, caplog: pytest.LogCaptureFixture
) -> None:
    master.scripts.append(
        Script(
            chunks=[
                subscribed(),
                fx.frame(fx.HEARTBEAT)[:-1] + b"x",  # same length, invalid JSON
                fx.frame({"type": "NEW"}),  # an unknown event type
                fx.frame({"type": "UPDATE", "update": {"status": {"state": "TASK_RUNNING"}}}),
                fx.frame(fx.update("a-task-nobody-launched")),  # unknown to the framework
                fx.frame(fx.OFFERS),
            ]
        )
    )
    fw, rec = make(master.address)
    async with running(fw) as run:
        await rec.wait_for(lambda e: isinstance(e, events.Offers))
        assert not run.task.done()
        await master.wait_for_call("ACKNOWLEDGE")
    assert [events.event_type(e) for e in rec.events] == ["SUBSCRIBED", "UPDATE", "OFFERS"]
    assert fw.metrics.get("decode_errors") == 2
    assert fw.metrics.get("events/NEW") == 1
    assert len(master.subscribes) == 1  # none of it cost the subscription
    assert "undecodable event" in caplog.text and "unknown type NEW" in caplog.text


async def test_a_stream_cut_mid_record_resubscribes_with_the_stored_id(
        master: ReplayMaster,
) -> None:
    master.scripts.append(
        Script(chunks=[subscribed(), fx.frame(fx.OFFERS)[:50]], hold=False, stream_id="s1")
    )
    master.scripts.append(Script(chunks=[subscribed(), fx.frame(fx.RESCIND)], stream_id="s2"))
    fw, rec = make(master.address)
    async with running(fw):
        await rec.wait_for(lambda e: isinstance(e, events.Rescind))
        await fw.decline([OfferId("o")])
    assert len(master.subscribes) == 2
    again = master.subscribes[1].body
    assert again["framework_id"] == {"value": fx.FRAMEWORK_ID}
    assert again["subscribe"]["framework_info"]["id"] == {"value": fx.FRAMEWORK_ID}
    assert master.calls_of("DECLINE")[0].headers["Mesos-Stream-Id"] == "s2"
    assert fw.metrics.get("reconnects") >= 1
    assert not any(isinstance(e, events.Offers) for e in rec.events)


async def test_a_bad_record_length_drops_the_stream_and_resubscribes(
        master: ReplayMaster,
) -> None:
    master.scripts.append(Script(chunks=[subscribed(), b"12x\n{}"]))
    master.scripts.append(Script(chunks=[subscribed(), fx.frame(fx.RESCIND)], stream_id="s2"))
    fw, rec = make(master.address)
    async with running(fw):
        await rec.wait_for(lambda e: isinstance(e, events.Rescind))
    assert len(master.subscribes) == 2


async def test_the_heartbeat_watchdog_reconnects_a_silent_stream(master: ReplayMaster) -> None:
    master.scripts.append(Script(chunks=[subscribed(interval=0.1)]))  # then silence
    master.scripts.append(Script(chunks=[subscribed(), fx.frame(fx.RESCIND)], stream_id="s2"))
    fw, rec = make(master.address)
    loop = asyncio.get_running_loop()
    async with running(fw) as run:
        await run.ready()
        started = loop.time()
        await rec.wait_for(lambda e: isinstance(e, events.Rescind))
        waited = loop.time() - started
    assert len(master.subscribes) == 2
    assert waited >= 0.45  # 5 x 0.1 s without any event


async def test_307_with_a_protocol_relative_location_is_followed(
        master: ReplayMaster, second_master: ReplayMaster
) -> None:
    master.default_script = Script(
        status=307, headers={"Location": f"//127.0.0.1:{second_master.port}/api/v1/scheduler"}
    )
    second_master.scripts.append(Script(chunks=[subscribed()]))
    fw, rec = make(master.address)
    async with running(fw) as run:
        await run.ready()
        assert fw.leader == second_master.url
        await fw.revive(["k8s"])
        await fw.suppress(["k8s"])
    assert len(master.subscribes) == 1 and len(second_master.subscribes) == 1
    assert second_master.calls_of("REVIVE")[0].body["revive"] == {"roles": ["k8s"]}
    assert second_master.calls_of("SUPPRESS")[0].body["suppress"] == {"roles": ["k8s"]}
    assert master.calls == []


async def test_503_moves_on_to_the_next_master(
        master: ReplayMaster, second_master: ReplayMaster
) -> None:
    # master has no scripts: it answers 503 ("no leader").
    second_master.scripts.append(Script(chunks=[subscribed()]))
    fw, rec = make(master.address, second_master.address)
    async with running(fw) as run:
        await run.ready()
        assert fw.leader == second_master.url
    assert len(master.subscribes) == 1


async def test_503_everywhere_is_retried_with_backoff_until_a_leader_appears(
        master: ReplayMaster,
) -> None:
    master.scripts += [Script(status=503, body=b"recovering")] * 3
    master.scripts.append(Script(chunks=[subscribed()]))
    fw, rec = make(master.address)
    async with running(fw) as run:
        await run.ready()
    assert len(master.subscribes) == 4
    assert fw.metrics.get("calls/SUBSCRIBE/NotLeader") == 3
    assert fw.metrics.get("reconnects") == 3


async def test_call_failures_raise_typed_errors(master: ReplayMaster) -> None:
    master.scripts.append(Script(chunks=[subscribed()]))
    master.call_status = {
        "DECLINE": (400, "Expecting 'decline' to be present"),
        "KILL": (403, "Framework is not subscribed"),
        "REVIVE": (503, ""),
        "SUPPRESS": (401, ""),
        "RECONCILE": (307, ""),
        "MESSAGE": (415, ""),
        "TEARDOWN": (500, "boom"),
    }
    fw, rec = make(master.address)
    with pytest.raises(errors.ConnectionLost, match="not subscribed"):
        await fw.decline([OfferId("o")])
    async with running(fw) as run:
        await run.ready()
        with pytest.raises(errors.BadRequest, match="decline") as bad:
            await fw.decline([OfferId("o")])
        assert bad.value.status == 400 and "to be present" in bad.value.body
        with pytest.raises(errors.Forbidden):
            await fw.kill(TaskId("t"), grace_period_seconds=1)
        with pytest.raises(errors.NotLeader):
            await fw.revive()
        with pytest.raises(errors.Unauthorized):
            await fw.suppress()
        with pytest.raises(errors.NotLeader):
            await fw.reconcile()
        with pytest.raises(errors.UnsupportedCall):
            await fw.message(agent_id=AgentId("a"), executor_id=fx_exec(), data=b"x")
        with pytest.raises(errors.ApiError) as other:
            await fw.teardown()
        assert other.value.status == 500
        master.current_stream_id = "another-stream"
        with pytest.raises(errors.BadRequest, match="stream ID"):
            await fw.acknowledge(types.TaskStatus.parse(fx.update()["update"]["status"]))
    assert fw.metrics.get("calls/DECLINE/BadRequest") == 1
    assert fw.metrics.get("calls/KILL/Forbidden") == 1


def fx_exec() -> ExecutorId:
    return ExecutorId("e")


async def test_a_call_to_a_vanished_master_is_connection_lost(master: ReplayMaster) -> None:
    master.scripts.append(Script(chunks=[subscribed()]))
    fw, rec = make(master.address)
    async with running(fw) as run:
        await run.ready()
        await master.stop()
        with pytest.raises(errors.ConnectionLost):
            await fw.decline([OfferId("o")])


async def test_subscribe_refused_with_401_is_fatal(master: ReplayMaster) -> None:
    master.scripts.append(Script(status=401, body=b"Unauthorized"))
    fw, rec = make(master.address)
    async with running(fw) as run:
        with pytest.raises(errors.Unauthorized):
            await run.result()


async def test_a_removed_framework_id_is_forgotten_and_a_new_framework_registered(
        master: ReplayMaster,
) -> None:
    master.scripts.append(
        Script(chunks=[fx.frame({"type": "ERROR", "error": {"message": REMOVED}})])
    )
    master.scripts.append(Script(chunks=[subscribed(framework_id="brand-new-0002")]))
    store = framework.MemoryFrameworkIdStore(FrameworkId("old-0001"))
    fw, rec = make(master.address, store=store)
    async with running(fw) as run:
        await run.ready()
        assert fw.framework_id == "brand-new-0002"
    assert [s.body.get("framework_id") for s in master.subscribes] == [
        {"value": "old-0001"}, None]  # the second SUBSCRIBE registers a new framework
    assert "id" not in master.subscribes[1].body["subscribe"]["framework_info"]
    assert store.framework_id == "brand-new-0002"
    assert fw.replacements == [("old-0001", "brand-new-0002")]
    assert fw.metrics.get("framework_removed") == 1


async def test_a_removal_while_subscribed_registers_a_new_framework(
        master: ReplayMaster,
) -> None:
    removed = fx.frame({"type": "ERROR", "error": {"message": REMOVED}})
    master.scripts.append(Script(chunks=[subscribed(framework_id="old-0001"), removed],
                                 hold=False))
    master.scripts.append(Script(chunks=[subscribed(framework_id="brand-new-0002")]))
    store = framework.MemoryFrameworkIdStore()
    fw, rec = make(master.address, store=store)
    async with running(fw) as run:
        await rec.wait_for(lambda e: isinstance(e, events.Error))  # the handler hears of it
        await fw.wait_for_subscription(after=1)
        assert fw.framework_id == "brand-new-0002"
        assert not run.task.done()  # still running, subscribed as the new framework
    assert [s.body.get("framework_id") for s in master.subscribes] == [None, None]
    assert store.framework_id == "brand-new-0002"
    assert fw.replacements == [("old-0001", "brand-new-0002")]
    assert fw.finished.is_set()


async def test_with_reregistration_off_a_removed_id_is_a_clear_error(
        master: ReplayMaster,
) -> None:
    master.scripts.append(
        Script(chunks=[fx.frame({"type": "ERROR", "error": {"message": REMOVED}})])
    )
    store = framework.MemoryFrameworkIdStore(FrameworkId("old-0001"))
    fw, rec = make(master.address, store=store, reregister_when_removed=False)
    async with running(fw) as run:
        with pytest.raises(errors.FrameworkUnknown, match="old-0001"):
            await run.result()
    assert len(master.subscribes) == 1
    assert master.subscribes[0].body["framework_id"] == {"value": "old-0001"}
    assert store.framework_id == "old-0001"  # untouched: the caller decides
    assert fw.finished.is_set()


async def test_a_resubscription_answered_with_another_id_takes_the_new_one(
        master: ReplayMaster,
) -> None:
    master.scripts.append(Script(chunks=[subscribed(framework_id="brand-new-0002")]))
    store = framework.MemoryFrameworkIdStore(FrameworkId("old-0001"))
    fw, rec = make(master.address, store=store)
    async with running(fw) as run:
        await run.ready()
    assert store.framework_id == "brand-new-0002"
    assert fw.replacements == [("old-0001", "brand-new-0002")]
    master.scripts.append(Script(chunks=[subscribed(framework_id="brand-new-0003")]))
    strict, _ = make(master.address, store=store, reregister_when_removed=False)
    async with running(strict) as run:
        with pytest.raises(errors.FrameworkUnknown, match="brand-new-0003"):
            await run.result()
    assert store.framework_id == "brand-new-0002"


async def test_an_invalid_subscription_is_subscription_failed(master: ReplayMaster) -> None:
    master.scripts.append(
        Script(chunks=[fx.frame({"type": "ERROR", "error": {"message": "Role '-x' is invalid"}})])
    )
    fw, rec = make(master.address)
    async with running(fw) as run:
        with pytest.raises(errors.SubscriptionFailed, match="invalid"):
            await run.result()


async def test_an_error_mid_stream_is_delivered_then_ends_the_run(master: ReplayMaster) -> None:
    master.scripts.append(Script(chunks=[subscribed(), fx.frame(fx.ERROR)], hold=False))
    master.default_script = Script(chunks=[subscribed()])
    fw, rec = make(master.address)
    async with running(fw) as run:
        with pytest.raises(errors.SubscriptionFailed, match="failed over"):
            await run.result()
    assert rec.events[-1] == events.Error("Framework failed over")
    assert len(master.subscribes) == 1  # it did not fight the instance that took over


async def test_a_slow_handler_back_pressures_without_reconnect_storms(
        master: ReplayMaster,
) -> None:
    n = 40
    master.scripts.append(
        Script(
            chunks=[
                subscribed(interval=0.2)
                + b"".join(fx.frame(fx.update(f"t{i}", with_uuid=False)) for i in range(n))
            ]
        )
    )
    fw, rec = make(master.address, queue_size=2)
    rec.gate = asyncio.Event()
    async with running(fw) as run:
        await run.ready()
        await asyncio.sleep(1.5)  # > the 1 s watchdog, with the reader blocked on a full queue
        assert len(master.subscribes) == 1
        rec.gate.set()
        got = await rec.wait_for(lambda e: isinstance(e, events.Update), count=n)
    assert [e.status.task_id for e in got] == [f"t{i}" for i in range(n)]  # type: ignore[union-attr]


async def test_stop_interrupts_a_subscription_attempt_promptly(master: ReplayMaster) -> None:
    fw, rec = make(master.address)  # 503 forever
    loop = asyncio.get_running_loop()
    async with running(fw):
        await asyncio.sleep(0.3)
        started = loop.time()
    assert loop.time() - started < 2.0


async def test_basic_auth_credentials_are_sent_and_never_shown(master: ReplayMaster) -> None:
    master.scripts.append(Script(chunks=[subscribed()]))
    fw, rec = make(master.address, client={"principal": "bridge", "secret": "s3cret"})
    async with running(fw) as run:
        await run.ready()
        await fw.decline([OfferId("o")])
    expected = "Basic " + base64.b64encode(b"bridge:s3cret").decode()
    assert master.subscribes[0].headers["Authorization"] == expected
    assert master.calls_of("DECLINE")[0].headers["Authorization"] == expected
    config = ClientConfig(masters=("m:5050",), principal="bridge", secret="s3cret")
    assert "s3cret" not in repr(config)
    with pytest.raises(errors.ConfigError):
        MesosClient(config=ClientConfig(masters=("m:5050",), principal="bridge"))


async def test_https_with_a_ca_bundle(tmp_path: Path) -> None:
    ca, cert, key = make_tls(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    master = ReplayMaster(ssl_context=ctx)
    await master.start()
    try:
        master.default_script = Script(chunks=[subscribed()])
        call = calls.subscribe(framework_info=INFO)
        untrusted = ClientConfig(masters=(master.url,), connect_timeout=2)
        async with MesosClient(config=untrusted) as client:
            with pytest.raises(errors.ConnectionLost):
                await client.subscribe(call)
        fw, rec = make(master.url, client={"ca_file": str(ca)})
        async with running(fw) as run:
            await run.ready()
            assert fw.leader == master.url
            await fw.decline([OfferId("o")])
    finally:
        await master.stop()


@pytest.mark.parametrize(
    "masters",
    [
        pytest.param(("zk://zk1:2181,zk2:2181/mesos",), id="zk"),
        pytest.param((), id="empty"),
        pytest.param(("ftp://m:21",), id="scheme"),
    ],
)
def test_unusable_master_urls_are_config_errors(masters: tuple[str, ...]) -> None:
    with pytest.raises(errors.ConfigError) as e:
        make(*masters)
    if masters and masters[0].startswith("zk://"):
        assert "not supported yet" in str(e.value)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [framework.backoff_delay(n, initial=0.5, cap=15, rng=rng) for n in range(12)]
    for n, d in enumerate(delays):
        ceiling = min(15, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 15
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jitter: not all equal at the cap


def test_the_file_store_persists_the_framework_id(tmp_path: Path) -> None:
    store = framework.FileFrameworkIdStore(tmp_path / "state" / "framework-id")
    assert store.load() is None
    store.save(FrameworkId("abc-0000"))
    assert framework.FileFrameworkIdStore(tmp_path / "state" / "framework-id").load() == "abc-0000"
    store.save(FrameworkId("abc-0001"))
    assert store.load() == "abc-0001"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["framework-id"]


async def test_every_driver_call_reaches_the_master_with_framework_id_and_stream_id(
        master: ReplayMaster,
) -> None:
    master.scripts.append(Script(chunks=[subscribed(), fx.frame(fx.UPDATE_OPERATION_STATUS)]))
    master.call_status = {"UPDATE_FRAMEWORK": (200, "")}
    fw, rec = make(master.address)
    async with running(fw) as run:
        await run.ready()
        op = await rec.wait_for(lambda e: isinstance(e, events.UpdateOperationStatus))
        await fw.acknowledge_operation_status(op[0])  # type: ignore[arg-type]
        await fw.accept_inverse_offers(["i1"])
        await fw.decline_inverse_offers(["i1"], refuse_seconds=60)
        await fw.shutdown(executor_id=fx_exec(), agent_id=AgentId(fx.AGENT_ID))
        await fw.message(agent_id=AgentId(fx.AGENT_ID), executor_id=fx_exec(), data=b"ping")
        await fw.request([(None, fx_resources())])
        await fw.reconcile({TaskId("t"): None})
        await fw.suppress()
        await fw.update_framework(
            framework_info=dataclasses.replace(INFO, roles=("k8s", "batch")),
            offer_constraints={"role_constraints": {"k8s": {"groups": []}}},
        )
        await fw.revive()
        await fw.teardown()
    kinds = [c.type for c in master.calls]
    assert kinds == [
        "ACKNOWLEDGE_OPERATION_STATUS",
        "ACCEPT_INVERSE_OFFERS",
        "DECLINE_INVERSE_OFFERS",
        "SHUTDOWN",
        "MESSAGE",
        "REQUEST",
        "RECONCILE",
        "SUPPRESS",
        "UPDATE_FRAMEWORK",
        "REVIVE",
        "TEARDOWN",
    ]
    for call in master.calls:
        assert call.body["framework_id"] == {"value": fx.FRAMEWORK_ID}
        assert call.headers["Mesos-Stream-Id"] == "stream-1"
    update = master.calls_of("UPDATE_FRAMEWORK")[0].body["update_framework"]
    assert update["framework_info"]["id"] == {"value": fx.FRAMEWORK_ID}
    assert update["framework_info"]["roles"] == ["k8s", "batch"]
    assert update["suppressed_roles"] == ["k8s"]  # the earlier SUPPRESS is remembered
    ack = master.calls_of("ACKNOWLEDGE_OPERATION_STATUS")[0].body["acknowledge_operation_status"]
    assert ack["uuid"] == fx.UUID_B64 and ack["operation_id"] == {"value": "op-1"}


def fx_resources() -> res.Resources:
    return res.Resources.from_scalars({"cpus": 1})


async def test_a_master_that_never_answers_subscribe_is_skipped(
        master: ReplayMaster, second_master: ReplayMaster
) -> None:
    hung = socket.socket()  # accepts connections (backlog) but never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        second_master.scripts.append(Script(chunks=[subscribed()]))
        hung_address = f"127.0.0.1:{hung.getsockname()[1]}"
        fw, rec = make(hung_address, second_master.address, client={"call_timeout": 0.5})
        async with running(fw) as run:
            await run.ready()
            assert fw.leader == second_master.url
    finally:
        hung.close()
