"""Suite-wide test settings: e2e tests run last; helpers for free loopback ports; every JSON
document an in-process kernel master prints is checked against Mesos' protos
(``tests/kernel_wire_watch.py``)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest

from tests.kernel_wire_watch import _kernel_prints_what_mesos_prints  # noqa: F401 (fixture)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # e2e tests are the slowest and depend on everything else: run them last.
    items.sort(key=lambda item: 1 if item.get_closest_marker("e2e") else 0)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (modules, test functions, their imports: some 150,000
    objects that live as long as the session) out of the collector's reach, so that each
    test's ``gc.collect()`` below scans only what tests made since: it took 0.1-0.5 s a test,
    most of the suite's teardown time. Objects the tests make are collected as before."""
    gc.collect()
    gc.freeze()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect cycles at each test's teardown, so a leaked socket or transport fails the test
    that leaked it (warnings are errors) instead of whichever test the collector runs in next."""
    yield
    gc.collect()
