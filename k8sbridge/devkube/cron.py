"""Cron schedules as Kubernetes reads them (robfig/cron v3 ``ParseStandard``), and their next times.

Why: the apiserver refuses a CronJob whose schedule does not parse, in the parser's own words
("expected exactly 5 fields, found 1: [bad]"), and the CronJob controller asks the same parser
for the next start time. Both halves of devkube use this one module so that what validation
accepts is exactly what the controller can schedule. Standard 5-field syntax (minute, hour,
day of month, month, day of week; ``*``, ``?``, ranges, steps, lists, month and weekday
names), the ``@yearly``/``@monthly``/``@weekly``/``@daily``/``@hourly`` macros, ``@every
<duration>`` and a ``TZ=``/``CRON_TZ=`` prefix. No third-party cron library is installed, and
the rules are small enough to keep here.

    CronError    the schedule does not parse (the message is robfig/cron's)
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import zoneinfo

UTC = datetime.UTC


class CronError(ValueError):
    """A schedule that robfig/cron's ParseStandard refuses."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int]


_MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DOW_NAMES = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MINUTES = _Bounds(0, 59, {})
_HOURS = _Bounds(0, 23, {})
_DOM = _Bounds(1, 31, {})
_MONTHS = _Bounds(1, 12, _MONTH_NAMES)
_DOW = _Bounds(0, 6, _DOW_NAMES)

_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: the allowed values of each field (or a constant delay)."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    dom: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    dow: frozenset[int] = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    location: zoneinfo.ZoneInfo | None = None  # None: UTC (the controller manager's Local)
    every_seconds: int = 0  # @every: a constant delay instead of the fields

    def next_after(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The first activation strictly after ``moment`` (aware), or None within 5 years."""
        if self.every_seconds:
            base = moment.replace(microsecond=0)
            return base + datetime.timedelta(seconds=self.every_seconds)
        zone = self.location or UTC
        local = moment.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
        local += datetime.timedelta(minutes=1)
        limit = local.year + 5
        while local.year <= limit:
            if local.month not in self.months:
                year, month = (local.year + 1, 1) if local.month == 12 else (
                    local.year, local.month + 1)
                local = datetime.datetime(year, month, 1)
                continue
            if not self._day_matches(local):
                local = datetime.datetime(local.year, local.month, local.day) + datetime.timedelta(
                    days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + datetime.timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += datetime.timedelta(minutes=1)
                continue
            found = local.replace(tzinfo=zone).astimezone(UTC)
            if found <= moment:  # a wall time repeated by a DST change: skip the second one
                local += datetime.timedelta(minutes=1)
                continue
            return found
        return None

    def _day_matches(self, local: datetime.datetime) -> bool:
        dom_ok = local.day in self.dom
        dow_ok = (local.weekday() + 1) % 7 in self.dow  # Python: Monday 0; cron: Sunday 0
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _parse_int(expr: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": '
                        "invalid syntax")
    number = int(expr)
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {expr}")
    return number


def _int_or_name(expr: str, bounds: _Bounds) -> int:
    named = bounds.names.get(expr.lower())
    return named if named is not None else _parse_int(expr)


def _range(expr: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """The values of one ``number | number "-" number ["/" number]`` and whether it is a star."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = bounds.low, bounds.high, True
    else:
        start = _int_or_name(low_and_high[0], bounds)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_int(range_and_step[1])
        if len(low_and_high) == 1:
            end = bounds.high  # "N/step" means "N-max/step"
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, bounds: _Bounds) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for expr in (part for part in text.split(",") if part):
        found, is_star = _range(expr, bounds)
        values |= found
        star = star or is_star
    return frozenset(values), star


def _duration_seconds(text: str) -> float:
    """Go's ``time.ParseDuration`` for the unsigned forms @every takes."""
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError(f'time: invalid duration "{text}"')
    return total


def load_location(name: str) -> zoneinfo.ZoneInfo:
    """Go's ``time.LoadLocation`` for IANA names; ValueError "unknown time zone X" otherwise."""
    if name in ("", "UTC"):
        return zoneinfo.ZoneInfo("UTC")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


def parse(spec: str) -> Schedule:
    """robfig/cron v3 ``ParseStandard``: raise CronError with its message if ``spec`` is bad."""
    if not spec:
        raise CronError("empty spec string")
    location: zoneinfo.ZoneInfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        name = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        try:
            location = load_location(name)
        except ValueError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            try:
                seconds = _duration_seconds(spec[len("@every "):])
            except ValueError as e:
                raise CronError(f"failed to parse duration {spec}: {e}") from None
            return Schedule(every_seconds=max(1, int(seconds)), location=location)
        if spec not in _MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = _MACROS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minutes, _ = _field(fields[0], _MINUTES)
    hours, _ = _field(fields[1], _HOURS)
    dom, dom_star = _field(fields[2], _DOM)
    months, _ = _field(fields[3], _MONTHS)
    dow, dow_star = _field(fields[4], _DOW)
    return Schedule(minutes=minutes, hours=hours, dom=dom, months=months, dow=dow,
                    dom_star=dom_star, dow_star=dow_star, location=location)
