"""The SLA clock (pure code): business time across DST changes in Europe/Berlin and America/New_York,
holidays, weekends, night shifts, pauses, zero and very large targets, and properties."""

from __future__ import annotations

import time as timer
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aisupport.conversations.schemas import MAX_TARGET_MINUTES
from aisupport.conversations.schemas import BusinessHours as BusinessHoursIn
from aisupport.conversations.sla_clock import (
    ALWAYS_OPEN,
    BusinessHours,
    business_minutes_between,
    due_at,
    elapsed,
    local_instant,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_FIVE = ((540, 1020),)


def office(zone: str, *holidays: str) -> BusinessHours:
    """Monday to Friday 09:00-17:00 in `zone`."""
    return BusinessHours(
        zone, (NINE_TO_FIVE,) * 5 + ((), ()), frozenset(date.fromisoformat(d) for d in holidays)
    )


def week(zone: str, **days: tuple[tuple[int, int], ...]) -> BusinessHours:
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return BusinessHours(zone, tuple(days.get(name, ()) for name in names))


def at(zone: ZoneInfo, *parts: int) -> datetime:
    """A local wall time that exists and is not ambiguous."""
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- Stored shape ------------------------------------------------------------------------------


def test_built_from_the_stored_business_hours() -> None:
    stored = BusinessHoursIn.model_validate(
        {
            "time_zone": "Europe/Berlin",
            "weekly": {
                day: [{"start": "09:00", "end": "17:00"}]
                for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
            }
            | {"saturday": [{"start": "22:00", "end": "24:00"}], "sunday": []},
            "holidays": ["2026-12-25", "2026-12-24"],
        }
    ).model_dump()
    hours = BusinessHours.from_stored(stored)
    assert hours == BusinessHours(
        "Europe/Berlin",
        (NINE_TO_FIVE,) * 5 + (((1320, 1440),), ()),
        frozenset({date(2026, 12, 24), date(2026, 12, 25)}),
    )
    assert BusinessHours.from_stored(None) == ALWAYS_OPEN
    assert BusinessHours.from_stored({"time_zone": "UTC"}).never_open


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="overlapping"):
        BusinessHours("UTC", (((540, 700), (600, 800)),) + ((),) * 6)
    with pytest.raises(ValueError, match="seven days"):
        BusinessHours("UTC", ((),))
    with pytest.raises(KeyError):
        BusinessHours("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="time of day"):
        BusinessHours.from_stored({"time_zone": "UTC", "weekly": {"monday": [["09:00", "25:00"]]}})
    with pytest.raises(ValueError, match="aware"):
        due_at(datetime(2026, 6, 1, 9), 10, ALWAYS_OPEN)
    with pytest.raises(ValueError, match="negative"):
        due_at(utc(2026, 6, 1), -1, ALWAYS_OPEN)


# --- DST: Europe/Berlin (29 March and 25 October 2026) and America/New_York (8 March, 1 November) -------


@pytest.mark.parametrize(
    ("zone", "start", "minutes", "due"),
    [
        # Friday 16:00 CET + 2 h: one hour on Friday, the second on Monday at 09:00-10:00 CEST.
        ("Europe/Berlin", at(BERLIN, 2026, 3, 27, 16), 120, utc(2026, 3, 30, 8)),
        ("Europe/Berlin", at(BERLIN, 2026, 10, 23, 16), 120, utc(2026, 10, 26, 9)),
        ("America/New_York", at(NEW_YORK, 2026, 3, 6, 16, 30), 60, utc(2026, 3, 9, 13, 30)),
        ("America/New_York", at(NEW_YORK, 2026, 10, 30, 16, 30), 60, utc(2026, 11, 2, 14, 30)),
    ],
)
def test_office_hours_across_a_dst_weekend(zone: str, start: datetime, minutes: int, due: datetime) -> None:
    hours = office(zone)
    assert due_at(start, minutes, hours) == due
    assert business_minutes_between(start, due, hours) == minutes


@pytest.mark.parametrize(
    ("zone", "monday"), [("Europe/Berlin", date(2026, 3, 23)), ("America/New_York", date(2026, 10, 26))]
)
def test_a_nine_to_five_week_is_forty_hours_across_the_change(zone: str, monday: date) -> None:
    tz = ZoneInfo(zone)
    start = at(tz, monday.year, monday.month, monday.day, 9)
    after = monday + timedelta(days=7)
    end = at(tz, after.year, after.month, after.day, 9)
    assert end.astimezone(UTC) - start != timedelta(days=7)  # the clocks changed in between
    assert business_minutes_between(start, end, office(zone)) == 5 * 8 * 60
    # The change itself falls on Sunday; on every weekday 09:00-17:00 is 8 real hours.
    for offset in range(5):
        day = monday + timedelta(days=offset)
        nine = at(tz, day.year, day.month, day.day, 9)
        assert business_minutes_between(nine, nine + timedelta(hours=9), office(zone)) == 480


@pytest.mark.parametrize(
    ("zone", "sunday", "minutes"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 23 * 60),
        ("Europe/Berlin", date(2026, 10, 25), 25 * 60),
        ("America/New_York", date(2026, 3, 8), 23 * 60),
        ("America/New_York", date(2026, 11, 1), 25 * 60),
    ],
)
def test_a_whole_day_open_is_the_real_length_of_the_day(zone: str, sunday: date, minutes: int) -> None:
    hours = week(zone, sunday=((0, 1440),))
    tz = ZoneInfo(zone)
    midnight = datetime(sunday.year, sunday.month, sunday.day, tzinfo=tz)
    next_midnight = datetime(sunday.year, sunday.month, sunday.day + 1, tzinfo=tz)
    assert business_minutes_between(
        midnight - timedelta(hours=5), next_midnight + timedelta(hours=5), hours
    ) == (minutes)
    assert due_at(midnight - timedelta(days=1), minutes, hours) == next_midnight.astimezone(UTC)


