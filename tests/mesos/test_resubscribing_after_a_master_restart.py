"""A master restart costs about a probe period, not a grown backoff (``mesos.pacing``).

Real sockets and the real embedded master: the probe is a TCP connect, the restart a master
stopped and started again on its work dir.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import yarl

from k8sbridge.kernel.master.master import Master
from k8sbridge.mesos import framework
from k8sbridge.mesos.client import ClientConfig
from k8sbridge.mesos.pacing import Pacer, backoff_delay, cut_short
from tests.conftest import free_port
from tests.mesos.helpers import Recorder, running
from tests.mesos.test_running_against_kernel import INFO, Component, master_config


def test_only_a_master_seen_down_and_then_accepting_cuts_the_wait() -> None:
    assert cut_short(seen_down=True, reachable=True)
    assert not cut_short(seen_down=False, reachable=True)  # always accepting: a proxy
    assert not cut_short(seen_down=True, reachable=False)
    assert not cut_short(seen_down=False, reachable=False)


def test_the_default_cap_keeps_the_wait_under_ten_seconds() -> None:
    settings = framework.FrameworkSettings(framework_info=INFO, client=ClientConfig(
        masters=("127.0.0.1:5050",)))
    rng = random.Random(7)
    waits = [backoff_delay(n, initial=settings.backoff_initial, cap=settings.backoff_max,
                           rng=rng) for n in range(40)]
    assert max(waits) <= 8.0 and min(waits[10:]) >= 4.0  # a master that stays down: 4-8 s


async def test_a_master_that_comes_back_ends_the_wait_at_the_next_probe() -> None:
    port = free_port()
    pacer = Pacer(masters=[yarl.URL(f"http://127.0.0.1:{port}")], probe_seconds=0.1)
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(pacer.wait(10.0))
    await asyncio.sleep(0.5)  # probes find nothing listening
    assert not waiting.done()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        back = loop.time()
        assert await asyncio.wait_for(waiting, 2.0) is True
        assert loop.time() - back < 0.5
    finally:
        server.close()
        await server.wait_closed()


async def test_a_master_always_accepting_or_always_down_gets_the_whole_wait() -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    try:
        for port in (up_port, free_port()):
            pacer = Pacer(masters=[yarl.URL(f"http://127.0.0.1:{port}")], probe_seconds=0.1)
            started = loop.time()
            assert await pacer.wait(0.6) is False
            assert loop.time() - started >= 0.6
    finally:
        server.close()
        await server.wait_closed()


async def test_the_framework_resubscribes_within_a_probe_of_a_master_restart(
        tmp_path: Path) -> None:
    config = master_config(tmp_path)
    master = Component(Master(config=config).run, "master-1")
    await master.started()
    rec = Recorder()
    # A first wait of 5-10 s: without the probe the restart below would cost seconds more.
    fw = framework.Framework(
        settings=framework.FrameworkSettings(
            framework_info=INFO,
            client=ClientConfig(masters=(f"127.0.0.1:{config.port}",), call_timeout=10,
                                connect_timeout=2),
            backoff_initial=10.0, backoff_max=60.0, probe_seconds=0.2,
        ),
        handler=rec, _rng=random.Random(3),
    )
    loop = asyncio.get_running_loop()
    try:
        async with running(fw) as run:
            await run.ready()
            framework_id = fw.framework_id
            await master.halt()
            await asyncio.sleep(1.0)
            master = Component(Master(config=config).run, "master-2")
            await master.started()
            back = loop.time()
            await asyncio.wait_for(fw.wait_for_subscription(after=1), 10)
            assert loop.time() - back < 1.5
            assert fw.framework_id == framework_id
    finally:
        await master.halt()
