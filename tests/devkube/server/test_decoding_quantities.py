"""devkube decodes and prints quantities as apimachinery's resource.Quantity does: the cases are
those its documentation and tests state (canonical forms, rounding up to 1n, the binary cap at
2^63-1, the three error messages), and a round trip never changes a canonical value."""

from __future__ import annotations

import decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.devkube import qos, quantity

CANONICAL = [
    ("0", "0"), ("-0", "0"), ("0Ki", "0"), ("1", "1"), ("1000m", "1"), ("1.5", "1500m"),
    ("0.5", "500m"), ("1.5Gi", "1536Mi"), ("1024Ki", "1Mi"), ("1023Ki", "1023Ki"),
    ("0.5Ki", "512"), ("1.1Ki", "1126400m"), ("12e6", "12e6"), ("1000e0", "1e3"),
    ("1e3", "1e3"), ("1E", "1E"), ("1000E", "1e21"), ("100M", "100M"), ("1000k", "1M"),
    ("0.1m", "100u"), ("0.0000000001", "1n"), ("1e-20", "1e-9"), ("-1Mi", "-1Mi"),
    ("+5", "5"), ("1.", "1"), (".5", "500m"), ("100000000000000000000Ei", str((1 << 63) - 1)),
    ("9223372036854775807", "9223372036854775807"), ("1n", "1n"), ("10u", "10u"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_forms(text: str, canonical: str) -> None:
    assert quantity.parse(text).canonical() == canonical


@pytest.mark.parametrize(("text", "message"), [
    ("", quantity.FORMAT_WRONG), ("lots", quantity.FORMAT_WRONG),
    ("1.2.3", quantity.FORMAT_WRONG), ("12XB", quantity.FORMAT_WRONG),
    ("1 Gi", quantity.FORMAT_WRONG), ("1Gi ", quantity.FORMAT_WRONG),
    ("1ki", quantity.SUFFIX), ("1e", quantity.SUFFIX), ("1ee3", quantity.SUFFIX),
    ("1e99999999999999999999", quantity.SUFFIX), ("1mi", quantity.SUFFIX),
    ("e-20", quantity.NUMERIC), (".Pi", quantity.NUMERIC),
])
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(quantity.QuantityError) as caught:
        quantity.parse(text)
    assert str(caught.value) == message


def test_json_numbers_and_null_decode_and_other_types_do_not() -> None:
    assert quantity.parse_json(2).canonical() == "2"
    assert quantity.parse_json(0.25).canonical() == "250m"
    assert quantity.parse_json(None).canonical() == "0"
    for raw in (True, [1], {"a": 1}, float("inf")):
        with pytest.raises(quantity.QuantityError):
            quantity.parse_json(raw)


_texts = st.builds(
    lambda sign, whole, frac, suffix: f"{sign}{whole}{frac}{suffix}",
    st.sampled_from(["", "-", "+"]), st.integers(0, 10**20).map(str),
    st.one_of(st.just(""), st.integers(0, 10**12).map(lambda n: f".{n}")),
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti",
                     "Pi", "Ei", "e3", "e-7", "E+2", "e30"]),
)


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_a_canonical_form_reads_back_as_itself_and_never_loses_value(text: str) -> None:
    parsed = quantity.parse(text)
    canonical = parsed.canonical()
    again = quantity.parse(canonical)
    assert again.value == parsed.value
    assert again.canonical() == canonical
    assert "." not in canonical
    # never more precise than 1n; rounding only goes away from zero
    exponent = parsed.value.as_tuple().exponent
    assert isinstance(exponent, int) and exponent >= -9
    if text.endswith("n") and not text.startswith("-"):
        digits = text.lstrip("+").removesuffix("n")
        assert parsed.value >= decimal.Decimal(digits).scaleb(-9)


def _c(requests: dict[str, str], limits: dict[str, str]) -> dict[str, object]:
    return {"name": "c", "resources": {"requests": requests, "limits": limits}}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"containers": [_c({}, {})]}, "BestEffort"),
    ({"containers": [_c({"cpu": "0"}, {"memory": "0"})]}, "BestEffort"),
    ({"containers": [_c({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"})]}, "BestEffort"),
    ({"containers": [_c({"cpu": "1", "memory": "1Gi"}, {"cpu": "1000m", "memory": "1024Mi"})]},
     "Guaranteed"),
    ({"containers": [_c({"cpu": "1"}, {"cpu": "1"})]}, "Burstable"),  # memory limit missing
    ({"containers": [_c({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
      "initContainers": [_c({}, {})]}, "Burstable"),  # an init container without limits
    ({"containers": [_c({"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"})]},
     "Burstable"),
    ({"resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"}},
      "containers": [_c({}, {})]}, "Guaranteed"),  # pod-level resources replace the sums
    ({"resources": {"limits": {"hugepages-2Mi": "2Mi"}},
      "containers": [_c({"cpu": "1"}, {})]}, "Burstable"),  # no cpu/memory at pod level
])
def test_qos_classes(spec: dict[str, object], expected: str) -> None:
    assert qos.qos_class(spec) == expected
