"""Mesos ``Value`` arithmetic shared by resources and attributes: fixed-point scalars, ranges.

Why its own module: ``Resource``, ``Resources`` and ``Attribute`` all carry scalars and ranges
and raise the same ``ResourceError``; the rules (three decimal digits, merged ranges) are Mesos'
own (``src/common/values.cpp``) and written once here. Also the slot-setter helper the value
types use to build instances fast (see ``resource.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

__all__ = [
    "Range",
    "ResourceError",
    "fix_scalar",
    "merge_ranges",
    "new_instance",
    "parse_range_list",
    "ranges_contain",
    "ranges_size",
    "slot_setter",
    "subtract_ranges",
]

Range: TypeAlias = tuple[int, int]  # inclusive [begin, end], as Mesos' Value.Range

SCALE = 1000  # Mesos keeps three decimal digits of a scalar


class ResourceError(ValueError):
    """A resource or attribute that Mesos would reject (the message names the problem)."""


def fix_scalar(value: float) -> float:
    return round(value * SCALE) / SCALE


new_instance = object.__new__


def slot_setter(cls: type, name: str) -> Any:
    """The slot descriptor's ``__set__`` of a frozen slotted dataclass (fast constructors)."""
    return cls.__dict__[name].__set__


# --------------------------------------------------------------------------------------------
# Ranges


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort and coalesce overlapping or adjacent ranges: [1-3],[4-5] -> [1-5]."""
    given = ranges if type(ranges) is tuple or type(ranges) is list else list(ranges)
    # Fast path: input that is already merged (sorted, disjoint, not adjacent, begin <= end)
    # -- what Mesos sends and what this module produces -- is returned as is, without sorting.
    last: int | None = None
    for rng in given:
        if type(rng) is not tuple or len(rng) != 2:
            break
        begin, end = rng
        if begin > end or (last is not None and begin <= last + 1):
            break
        last = end
    else:
        return given if type(given) is tuple else tuple(given)
    out: list[list[int]] = []
    for begin, end in sorted(given):
        if begin > end:
            raise ResourceError(f"range [{begin}-{end}] has begin > end")
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def subtract_ranges(left: tuple[Range, ...], right: tuple[Range, ...]) -> tuple[Range, ...]:
    """Remove every number of ``right`` from ``left`` (both merged); splits ranges as needed."""
    out: list[Range] = []
    j = 0
    for begin, end in left:
        cur = begin
        while j < len(right) and right[j][1] < cur:
            j += 1
        k = j
        while k < len(right) and right[k][0] <= end and cur <= end:
            rb, re_ = right[k]
            if rb > cur:
                out.append((cur, rb - 1))
            cur = max(cur, re_ + 1)
            k += 1
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


def ranges_contain(outer: tuple[Range, ...], inner: tuple[Range, ...]) -> bool:
    """True when every number of ``inner`` lies in ``outer`` (both merged)."""
    return not subtract_ranges(inner, outer)


def ranges_size(ranges: tuple[Range, ...]) -> int:
    return sum(end - begin + 1 for begin, end in ranges)



def parse_range_list(text: str, *, what: str) -> tuple[Range, ...]:
    inner = text.strip()[1:-1].strip()
    if not inner:
        return ()
    out: list[Range] = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) == 1:
                out.append((int(bounds[0]), int(bounds[0])))
            elif len(bounds) == 2:
                out.append((int(bounds[0]), int(bounds[1])))
            else:
                raise ValueError(part)
        except ValueError as e:
            raise ResourceError(f"{what}: bad range {part.strip()!r}") from e
    return merge_ranges(out)