def test_a_skipped_local_time_is_the_instant_of_the_jump() -> None:
    # Berlin, 29 March 2026: 02:00 CET (01:00 UTC) becomes 03:00 CEST; 02:00-02:59 never shows.
    assert local_instant(date(2026, 3, 29), 150, BERLIN) == utc(2026, 3, 29, 1)
    assert local_instant(date(2026, 3, 29), 120, BERLIN) == utc(2026, 3, 29, 1)
    assert local_instant(date(2026, 3, 29), 180, BERLIN) == utc(2026, 3, 29, 1)
    # 02:30-04:00 is open from the jump to 04:00 CEST: one hour.
    hours = week("Europe/Berlin", sunday=((150, 240),))
    start = utc(2026, 3, 28)
    assert due_at(start, 60, hours) == utc(2026, 3, 29, 2)
    assert business_minutes_between(start, utc(2026, 3, 30), hours) == 60
    # 02:00-02:30 that day is not open at all: the next Sunday's is.
    gap_only = week("Europe/Berlin", sunday=((120, 150),))
    assert due_at(start, 1, gap_only) == utc(2026, 4, 5, 0, 1)  # 02:01 CEST
    # New York, 8 March 2026: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    assert local_instant(date(2026, 3, 8), 150, NEW_YORK) == utc(2026, 3, 8, 7)


def test_an_ambiguous_local_time_is_its_first_occurrence() -> None:
    # New York, 1 November 2026: 02:00 EDT (06:00 UTC) becomes 01:00 EST; 01:00-01:59 shows twice.
    assert local_instant(date(2026, 11, 1), 90, NEW_YORK) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert local_instant(date(2026, 11, 1), 120, NEW_YORK) == utc(2026, 11, 1, 7)  # 02:00 EST
    # 01:00-03:00 is open from 01:00 EDT to 03:00 EST: three real hours.
    hours = week("America/New_York", sunday=((60, 180),))
    assert business_minutes_between(utc(2026, 10, 31), utc(2026, 11, 2), hours) == 180
    # Berlin, 25 October 2026: 03:00 CEST (01:00 UTC) becomes 02:00 CET.
    assert local_instant(date(2026, 10, 25), 150, BERLIN) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST


