"""The SLA clock: business time in an inbox's business hours (pure code, no database). Decision 0035.

Business time is real elapsed time (UTC instants) while the inbox is open. The inbox is open during
its weekly wall-clock intervals, read in its IANA time zone, except on its holidays (local calendar
dates, closed all day). A local time is placed at *the first instant the zone's clock reads that time
or later*: an ambiguous time (the hour repeated when clocks go back) is its first occurrence, and a
time the clock skips (clocks go forward) is the instant of the jump. So a 09:00-17:00 day is 8 hours
on every day whose change happens outside those hours, and an interval that contains a change is
shorter (spring) or longer (autumn) by the change. Intervals lie within one day (`24:00` is midnight at
the end); a night shift is two intervals, `22:00-24:00` and the next day's `00:00-06:00`, which touch.
No business hours means always open (24/7, UTC).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_MINUTES = 24 * 60
# due_at looks this far ahead for open time, then gives up (None): a year of targets in one hour a
# week would take 168 years; a day a week (8 hours) takes 21.
HORIZON_DAYS = 50 * 366
LAST_DAY = date(9998, 12, 31)  # days after this would overflow datetime
MINUTE = timedelta(minutes=1)

Span = tuple[datetime, datetime]
Pause = tuple[datetime, datetime | None]


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= DAY_MINUTES or len(minutes) != 2:
        raise ValueError(f"not a time of day: {text!r}")
    return value


@dataclass(frozen=True)
class BusinessHours:
    """When an inbox is open: per weekday (Monday first) its intervals in minutes after local midnight
    (`(540, 1020)` is 09:00-17:00), in `time_zone`, closed on `holidays`."""

    time_zone: str = "UTC"
    weekly: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        zoneinfo.ZoneInfo(self.time_zone)  # ZoneInfoNotFoundError (a KeyError) for an unknown zone
        if len(self.weekly) != 7:
            raise ValueError("weekly needs seven days, Monday first")
        for day in self.weekly:
            previous_end = 0
            for start, end in sorted(day):
                if not 0 <= start < end <= DAY_MINUTES or start < previous_end:
                    raise ValueError(f"bad or overlapping interval {start}-{end}")
                previous_end = end

    @classmethod
    def always_open(cls) -> BusinessHours:
        return cls("UTC", (((0, DAY_MINUTES),),) * 7)

    @classmethod
    def from_stored(cls, value: Mapping[str, Any] | None) -> BusinessHours:
        """From an inbox's `business_hours` as stored (`{"time_zone", "weekly": {"monday": [{"start":
        "09:00", "end": "17:00"}]}, "holidays": ["2026-12-25"]}`); None is always open."""
        if value is None:
            return cls.always_open()
        weekly_in = value.get("weekly") or {}
        weekly: list[tuple[tuple[int, int], ...]] = []
        for name in WEEKDAYS:
            intervals = []
            for interval in weekly_in.get(name) or []:
                start, end = (
                    (interval["start"], interval["end"]) if isinstance(interval, Mapping) else interval
                )
                intervals.append((_minutes(start), _minutes(end)))
            weekly.append(tuple(sorted(intervals)))
        holidays = frozenset(date.fromisoformat(day) for day in value.get("holidays") or [])
        return cls(str(value["time_zone"]), tuple(weekly), holidays)

    @property
    def never_open(self) -> bool:
        return not any(self.weekly)


ALWAYS_OPEN = BusinessHours.always_open()


def local_instant(day: date, minute: int, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant (UTC) at which the zone's clock reads `minute` after midnight of `day`, or
    later: an ambiguous time is its first occurrence, a skipped time the instant of the jump."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    earliest, latest = min(first, second), max(first, second)
    if earliest.astimezone(zone).replace(tzinfo=None) == wall:
        return earliest  # exists (if ambiguous, fold 0 and 1 differ and this is the first)
    # Skipped: the jump lies between the two readings; find it to the second (zone offsets are whole
    # seconds). The clock reads before `wall` at `low`, at or after it at `high`.
    low, high = earliest, latest
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)  # both ends are whole seconds: still strictly inside
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


@lru_cache(maxsize=8192)
def _day_spans(hours: BusinessHours, day: date) -> tuple[Span, ...]:
    if day in hours.holidays:
        return ()
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    spans = []
    for start, end in hours.weekly[day.weekday()]:
        opens, closes = local_instant(day, start, zone), local_instant(day, end, zone)
        if closes > opens:
            spans.append((opens, closes))
    return tuple(sorted(spans))


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return moment.astimezone(UTC)


def _open_spans(hours: BusinessHours, start: datetime, last_day: date) -> Iterator[Span]:
    """The open spans at or after `start` (UTC, ascending, clipped to start), day by day up to
    `last_day` (local)."""
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    # The day before too: a day's spans end at the next midnight at the latest.
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= last_day:
        for opens, closes in _day_spans(hours, day):
            if closes > start:
                yield max(opens, start), closes
        day += timedelta(days=1)


def _merged(pauses: Iterable[Pause]) -> list[Pause]:
    ordered = sorted(
        (
            (_aware(begin, "a pause's start"), None if end is None else _aware(end, "a pause's end"))
            for begin, end in pauses
        ),
        key=lambda pause: pause[0],
    )
    merged: list[Pause] = []
    for begin, end in ordered:
        if end is not None and end <= begin:
            continue
        if merged and (merged[-1][1] is None or begin <= merged[-1][1]):
            last_begin, last_end = merged[-1]
            merged[-1] = (last_begin, None if end is None or last_end is None else max(last_end, end))
        else:
            merged.append((begin, end))
    return merged


def _unpaused(spans: Iterable[Span], pauses: Sequence[Pause]) -> Iterator[Span]:
    """The parts of the ascending `spans` outside the merged `pauses` (an open pause ends them)."""
    index = 0
    for opens, closes in spans:
        cursor = opens
        while index < len(pauses):
            begin, end = pauses[index]
            if end is not None and end <= cursor:
                index += 1
                continue
            if begin >= closes:
                break
            if begin > cursor:
                yield cursor, begin
            if end is None:
                return
            cursor = max(cursor, end)
            if cursor >= closes:
                break
        if cursor < closes:
            yield cursor, closes


def business_time_between(
    start: datetime,
    end: datetime,
    hours: BusinessHours | None = None,
    pauses: Iterable[Pause] = (),
) -> timedelta:
    """Open time from `start` to `end` outside `pauses` (zero if `end` is not after `start`)."""
    hours = hours or ALWAYS_OPEN
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return timedelta(0)
    # The next day too, should a clock going back across midnight read `end` as the evening before.
    end_day = end.astimezone(zoneinfo.ZoneInfo(hours.time_zone)).date()
    last_day = min(end_day + timedelta(days=1), LAST_DAY)
    total = timedelta(0)
    for opens, closes in _unpaused(_open_spans(hours, start, last_day), _merged(pauses)):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


def business_minutes_between(start: datetime, end: datetime, hours: BusinessHours | None = None) -> float:
    """Minutes of open time from `start` to `end`."""
    return business_time_between(start, end, hours) / MINUTE


def elapsed(
    start: datetime,
    now: datetime,
    pauses: Iterable[Pause],
    hours: BusinessHours | None = None,
) -> float:
    """Minutes of open time from `start` to `now`, leaving out the `pauses` (`(from, to)`, `to` None
    while still paused; they may overlap): the time spent `pending` or `snoozed`."""
    return business_time_between(start, now, hours, pauses) / MINUTE


def due_at(
    start: datetime,
    minutes: int,
    hours: BusinessHours | None = None,
    pauses: Iterable[Pause] = (),
) -> datetime | None:
    """The earliest instant (UTC) by which `minutes` of open time outside `pauses` have elapsed since
    `start`: counted from the next opening when `start` is closed; `start` itself for zero minutes.
    None when that never happens: a pause still open before the target is reached (the clock is
    stopped), or no open time within HORIZON_DAYS (an inbox never open)."""
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    start = _aware(start, "start")
    remaining = timedelta(minutes=minutes)
    if not remaining:
        return start
    hours = hours or ALWAYS_OPEN
    merged = _merged(pauses)
    if hours == ALWAYS_OPEN and not merged:
        return start + remaining
    if hours.never_open:
        return None
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    last_day = min(start.astimezone(zone).date() + timedelta(days=HORIZON_DAYS), LAST_DAY)
    for opens, closes in _unpaused(_open_spans(hours, start, last_day), merged):
        if closes - opens >= remaining:
            return opens + remaining
        remaining -= closes - opens
    return None
