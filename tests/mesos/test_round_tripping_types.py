"""Parsed types render to wire JSON and parse back to the same value."""

from __future__ import annotations

from k8sbridge.mesos import types


def test_framework_info_without_multi_role_uses_the_legacy_role_field() -> None:
    info = types.FrameworkInfo(name="old", user="u", roles=("web",), capabilities=())
    raw = info.to_raw()
    assert raw["role"] == "web" and "roles" not in raw
    assert types.FrameworkInfo.parse(raw) == info
