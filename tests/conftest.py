"""Suite-wide test settings: e2e tests run last (first when pytest-xdist shares them out);
helpers for free loopback ports; every JSON document an in-process kernel master prints is
checked against Mesos' protos (``tests/kernel_wire_watch.py``).

Why the xdist groups: ``scripts/test`` runs the suite in parallel workers (``--dist
loadgroup``). Each test file is one unit of work, so a module's fixtures are set up once, as
in a serial run; the e2e tests that share the session's ``k8sbridge run`` (``target``) are one
unit, so they share one, in file order, and the Ctrl-C test still stops it last. Under xdist
the e2e units go first: they are the longest, and a long unit handed out last would leave the
other workers idle while it runs.
"""

from __future__ import annotations

import gc
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel_wire_watch import _kernel_prints_what_mesos_prints  # noqa: F401 (fixture)
from tests.leftovers import kill_daemons_under


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # e2e tests are the slowest and depend on everything else: run them last, or, shared out
    # among xdist workers (each of which collects), first (see the module docstring).
    e2e_first = hasattr(config, "workerinput")
    items.sort(key=lambda item: bool(item.get_closest_marker("e2e")) != e2e_first)
    for item in items:
        shared = item.get_closest_marker("e2e") and "target" in getattr(item, "fixturenames", ())
        group = "e2e-target" if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (modules, test functions, their imports: some 150,000
    objects that live as long as the session) out of the collector's reach, so that each
    test's ``gc.collect()`` below scans only what tests made since: it took 0.1-0.5 s a test,
    most of the suite's teardown time. Objects the tests make are collected as before."""
    gc.collect()
    gc.freeze()


_FILE_DONE = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.config.stash[_FILE_DONE] = nextitem is None or nextitem.path != item.path


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test file's first test (its predecessor's fixtures and arguments are gone by
    now): collect, then freeze what is left, as above. What outlives a file is the session's
    (modules a test imported, such as kopf's, caches, session fixtures), and without this
    every later collection scanned it: by the last files each test's collection took 0.3-2 s
    (190,000 objects after tests/devkube). A module fixture's leak fails the next test's
    setup, as it failed its teardown before."""
    if item.config.stash.get(_FILE_DONE, False):
        item.config.stash[_FILE_DONE] = False
        gc.collect()
        gc.freeze()


@pytest.fixture(autouse=True)
def _no_container_daemon_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test (and its other fixtures: this one is torn down last), the container
    daemons its kernels left in its ``tmp_path`` are killed with their containers
    (``tests/leftovers.py``)."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if isinstance(tmp, Path):
        kill_daemons_under(tmp)


def kernel_ssl(data_dir: Path) -> ssl.SSLContext | None:
    """A context that verifies the kernel of `k8sbridge run --data-dir DATA_DIR` with the CA it
    made (DATA_DIR/kernel-pki/ca.crt); None when it made none (TLS off: plain HTTP)."""
    ca = data_dir / "kernel-pki" / "ca.crt"
    return ssl.create_default_context(cafile=str(ca)) if ca.exists() else None


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