def test_a_night_shift_is_two_touching_intervals_and_runs_across_the_change() -> None:
    # Saturday 22:00-24:00 and Sunday 00:00-06:00, Berlin, over the spring-forward night: 7 real hours.
    hours = week("Europe/Berlin", saturday=((1320, 1440),), sunday=((0, 360),))
    start = at(BERLIN, 2026, 3, 28, 21)
    assert due_at(start, 120, hours) == utc(2026, 3, 28, 23)  # midnight, the end of Saturday's interval
    assert due_at(start, 121, hours) == utc(2026, 3, 28, 23, 1)
    assert due_at(start, 420, hours) == utc(2026, 3, 29, 4)  # 06:00 CEST
    assert due_at(start, 421, hours) == utc(2026, 4, 4, 20, 1)  # next Saturday 22:01 CEST
    assert business_minutes_between(start, at(BERLIN, 2026, 3, 29, 12), hours) == 420
    # The autumn night is 9 real hours.
    autumn = at(BERLIN, 2026, 10, 24, 21)
    assert business_minutes_between(autumn, at(BERLIN, 2026, 10, 25, 12), hours) == 540


def test_clocks_going_back_at_midnight() -> None:
    # Santiago, 5 April 2026: at 03:00 UTC the clock reaching midnight (-03) goes back to 23:00 (-04):
    # Saturday 23:00-24:00 shows twice, Sunday begins at 04:00 UTC.
    hours = week("America/Santiago", saturday=((1320, 1440),), sunday=((0, 120),))
    saturday = utc(2026, 4, 4, 12)
    assert local_instant(date(2026, 4, 4), 1440, ZoneInfo("America/Santiago")) == utc(2026, 4, 5, 4)
    assert business_minutes_between(saturday, utc(2026, 4, 6), hours) == 5 * 60  # 01:00-06:00 UTC
    assert business_minutes_between(saturday, utc(2026, 4, 5, 3, 30), hours) == 150  # 23:30, again
    assert due_at(saturday, 180, hours) == utc(2026, 4, 5, 4)
    assert due_at(saturday, 181, hours) == utc(2026, 4, 5, 4, 1)


# --- Holidays and weekends ------------------------------------------------------------------------------


def test_holidays_are_closed_all_day() -> None:
    hours = office("Europe/Berlin", "2026-12-24", "2026-12-25")
    start = at(BERLIN, 2026, 12, 23, 16)  # Wednesday
    # One hour on Wednesday; Thursday and Friday are holidays, then the weekend; Monday 09:00-10:00.
    assert due_at(start, 120, hours) == utc(2026, 12, 28, 9)
    assert business_minutes_between(start, at(BERLIN, 2026, 12, 28, 12), hours) == 60 + 180
    assert due_at(start, 120, office("Europe/Berlin")) == utc(2026, 12, 24, 9)


def test_a_holiday_is_a_local_date_even_for_a_night_shift_running_into_it() -> None:
    # Thursday 22:00-24:00 and Friday 00:00-06:00 in New York; Friday 3 July 2026 is a holiday: the
    # shift stops at Thursday midnight and resumes the next Thursday at 22:00.
    hours = BusinessHours(
        "America/New_York",
        ((), (), (), ((1320, 1440),), ((0, 360),), (), ()),
        frozenset({date(2026, 7, 3)}),
    )
    start = at(NEW_YORK, 2026, 7, 2, 23)
    assert due_at(start, 60, hours) == utc(2026, 7, 3, 4)  # midnight EDT
    assert due_at(start, 120, hours) == utc(2026, 7, 10, 3)  # Thursday 9 July 23:00 EDT
    # A holiday is the date in the inbox's zone: 3 July 02:00 UTC is still 2 July in New York.
    assert business_minutes_between(utc(2026, 7, 3, 2), utc(2026, 7, 3, 12), hours) == 120


