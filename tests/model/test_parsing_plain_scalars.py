"""The fast path for plain scalar resources gives exactly what the general parser gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.model import resource
from k8sbridge.model import resources as res

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
raws = st.fixed_dictionaries(
    {"name": st.sampled_from(["cpus", "mem", ""]), "type": st.sampled_from(["SCALAR", "SET"])},
    optional={
        "scalar": st.one_of(st.fixed_dictionaries({}, optional={"value": values}), st.none()),
        "allocation_info": st.one_of(
            st.fixed_dictionaries({}, optional={"role": st.sampled_from(["k8s", "a/b"])}),
            st.none(),
        ),
        "role": st.sampled_from(["*", "k8s"]),
        "reservations": st.just([{"type": "STATIC", "role": "k8s"}]),
    },
)


def outcome(fn: Any, raw: dict[str, Any]) -> Any:
    try:
        return fn(raw)
    except Exception as e:  # noqa: BLE001 - the exception type is the outcome compared
        return type(e)


@settings(max_examples=200, deadline=None)
@given(raw=raws)
def test_fast_path_equals_the_general_parser(raw: dict[str, Any]) -> None:
    assert outcome(res.Resource.parse, raw) == outcome(res.Resource._parse_general, raw)


def test_plain_scalar_takes_the_fast_path() -> None:
    raw = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1 + 0.2},
           "allocation_info": {"role": "k8s"}}
    fast = resource.parse_plain_scalar(raw)
    assert fast is not None and fast == res.Resource._parse_general(raw)
    assert fast.scalar == 0.3 and fast.allocation_role == "k8s" and fast.reservations == ()
