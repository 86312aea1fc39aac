"""GET_VERSION decides whether the bridge may send ``limits`` (Mesos ≥ 1.11 only).

Real HTTP to the real kernel master, with the proxy answering for an older or newer Mesos.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.mesos import errors, operator
from tests.conftest import free_port
from tests.mesos.faultproxy import Fault, FaultProxy


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[FaultProxy]:
    config = MasterConfig(port=free_port(), work_dir=tmp_path / "master")
    async with main.running_kernel(master=config) as kernel:
        p = FaultProxy(upstream=kernel.master_url)
        await p.start()
        try:
            yield p
        finally:
            await p.stop()


def version_reply(version: object) -> Fault:
    body = {"type": "GET_VERSION", "get_version": {"version_info": {
        "version": version, "build_date": "2020-01-01", "git_sha": "abc"}}}
    return Fault("reply", body=json.dumps(body).encode())


@pytest.mark.parametrize(("version", "limits"), [
    pytest.param("1.9.0", False, id="1.9"),
    pytest.param("1.10.2", False, id="1.10"),
    pytest.param("1.11.0", True, id="1.11"),
    pytest.param("1.12.0-dev", True, id="1.12-dev"),
    pytest.param("2.0", True, id="2.0"),
    pytest.param("unknown", False, id="garbage"),
])
async def test_the_master_version_says_whether_limits_are_understood(
        proxy: FaultProxy, version: str, limits: bool
) -> None:
    proxy.inject("GET_VERSION", version_reply(version))
    reader = operator.OperatorClient(masters=(proxy.address,))
    try:
        found = await reader.get_version()
    finally:
        await reader.close()
    assert found.version == version and found.git_sha == "abc"
    assert found.at_least(1, 11) is limits


async def test_the_kernel_reports_a_version_the_bridge_can_compare(proxy: FaultProxy) -> None:
    reader = operator.OperatorClient(masters=(proxy.address,))
    try:
        found = await reader.get_version()
    finally:
        await reader.close()
    assert found.number >= (1, 9, 0)


async def test_a_version_reply_without_a_version_is_a_typed_error(proxy: FaultProxy) -> None:
    proxy.inject("GET_VERSION", version_reply(None))
    reader = operator.OperatorClient(masters=(proxy.address,))
    try:
        with pytest.raises(errors.OperatorError, match="version_info.version"):
            await reader.get_version()
    finally:
        await reader.close()