def test_a_start_on_the_weekend_counts_from_the_next_opening() -> None:
    hours = office("Europe/Berlin")
    saturday = at(BERLIN, 2026, 6, 13, 12)
    assert due_at(saturday, 30, hours) == utc(2026, 6, 15, 7, 30)  # Monday 09:30 CEST
    assert business_minutes_between(saturday, at(BERLIN, 2026, 6, 15, 8), hours) == 0
    assert due_at(at(BERLIN, 2026, 6, 15, 17), 1, hours) == utc(2026, 6, 16, 7, 1)  # after closing


def test_zero_minutes_is_due_at_the_start_itself() -> None:
    saturday = at(BERLIN, 2026, 6, 13, 12)
    assert due_at(saturday, 0, office("Europe/Berlin")) == saturday
    assert business_minutes_between(saturday, saturday, office("Europe/Berlin")) == 0
    assert business_minutes_between(saturday, saturday - timedelta(days=3), office("Europe/Berlin")) == 0


def test_no_business_hours_is_always_open_in_utc() -> None:
    start = at(BERLIN, 2026, 3, 28, 23)
    assert due_at(start, 240, None) == utc(2026, 3, 29, 2)  # not 23:00 + 4 h on the wall: 03:00 CEST
    start = start.astimezone(UTC)
    assert business_minutes_between(start, start + timedelta(hours=4), None) == 240
    assert business_minutes_between(start, start + timedelta(seconds=90), ALWAYS_OPEN) == 1.5


def test_an_inbox_never_open_is_never_due() -> None:
    assert due_at(utc(2026, 1, 1), 1, BusinessHours("Europe/Berlin")) is None
    assert business_minutes_between(utc(2026, 1, 1), utc(2027, 1, 1), BusinessHours("Europe/Berlin")) == 0


# --- Pauses ------------------------------------------------------------------------------


def test_pauses_do_not_count() -> None:
    hours = office("Europe/Berlin")
    start = at(BERLIN, 2026, 6, 15, 9)  # Monday
    overlapping = [
        (at(BERLIN, 2026, 6, 15, 10, 30), at(BERLIN, 2026, 6, 15, 12)),
        (at(BERLIN, 2026, 6, 15, 10), at(BERLIN, 2026, 6, 15, 11)),
    ]
    assert elapsed(start, at(BERLIN, 2026, 6, 15, 13), overlapping, hours) == 120
    assert elapsed(start, at(BERLIN, 2026, 6, 15, 13), [], hours) == 240
    assert due_at(start, 480, hours, overlapping) == utc(2026, 6, 16, 9)  # Tuesday 11:00 CEST
    # A pause over the night takes only the open time it covers.
    night = [(at(BERLIN, 2026, 6, 15, 16), at(BERLIN, 2026, 6, 16, 10))]
    assert elapsed(start, at(BERLIN, 2026, 6, 16, 12), night, hours) == 7 * 60 + 2 * 60
    # A pause before the start or after now changes nothing; an empty or reversed one neither.
    outside = [
        (at(BERLIN, 2026, 6, 12, 9), at(BERLIN, 2026, 6, 15, 9)),
        (at(BERLIN, 2026, 6, 15, 14), at(BERLIN, 2026, 6, 15, 15)),
        (at(BERLIN, 2026, 6, 15, 11), at(BERLIN, 2026, 6, 15, 10)),
    ]
    assert elapsed(start, at(BERLIN, 2026, 6, 15, 13), outside, hours) == 240


def test_a_pause_still_open_stops_the_clock() -> None:
    hours = office("Europe/Berlin")
    start = at(BERLIN, 2026, 6, 15, 9)
    snoozed = [(at(BERLIN, 2026, 6, 15, 11), None)]
    assert elapsed(start, at(BERLIN, 2026, 6, 17, 12), snoozed, hours) == 120
    assert due_at(start, 60, hours, snoozed) == utc(2026, 6, 15, 8)
    assert due_at(start, 120, hours, snoozed) == utc(2026, 6, 15, 9)  # reached as the pause begins
    assert due_at(start, 121, hours, snoozed) is None
    assert due_at(start, 121, None, snoozed) is None


# --- Large targets ------------------------------------------------------------------------------


