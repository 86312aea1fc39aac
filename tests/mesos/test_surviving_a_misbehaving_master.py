"""The Mesos client against a real kernel master behind a fault-injecting proxy.

Every fault a real cluster throws (5xx, resets, a non-leader's 307 to ``//host:port``, a redirect
loop, a garbage body, a stream cut mid-record, a GET_TASKS that hangs or fails) is injected by
``faultproxy.FaultProxy`` in front of the REAL embedded master; nothing of our protocol is mocked.
Each fault must be counted by cause, logged once per cause, retried with back-off, never escape
``Framework.run``, and the framework must end subscribed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.mesos import errors, framework, operator, types
from k8sbridge.mesos.transport import ClientConfig, Transport
from tests.conftest import free_port
from tests.mesos.faultproxy import Fault, FaultProxy
from tests.mesos.helpers import Recorder, make_tls, running

INFO = types.FrameworkInfo(name="faulted", user="root", roles=("k8s",))
BACKOFF = 0.05
LOGGER = "k8sbridge.mesos.framework"


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    config = MasterConfig(
        port=free_port(), heartbeat_interval=1.0, work_dir=tmp_path / "master"
    )
    async with main.running_kernel(master=config) as k:
        yield k


@pytest.fixture
async def proxy(kernel: main.Kernel) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(upstream=kernel.master_url)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def make(
        *masters: str, transport: Transport | None = None, call_timeout: float = 3
) -> framework.Framework:
    return framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=INFO,
            client=ClientConfig(masters=masters, call_timeout=call_timeout, connect_timeout=2),
            backoff_initial=BACKOFF,
            backoff_max=0.4,
        ),
        handler=Recorder(),
        transport=transport,
        _rng=random.Random(7),
    )


def warnings_about(caplog: pytest.LogCaptureFixture, cause: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno >= logging.WARNING and f"({cause})" in r.getMessage()]


def assert_backed_off(proxy: FaultProxy, call_type: str) -> None:
    """Retries are spaced by the back-off (jitter keeps each in [d/2, d], d doubling)."""
    times = [s.at for s in proxy.requests(call_type)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and all(g >= BACKOFF / 2 for g in gaps), gaps


async def subscribed_through(proxy: FaultProxy, fw: framework.Framework) -> None:
    async with running(fw) as run:
        await run.ready(timeout=20)
        assert fw.subscribed and not run.task.done()


@pytest.mark.parametrize(("status", "cause"), [
    pytest.param(500, "ServerError", id="500"),
    pytest.param(502, "ServerError", id="502"),
    pytest.param(504, "ServerError", id="504"),
    pytest.param(503, "NotLeader", id="503"),
])
async def test_5xx_on_subscribe_is_retried_until_the_master_answers(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture, status: int, cause: str
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.inject("SUBSCRIBE", Fault("status", status=status, times=3))
    fw = make(proxy.address)
    await subscribed_through(proxy, fw)
    assert len(proxy.requests("SUBSCRIBE")) == 4
    assert fw.metrics.get(f"subscribe_failures/{cause}") == 3
    assert fw.metrics.get(f"resubscriptions/{cause}") == 1
    assert len(warnings_about(caplog, cause)) == 1  # once per cause, not once per retry
    assert_backed_off(proxy, "SUBSCRIBE")


async def test_a_failing_master_is_skipped_for_the_next_one(
        kernel: main.Kernel, proxy: FaultProxy
) -> None:
    proxy.inject("SUBSCRIBE", Fault("status", status=502, times=-1))
    fw = make(proxy.address, kernel.master_address)
    await subscribed_through(proxy, fw)
    assert fw.leader == kernel.master_url
    assert fw.metrics.get("reconnects") == 0  # no back-off: the next master answered at once
    assert len(proxy.requests("SUBSCRIBE")) == 1


async def test_a_reset_on_subscribe_is_retried(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.inject("SUBSCRIBE", Fault("reset", times=2))
    fw = make(proxy.address)
    await subscribed_through(proxy, fw)
    assert fw.metrics.get("subscribe_failures/ConnectionLost") == 2
    assert len(warnings_about(caplog, "ConnectionLost")) == 1
    assert_backed_off(proxy, "SUBSCRIBE")


async def test_a_subscribe_that_hangs_times_out_and_is_retried(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.inject("SUBSCRIBE", Fault("hang", seconds=3))
    fw = make(proxy.address, call_timeout=0.5)
    await subscribed_through(proxy, fw)
    assert fw.metrics.get("subscribe_failures/CallTimedOut") == 1
    [warning] = warnings_about(caplog, "CallTimedOut")
    assert "no master answered in time" in warning


async def test_a_master_refusing_with_a_4xx_is_skipped_when_another_accepts(
        kernel: main.Kernel, proxy: FaultProxy
) -> None:
    proxy.inject("SUBSCRIBE", Fault("status", status=401, times=-1))
    fw = make(proxy.address, kernel.master_address)
    await subscribed_through(proxy, fw)
    assert fw.leader == kernel.master_url and fw.metrics.get("reconnects") == 0


async def test_a_307_to_a_protocol_relative_leader_is_followed_and_remembered(
        kernel: main.Kernel, proxy: FaultProxy
) -> None:
    leader = f"//{kernel.master_address}"
    proxy.inject("SUBSCRIBE", Fault("redirect", location=f"{leader}/api/v1/scheduler", times=-1))
    proxy.inject("GET_TASKS", Fault("redirect", location=f"{leader}/api/v1", times=-1))
    transport = Transport(config=ClientConfig(masters=(proxy.address,)))
    fw = make(proxy.address, transport=transport)
    reader = operator.OperatorClient(transport=transport)
    try:
        async with running(fw) as run:
            await run.ready(timeout=20)
            assert fw.leader == kernel.master_url
            # The operator reads share the leader the subscription found: no 307 per poll.
            for _ in range(3):
                assert await reader.get_tasks() == []
            assert proxy.requests("GET_TASKS") == []
            assert (await reader.get_version()).at_least(1, 9)
            state = await reader.get_state()
            frameworks = state["get_frameworks"]["frameworks"]
            assert [f["framework_info"]["id"]["value"] for f in frameworks] == [fw.framework_id]
    finally:
        await reader.close()
    assert len(proxy.requests("SUBSCRIBE")) == 1
    assert [s.type for s in proxy.seen] == ["SUBSCRIBE"]  # every read went to the leader


async def test_an_operator_client_of_its_own_pays_one_redirect_then_asks_the_leader(
        kernel: main.Kernel, proxy: FaultProxy
) -> None:
    proxy.inject("GET_AGENTS", Fault("redirect", location=f"//{kernel.master_address}/api/v1",
                                     times=-1))
    reader = operator.OperatorClient(masters=(proxy.address,))
    try:
        for _ in range(3):
            assert await reader.get_agents() == []
    finally:
        await reader.close()
    assert len(proxy.requests("GET_AGENTS")) == 1


async def test_a_redirect_loop_of_more_than_ten_hops_is_an_error_that_is_retried(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    itself = f"//{proxy.address}/api/v1/scheduler"
    # 11 answers of 307: the first request and 10 followed hops; the 11th hop is refused.
    proxy.inject("SUBSCRIBE", Fault("redirect", location=itself, times=11))
    fw = make(proxy.address)
    await subscribed_through(proxy, fw)
    assert fw.metrics.get("subscribe_failures/NotLeader") == 1
    assert len(proxy.requests("SUBSCRIBE")) == 12
    assert any("more than 10 redirects" in m for m in warnings_about(caplog, "NotLeader"))


async def test_ten_redirect_hops_are_followed(proxy: FaultProxy) -> None:
    itself = f"//{proxy.address}/api/v1/scheduler"
    proxy.inject("SUBSCRIBE", Fault("redirect", location=itself, times=10))
    fw = make(proxy.address)
    await subscribed_through(proxy, fw)
    assert fw.metrics.get("reconnects") == 0


@pytest.mark.parametrize(("fault", "cause"), [
    pytest.param(Fault("garbage", times=2), "RecordIOError", id="not-recordio"),
    pytest.param(Fault("reply", body=b'{"type":"SUBSCRIBED"}', times=2), "ProtocolError",
                 id="no-stream-id"),
])
async def test_a_garbage_answer_to_subscribe_is_retried(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture, fault: Fault, cause: str
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.inject("SUBSCRIBE", fault)
    fw = make(proxy.address)
    await subscribed_through(proxy, fw)
    assert fw.metrics.get(f"subscribe_failures/{cause}") == 2
    assert len(warnings_about(caplog, cause)) == 1
    assert_backed_off(proxy, "SUBSCRIBE")


@pytest.mark.parametrize(("clean", "said"), [
    pytest.param(False, "not completed", id="connection-reset"),
    pytest.param(True, "cut mid-record", id="http-body-ended"),
])
async def test_a_stream_cut_mid_record_is_resubscribed(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture, clean: bool, said: str
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.inject("SUBSCRIBE", Fault("cut", clean=clean))
    fw = make(proxy.address)
    async with running(fw) as run:
        await run.ready(timeout=20)
        first = fw.framework_id
        async with asyncio.timeout(20):
            await fw.wait_for_subscription(after=1)
        assert fw.subscribed and not run.task.done()
        assert fw.framework_id == first  # the same framework, re-subscribed
    assert fw.metrics.get("subscribe_failures/ConnectionLost") == 1
    assert fw.metrics.get("resubscriptions/ConnectionLost") == 1
    [warning] = warnings_about(caplog, "ConnectionLost")
    assert said in warning and "subscription lost" in warning


@pytest.mark.parametrize(("fault", "error", "cause"), [
    pytest.param(Fault("hang", seconds=5), errors.OperatorTimeout, errors.CallTimedOut,
                 id="timeout"),
    pytest.param(Fault("status", status=500), errors.OperatorError, errors.ServerError,
                 id="500"),
    pytest.param(Fault("reset"), errors.OperatorError, errors.ConnectionLost, id="reset"),
    pytest.param(Fault("garbage"), errors.OperatorError, errors.ProtocolError, id="garbage"),
])
async def test_a_failed_get_tasks_raises_a_typed_error_and_the_next_one_works(
        proxy: FaultProxy, fault: Fault, error: type[Exception], cause: type[Exception]
) -> None:
    proxy.inject("GET_TASKS", fault)
    reader = operator.OperatorClient(masters=(proxy.address,), timeout=0.5)
    try:
        async with asyncio.timeout(3):
            with pytest.raises(error) as raised:
                await reader.get_tasks()
        assert isinstance(raised.value.__cause__, cause)
        assert await reader.get_tasks() == []
    finally:
        await reader.close()
    assert len(proxy.requests("GET_TASKS")) == 2


async def test_a_hung_first_master_leaves_the_next_one_its_own_time(
        kernel: main.Kernel, proxy: FaultProxy
) -> None:
    proxy.inject("GET_TASKS", Fault("hang", seconds=5, times=-1))
    reader = operator.OperatorClient(masters=(proxy.address, kernel.master_address),
                                     timeout=0.5)
    try:
        async with asyncio.timeout(3):
            assert await reader.get_tasks() == []
            assert await reader.get_tasks() == []  # straight to the leader now
    finally:
        await reader.close()
    assert len(proxy.requests("GET_TASKS")) == 1


async def test_malformed_entries_of_get_tasks_and_get_agents_are_dropped_not_fatal(
        proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"task_id": {"value": "t1"}, "state": "TASK_RUNNING", "timestamp": 1.0}
    tasks = {"type": "GET_TASKS", "get_tasks": {"tasks": [
        {"task_id": {"value": "t1"}, "state": "TASK_RUNNING",
         "statuses": [good, {"task_id": {"value": "t1"}, "state": 7}, "garbage"]},
        "not a task",
    ]}}
    agents = {"type": "GET_AGENTS", "get_agents": {"agents": [
        {"agent_info": {"id": {"value": "a1"}, "hostname": "h1", "port": 5051},
         "active": True, "pid": "slave(1)@10.0.0.1:5051"},
        {"agent_info": {"hostname": "no-id"}},
        {"agent_info": {"id": {"value": "a3"}, "hostname": "h3",
                        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": "many"}]}},
    ]}}
    proxy.inject("GET_TASKS", Fault("reply", body=json.dumps(tasks).encode()))
    proxy.inject("GET_AGENTS", Fault("reply", body=json.dumps(agents).encode()))
    reader = operator.OperatorClient(masters=(proxy.address,))
    try:
        [task] = await reader.get_tasks()
        [agent] = await reader.get_agents()
    finally:
        await reader.close()
    assert task["statuses"] == [good]
    assert (agent.agent_id, agent.address) == ("a1", "10.0.0.1:5051")
    assert sum("malformed" in r.getMessage() for r in caplog.records) == 4


async def test_operator_and_agent_reads_carry_the_credentials(proxy: FaultProxy) -> None:
    config = ClientConfig(masters=(proxy.address,), principal="bridge", secret="s3cret")
    reader = operator.OperatorClient(transport=Transport(config=config))
    try:
        await reader.get_tasks()
        await reader.get_agents()
        # The proxy in front of the master stands in for an agent: the master has no sandbox.
        with pytest.raises(errors.FileNotFound):
            await reader.read_file(proxy.address, path="/sandbox/stdout", offset=0)
    finally:
        await reader.close()
    expected = "Basic " + base64.b64encode(b"bridge:s3cret").decode()
    assert [s.authorization for s in proxy.seen] == [expected] * 3
    assert proxy.seen[-1].path == "/files/read"
    assert "s3cret" not in repr(config)


async def test_operator_reads_over_https_trust_the_configured_ca(
        kernel: main.Kernel, tmp_path: Path
) -> None:
    ca, cert, key = make_tls(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    tls = FaultProxy(upstream=kernel.master_url, ssl_context=ctx)
    await tls.start()
    trusted = operator.OperatorClient(transport=Transport(
        config=ClientConfig(masters=(tls.url,), ca_file=str(ca))))
    untrusted = operator.OperatorClient(masters=(tls.url,))
    try:
        assert (await trusted.get_version()).at_least(1, 9)
        with pytest.raises(errors.OperatorError) as refused:
            await untrusted.get_version()
        assert isinstance(refused.value.__cause__, errors.ConnectionLost)
        assert "TLS certificate verification failed" in str(refused.value)  # and why, with which CA
    finally:
        await trusted.close()
        await untrusted.close()
        await tls.stop()
