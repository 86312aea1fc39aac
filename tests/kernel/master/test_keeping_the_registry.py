"""The SQLite registry round-trips what a master restart needs; memory-only mode stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import registry
from k8sbridge.kernel.master.errors import RegistryError
from k8sbridge.kernel.master.master import apply_reservations


def test_round_trip(tmp_path: Path) -> None:
    reg = registry.Registry(work_dir=tmp_path)
    reg.put_framework("f1", {"user": "u", "name": "a", "id": {"value": "f1"}})
    reg.put_framework("f2", {"user": "u", "name": "b", "id": {"value": "f2"}})
    reg.complete_framework("f2", now=1.0)
    reg.put_agent("a1", {"hostname": "h1", "resources": []})
    reg.put_agent("a2", {"hostname": "h2", "resources": []})
    reg.mark_unreachable("a2", when=42.0)
    reg.put_reservations("a1", [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                                 "reservations": [{"type": "DYNAMIC", "role": "web"}]}])
    reg.put_weight("web", 2.0)
    reg.put_quota("web", {"cpus": 4.0})
    reg.put_quota("gone", {"mem": 1.0})
    reg.put_quota("gone", None)
    reg.close()
    snap = registry.Registry(work_dir=tmp_path).load()
    assert {(f, c) for f, _, c in snap.frameworks} == {("f1", False), ("f2", True)}
    assert {(a, u) for a, _, u in snap.agents} == {("a1", None), ("a2", 42.0)}
    assert snap.weights == (("web", 2.0),)
    assert snap.quotas == (("web", {"cpus": 4.0}),)
    assert snap.reservations[0][0] == "a1"
    # Re-registering clears the unreachable mark.
    reg = registry.Registry(work_dir=tmp_path)
    reg.put_agent("a2", {"hostname": "h2", "resources": []})
    assert {(a, u) for a, _, u in reg.load().agents} == {("a1", None), ("a2", None)}


def test_memory_only_and_corruption(tmp_path: Path) -> None:
    reg = registry.Registry(work_dir=None)
    reg.put_framework("f", {})
    assert reg.load() == registry.Snapshot() and not reg.persistent
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "registry.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RegistryError):
        registry.Registry(work_dir=bad).load()


def test_reapplying_dynamic_reservations() -> None:
    static = res.parse_resources_flag("cpus:4;mem:1024")
    dynamic = res.Resources.parse([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
         "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "p"}]},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096},  # no longer fits
         "reservations": [{"type": "DYNAMIC", "role": "web"}]},
    ])
    total = apply_reservations(static, dynamic)
    assert total.unreserved().scalar("cpus") == 3 and total.reserved("web").scalar("cpus") == 1
    assert total.scalar("mem") == 1024 and total.reserved("web").scalar("mem") == 0