def test_very_large_targets_are_quick() -> None:
    began = timer.perf_counter()
    start = at(NEW_YORK, 2026, 3, 2, 9)  # Monday
    due = due_at(start, 100_000, office("America/New_York"))
    assert due is not None
    assert business_minutes_between(start, due, office("America/New_York")) == 100_000
    # 1666 h 40 min: 41 weeks of 40 hours, then Monday to Wednesday and 2 h 40 min on Thursday.
    assert due == at(NEW_YORK, 2026, 12, 17, 11, 40)
    assert due_at(start, MAX_TARGET_MINUTES, None) == start + timedelta(minutes=MAX_TARGET_MINUTES)
    # A year of minutes in one hour a week would take 168 years: past the horizon, never due.
    sparse = week("Europe/Berlin", monday=((540, 600),))
    assert due_at(start, MAX_TARGET_MINUTES, sparse) is None
    assert timer.perf_counter() - began < 2


# --- Properties ------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Havana",
    "America/Santiago",
]


@st.composite
def schedules(draw: st.DrawFn) -> BusinessHours:
    days = []
    for _ in range(7):
        marks = draw(st.lists(st.integers(0, 48).map(lambda half: half * 30), max_size=4, unique=True))
        marks = sorted(marks)[: len(marks) // 2 * 2]
        days.append(tuple(zip(marks[::2], marks[1::2], strict=True)))
    assume(sum(end - start for day in days for start, end in day) >= 240)
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=5))
    return BusinessHours(draw(st.sampled_from(ZONES)), tuple(days), holidays)


starts = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
pause_lists = st.lists(
    st.tuples(starts, st.timedeltas(timedelta(0), timedelta(days=3))).map(lambda p: (p[0], p[0] + p[1])),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(schedules(), starts, st.integers(0, 5000), st.integers(0, 5000))
def test_due_at_and_business_minutes_agree_and_are_monotonic(
    hours: BusinessHours, start: datetime, minutes: int, more: int
) -> None:
    due = due_at(start, minutes, hours)
    later = due_at(start, minutes + more, hours)
    assert due is not None
    assert later is not None
    assert start <= due <= later
    assert business_minutes_between(start, due, hours) == minutes
    # The earliest such instant: a second earlier, not yet.
    if minutes:
        assert business_minutes_between(start, due - timedelta(seconds=1), hours) < minutes


@settings(max_examples=40, deadline=None)
@given(schedules(), starts, st.integers(0, 3000), pause_lists)
def test_due_at_with_pauses_is_where_elapsed_reaches_the_target(
    hours: BusinessHours, start: datetime, minutes: int, pauses: list[tuple[datetime, datetime]]
) -> None:
    due = due_at(start, minutes, hours, pauses)
    assert due is not None
    assert elapsed(start, due, pauses, hours) == minutes
    assert due >= (due_at(start, minutes, hours) or start)  # pauses only push it later


CHANGE_DAYS = [
    date(2026, 3, 29),  # Berlin forward
    date(2026, 10, 25),  # Berlin back
    date(2026, 3, 8),  # New York forward
    date(2026, 11, 1),  # New York back
    date(2026, 4, 5),  # Lord Howe back half an hour
    date(2026, 10, 4),  # Lord Howe forward half an hour
    date(2026, 3, 8),  # Havana forward at midnight
    date(2026, 11, 1),  # Havana back at 01:00
    date(2026, 4, 5),  # Santiago back at midnight (to 23:00 the evening before)
    date(2026, 9, 6),  # Santiago forward at midnight
]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.sampled_from(CHANGE_DAYS).flatmap(lambda d: st.sampled_from([d - timedelta(days=1), d])),
    st.integers(0, 24 * 4).map(lambda quarter: quarter * 15),
)
def test_a_local_time_is_the_first_instant_the_clock_reads_it_or_later(
    zone_name: str, day: date, minute: int
) -> None:
    zone = ZoneInfo(zone_name)
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    # Scan minute by minute from well before (offsets are within 14 hours) for the first reading.
    probe = wall.replace(tzinfo=UTC) - timedelta(hours=15)
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += timedelta(minutes=1)
    assert local_instant(day, minute, zone) == probe
