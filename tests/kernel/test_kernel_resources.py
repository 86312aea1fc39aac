"""The kernel's own resource values behave as Mesos' ``resources.cpp``/``values.cpp`` do."""

from __future__ import annotations

import pytest

from k8sbridge.kernel import recordio
from k8sbridge.kernel.resources import (
    Attribute,
    Resource,
    ResourceError,
    Resources,
    parse_attributes_flag,
    parse_resources_flag,
)


def test_scalars_are_fixed_point_with_three_decimals() -> None:
    total = Resources.of([Resource.scalar_of("cpus", 0.1)]) + Resources.of(
        [Resource.scalar_of("cpus", 0.2)])
    assert total.scalar("cpus") == 0.3
    assert Resource.scalar_of("mem", 1.0005).scalar == 1.001  # llround: half away from zero
    assert Resources.from_scalars({"cpus": 0.0004}).is_empty()


def test_subtraction_drops_what_would_be_negative_or_empty() -> None:
    have = parse_resources_flag("cpus:1;mem:10;ports:[1-10]")
    left = have - parse_resources_flag("cpus:2;ports:[3-4]")
    assert "cpus" not in left.names()
    assert left.ranges("ports") == ((1, 2), (5, 10))
    assert left.scalar("mem") == 10.0


def test_ranges_coalesce_adjacent_intervals() -> None:
    assert parse_resources_flag("ports:[1-2,3-4, 10-10]").ranges("ports") == ((1, 4), (10, 10))
    assert parse_resources_flag("ports:[1-10]").contains(parse_resources_flag("ports:[2-3]"))
    assert not parse_resources_flag("ports:[1-10]").contains(parse_resources_flag("ports:[9-11]"))


def test_the_agent_flag_in_text_and_json_forms() -> None:
    text = parse_resources_flag("cpus:2;mem:1024;ports:[31000-32000];cpus(web):1;zones:{a,b}")
    assert text.scalar("cpus") == 3.0
    assert text.reserved("web").scalar("cpus") == 1.0
    assert text.to_legacy() == {"cpus": 3.0, "gpus": 0.0, "mem": 1024.0, "disk": 0.0,
                                "ports": "[31000-32000]", "zones": "{a, b}"}
    as_json = parse_resources_flag(
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]', default_role="web")
    assert as_json.reserved("web").scalar("cpus") == 2.0


@pytest.mark.parametrize(("spec", "message"), [
    ("cpus", "missing or extra ':'"),
    ("cpus:1:2", "missing or extra ':'"),
    ("cpus:-1", "Bad type for resource cpus"),  # a negative number is text for values::parse
    ("ports:[1-", "Mismatched brackets"),
    ("ports:[1-2-3]", 'Expecting one or more "ranges"'),
    ("host:abc", "Bad type for resource host"),
    ("cpus)x(:1", "mismatched parentheses"),
])
def test_bad_flags_are_refused_with_mesos_messages(spec: str, message: str) -> None:
    with pytest.raises(ResourceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_resources_flag(spec)


def test_pre_and_post_refinement_reservations_are_one_value() -> None:
    old = Resources.parse([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                            "role": "web", "reservation": {"principal": "p"}}])
    new = Resources.parse([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                            "reservations": [{"type": "DYNAMIC", "role": "web",
                                              "principal": "p"}]}])
    assert old == new
    assert old.to_raw(refined=False)[0]["reservation"] == {"principal": "p"}
    assert old.pop_reservation() == Resources.from_scalars({"cpus": 1})


def test_malformed_resource_json_is_a_resource_error() -> None:
    for raw in ({"name": "cpus", "type": "SCALAR", "scalar": {"value": "x"}},
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": float("inf")}},
                {"name": "", "type": "SCALAR"}, {"name": "a", "type": "TEXT"},
                {"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 1}]}},
                "cpus"):
        with pytest.raises(ResourceError):
            Resources.parse([raw])


def test_attributes_take_the_type_values_parse_gives() -> None:
    attrs = parse_attributes_flag("rack:r1;level:10;keys:[1000-1500];tags:{x,y}")
    assert [a.type for a in attrs] == ["TEXT", "SCALAR", "RANGES", "SET"]
    assert [a.legacy_value() for a in attrs] == ["r1", 10.0, "[1000-1500]", "{x, y}"]
    assert Attribute.from_json(attrs[2].to_json()) == attrs[2]


def test_recordio_frames_round_trip_across_chunk_boundaries() -> None:
    stream = recordio.frame(b'{"type":"HEARTBEAT"}') + recordio.frame(b"") + recordio.frame(b"x")
    reader = recordio.Reader()
    got = [r for i in range(len(stream)) for r in reader.feed(stream[i:i + 1])]
    assert got == [b'{"type":"HEARTBEAT"}', b"", b"x"]
    with pytest.raises(recordio.RecordIOError):
        recordio.Reader().feed(b"abc\n")
