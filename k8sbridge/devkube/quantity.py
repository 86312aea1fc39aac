"""Resource quantities as kube-apiserver decodes and prints them (apimachinery's resource.Quantity).

Why: devkube stands in for kube-apiserver, so it must refuse what the apiserver refuses, with its
words, and hand back the canonical form the apiserver stores ("1000m" comes back as "1", "1.5Gi"
as "1536Mi", "0.1m" as "1m"). It is written here, from the apiserver's behaviour, rather than
borrowed from the bridge: a stand-in that shared the bridge's parser would agree with every bug
in it.

The rules followed:
- grammar: optional sign, digits with an optional fraction, then a suffix that is a decimal SI
  one (n u m "" k M G T P E), a binary SI one (Ki Mi Gi Ti Pi Ei) or a decimal exponent (e/E and
  a signed integer, kept as int32 the way Go converts it);
- a value more precise than 1n is rounded up, away from zero, to 1n;
- a binary SI value is capped at 2^63-1 in magnitude; one strictly between -1 and 1 is printed
  in decimal SI, as is one between -1024 and 1024 or one that is not a whole number;
- the canonical form has no fraction and the largest suffix of its family; a decimal SI value
  beyond E (10^18) is printed as a decimal exponent (kubernetes PR 140459).
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass
from enum import Enum
from typing import Any

SPLIT_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_WRONG = f"quantities must match the regular expression '{SPLIT_PATTERN}'"
NUMERIC = "unable to parse numeric part of quantity"
SUFFIX = "unable to parse quantity's suffix"

_MAX_INT64 = (1 << 63) - 1
_NANO = decimal.Decimal(1).scaleb(-9)
_WIDE = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                        rounding=decimal.ROUND_UP)
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")


class Format(Enum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
                     "E": 18}
_DECIMAL_BY_EXPONENT = {exponent: text for text, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


class QuantityError(ValueError):
    """A string that is not a quantity; ``str()`` is the apiserver's message."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact value (never a float) and the suffix family it was written in."""

    value: decimal.Decimal
    format: Format

    def canonical(self) -> str:
        """The string kube-apiserver stores and returns for this quantity."""
        if self.value.is_zero():
            return "0"
        if self.format is Format.BINARY_SI and -1024 < self.value < 1024:
            return _decimal_text(self.value, Format.DECIMAL_SI)
        if self.format is Format.BINARY_SI:
            if self.value != self.value.to_integral_value(rounding=decimal.ROUND_DOWN):
                return _decimal_text(self.value, Format.DECIMAL_SI)
            return _binary_text(int(self.value))
        return _decimal_text(self.value, self.format)


def _decimal_text(value: decimal.Decimal, form: Format) -> str:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).lstrip("0") or "0"
    stripped = text.rstrip("0")
    exponent += len(text) - len(stripped)
    down = exponent % 3  # toward minus infinity, so the mantissa stays whole
    mantissa = stripped + "0" * down
    exponent -= down
    if form is Format.DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        suffix = _DECIMAL_BY_EXPONENT[exponent]
    else:
        suffix = f"e{exponent}" if exponent else ""
    return ("-" if sign else "") + mantissa + suffix


def _binary_text(value: int) -> str:
    magnitude, power = abs(value), 0
    while power < len(_BINARY_BY_POWER) - 1 and magnitude % 1024 == 0:
        magnitude //= 1024
        power += 1
    return ("-" if value < 0 else "") + str(magnitude) + _BINARY_BY_POWER[power]


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Split ``text`` into (negative, integer digits, fraction digits, suffix)."""
    pos, end = 0, len(text)
    negative = False
    if text[0] in "+-":
        negative = text[0] == "-"
        pos = 1
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    whole = text[start:pos]
    fraction = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        fraction = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_WRONG)
    return negative, whole, fraction, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """(base, exponent, format) of a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        body = rest[1:] if rest[0] in "+-" else rest
        if not body or not body.isdigit():
            raise QuantityError(SUFFIX)
        parsed = int(rest)
        if not -(1 << 63) <= parsed <= _MAX_INT64:
            raise QuantityError(SUFFIX)
        wrapped = (parsed + (1 << 31)) % (1 << 32) - (1 << 31)  # Go's int32(parsed)
        return 10, wrapped, Format.DECIMAL_EXPONENT
    raise QuantityError(SUFFIX)


@functools.lru_cache(maxsize=4096)  # a workload's pods repeat the same few (Quantity is frozen)
def parse(text: str) -> Quantity:
    """Decode a quantity string as resource.ParseQuantity does, or raise QuantityError."""
    if not text:
        raise QuantityError(FORMAT_WRONG)
    negative, whole, fraction, suffix = _scan(text)
    if not (whole + fraction).strip("0"):
        base, exponent, _ = _interpret(suffix)
        if not whole and not fraction and (exponent < -9 if base == 10 else exponent >= 47):
            # no digits at all, and a suffix that takes Go's exact path, which cannot read them
            raise QuantityError(NUMERIC)
        return Quantity(decimal.Decimal(0), Format.DECIMAL_SI)  # zero always prints "0"
    base, exponent, form = _interpret(suffix)
    digits = tuple(int(d) for d in (whole + fraction).lstrip("0"))
    if base == 10:
        value = decimal.Decimal((int(negative), digits, exponent - len(fraction)))
    else:
        unscaled = decimal.Decimal((int(negative), digits, -len(fraction)))
        value = _WIDE.multiply(unscaled, decimal.Decimal(1 << exponent))
    value_exponent = value.as_tuple().exponent
    assert isinstance(value_exponent, int)
    if value_exponent < -9:
        value = value.quantize(_NANO, context=_WIDE)  # ROUND_UP: away from zero, as Go rounds
    if form is Format.BINARY_SI:
        if abs(value) > _MAX_INT64:
            value = decimal.Decimal(-_MAX_INT64 if negative else _MAX_INT64)
        if abs(value) < 1:
            form = Format.DECIMAL_SI
    return Quantity(value, form)


def parse_json(raw: Any) -> Quantity:
    """A quantity as it appears in a decoded JSON body: a string, or a bare number (which Go
    reads from its JSON text); null is zero. Anything else does not decode."""
    if raw is None:
        return Quantity(decimal.Decimal(0), Format.DECIMAL_SI)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise QuantityError(FORMAT_WRONG)
    if isinstance(raw, float):
        text = repr(raw)
        if "inf" in text or "nan" in text:
            raise QuantityError(FORMAT_WRONG)
        return parse(text.replace("e+", "e"))
    return parse(str(raw).strip())
