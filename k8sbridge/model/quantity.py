"""Kubernetes resource quantities (``250m``, ``1Gi``, ``1e3``) read as Mesos scalars.

Why its own module: the pod parser, the launcher and the kubelet's status all convert the same
quantities, with Kubernetes' rules (suffixes, at most milli-precision for cpu, rounding up) and
into Mesos' units (cpu in cores, memory and disk in MiB, ``nvidia.com/gpu`` as ``gpus``). The
pod-spec error hierarchy starts here because a bad quantity is the most common bad spec.
"""

from __future__ import annotations

import decimal
import math
import re

__all__ = [
    "K8S_TO_MESOS",
    "SCALAR_NAMES",
    "PodSpecError",
    "QuantityError",
    "parse_cpu",
    "parse_memory_mib",
    "parse_quantity",
    "to_mesos",
]

#: The resource names placement understands, as Mesos scalars.
SCALAR_NAMES: tuple[str, ...] = ("cpus", "mem", "disk", "gpus")
#: Kubernetes resource names -> Mesos scalar names
K8S_TO_MESOS = {
    "cpu": "cpus",
    "memory": "mem",
    "ephemeral-storage": "disk",
    "nvidia.com/gpu": "gpus",
}


class PodSpecError(ValueError):
    """The pod spec cannot be scheduled as written (the message names the field)."""


class QuantityError(PodSpecError):
    """A resource quantity that is not a valid Kubernetes quantity."""


# --------------------------------------------------------------------------------------------
# Quantities

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "": decimal.Decimal(1),
    "k": decimal.Decimal("1e3"),
    "M": decimal.Decimal("1e6"),
    "G": decimal.Decimal("1e9"),
    "T": decimal.Decimal("1e12"),
    "P": decimal.Decimal("1e15"),
    "E": decimal.Decimal("1e18"),
}


def parse_quantity(value: object, *, what: str = "quantity") -> decimal.Decimal:
    """Parse a Kubernetes quantity (``"500m"``, ``"1.5Gi"``, ``"2e3"``, ``4``) exactly."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{what}: {value!r} is not a quantity")
    text = str(value).strip() if not isinstance(value, float) else repr(value)
    m = _QUANTITY.match(text)
    if m is None:
        raise QuantityError(f"{what}: {value!r} is not a valid quantity")
    try:
        number = decimal.Decimal(m.group("num"))
    except decimal.InvalidOperation as e:  # pragma: no cover - the regex admits only numbers
        raise QuantityError(f"{what}: {value!r} is not a valid quantity") from e
    suffix = m.group("suffix") or ""
    if suffix in _BINARY:
        number *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        number *= _DECIMAL[suffix]
    else:  # exponent
        number = number.scaleb(int(suffix[1:]))
    if number < 0:
        raise QuantityError(f"{what}: {value!r} is negative")
    return number


def _ceil_milli(number: decimal.Decimal) -> float:
    """Round up to Mesos' three decimals (a request is never silently shrunk)."""
    return math.ceil(number * 1000) / 1000


def parse_cpu(value: object, *, what: str = "cpu") -> float:
    """cpu quantity → cores (``"250m"`` → 0.25), rounded up to a millicore."""
    return _ceil_milli(parse_quantity(value, what=what))


def parse_memory_mib(value: object, *, what: str = "memory") -> float:
    """byte quantity → MiB (``"1Gi"`` → 1024.0), rounded up to a thousandth of a MiB."""
    return _ceil_milli(parse_quantity(value, what=what) / (2**20))


def _parse_whole(value: object, *, what: str) -> float:
    number = parse_quantity(value, what=what)
    if number != number.to_integral_value():
        raise QuantityError(f"{what}: {value!r} must be a whole number")
    return float(number)


def to_mesos(name: str, value: object, *, what: str) -> float:
    if type(value) is str:  # manifests repeat a few quantities: parse each once
        cached = _PARSED.get((name, value))
        if cached is None:
            cached = _convert(name, value, what=what)
            if len(_PARSED) < 4096:
                _PARSED[(name, value)] = cached
        return cached
    return _convert(name, value, what=what)


_PARSED: dict[tuple[str, str], float] = {}


def _convert(name: str, value: object, *, what: str) -> float:
    if name == "cpus":
        return parse_cpu(value, what=what)
    if name in ("mem", "disk"):
        return parse_memory_mib(value, what=what)
    return _parse_whole(value, what=what)
