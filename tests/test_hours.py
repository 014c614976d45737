"""Business hours for response-time targets: parsing, opening times, deadlines, elapsed business time, DST."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.hours import (
    ALWAYS,
    BusinessHours,
    Hours,
    HoursError,
    around_the_clock,
    hours_from_config,
    parse_timezone,
    parse_weekly,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
DESK = {"mon-fri": "08:00-20:00", "sat": "10:00-16:00"}


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BERLIN)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def desk(holidays: list[str] | dict[str, object] | None = None, weekly: dict[str, str] | None = None) -> BusinessHours:
    return BusinessHours.from_config("Europe/Berlin", weekly or DESK, holidays)


# --- parsing ---------------------------------------------------------------------------------------------


def test_weekly_example_becomes_minutes_per_weekday() -> None:
    assert parse_weekly(DESK) == {
        0: [(480, 1200)],
        1: [(480, 1200)],
        2: [(480, 1200)],
        3: [(480, 1200)],
        4: [(480, 1200)],
        5: [(600, 960)],
    }


def test_several_ranges_are_sorted_and_touching_ones_merged() -> None:
    weekly = parse_weekly({"mon": "14:00-24:00, 08:00-12:00 ,12:00-13:00"})
    assert weekly == {0: [(480, 780), (840, 1440)]}


def test_day_names_ignore_case_and_spaces_and_closed_days_are_absent() -> None:
    assert parse_weekly({"Sat": "10:00-16:00", "MON - TUE": "9:00-17:30", "sun": "closed"}) == {
        0: [(540, 1050)],
        1: [(540, 1050)],
        5: [(600, 960)],
    }


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ({"mon-fry": "08:00-20:00"}, "weekly: 'mon-fry' is not a day or a range of days like mon-fri"),
        ({"monday": "08:00-20:00"}, "weekly: 'monday' is not a day or a range of days like mon-fri"),
        ({"fri-mon": "08:00-20:00"}, "weekly: 'fri-mon' runs past the end of the week; write it as two keys: fri-sun and mon"),
        ({"sat-tue": "08:00-20:00"}, "weekly: 'sat-tue' runs past the end of the week; write it as two keys: sat-sun and mon-tue"),
        ({"sat": "25:00-26:00"}, "weekly.sat: '25:00-26:00' is not a time range like 08:00-20:00"),
        ({"sat": "10:00-24:30"}, "weekly.sat: '10:00-24:30' is not a time range like 08:00-20:00"),
        ({"sat": "10:60-12:00"}, "weekly.sat: '10:60-12:00' is not a time range like 08:00-20:00"),
        ({"mon-fri": "8-20"}, "weekly.mon-fri: '8-20' is not a time range like 08:00-20:00"),
        ({"mon": "08:00-12:00, noon-17:00"}, "weekly.mon: 'noon-17:00' is not a time range like 08:00-20:00"),
        ({"mon": 480}, "weekly.mon: 480 is not a time range like 08:00-20:00"),
        (
            {"fri": "20:00-02:00"},
            "weekly.fri: '20:00-02:00' does not end after it starts; for hours past midnight split them "
            "across two days, e.g. fri: 20:00-24:00 and sat: 00:00-02:00",
        ),
        (
            {"fri": "10:00-10:00"},
            "weekly.fri: '10:00-10:00' does not end after it starts; for hours past midnight split them "
            "across two days, e.g. fri: 20:00-24:00 and sat: 00:00-02:00",
        ),
        ({"mon-wed": "08:00-20:00", "wed": "09:00-10:00"}, "weekly: wed is given twice (in 'mon-wed' and 'wed')"),
        ({"mon": "08:00-12:00, 11:00-14:00"}, "weekly.mon: '08:00-12:00' and '11:00-14:00' overlap"),
    ],
)
def test_bad_weekly_hours_are_refused_naming_key_and_problem(weekly: dict[str, object], message: str) -> None:
    with pytest.raises(HoursError) as caught:
        parse_weekly(weekly)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize("weekly", [{}, {"mon-sun": "closed"}])
def test_a_schedule_without_open_hours_is_refused_when_built(weekly: dict[str, str]) -> None:
    with pytest.raises(HoursError, match=r"^weekly: no open hours on any day$"):
        BusinessHours.from_config("Europe/Berlin", weekly, None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Base", "timezone: 'Mars/Base' is not a time zone"),
        ("../../etc/passwd", "timezone: '../../etc/passwd' is not a time zone"),
        ("", "timezone: '' is not a time zone"),
    ],
)
def test_unknown_time_zone_is_refused(name: str, message: str) -> None:
    with pytest.raises(HoursError) as caught:
        parse_timezone(name)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("holidays", "message"),
    [
        ({"country": "XX"}, "holidays.country: 'XX' is not a country the holidays package knows"),
        ({"country": "DE", "subdiv": "ZZ"}, "holidays.subdiv: 'ZZ' is not a subdivision of DE the holidays package knows"),
        ({"country": ""}, "holidays.country: '' is not a country code like DE"),
        ({"land": "DE"}, "holidays: unknown key 'land'; use country, subdiv and dates"),
        (["2026-12-24", "2026-13-01"], "holidays[1]: '2026-13-01' is not a date like 2026-12-24"),
        ({"country": "DE", "dates": ["24.12.2026"]}, "holidays.dates[0]: '24.12.2026' is not a date like 2026-12-24"),
        ("DE", "holidays: expected a list of dates like [2026-12-24] or {country: DE}, got 'DE'"),
    ],
)
def test_bad_holidays_are_refused_naming_key_and_problem(holidays: object, message: str) -> None:
    with pytest.raises(HoursError) as caught:
        desk(holidays)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_holiday_list_accepts_strings_and_yaml_dates() -> None:
    hours = desk(["2026-12-24", date(2026, 12, 31)])  # type: ignore[list-item]
    assert hours.holidays == frozenset({date(2026, 12, 24), date(2026, 12, 31)})
    assert hours.is_holiday(date(2026, 12, 31))
    assert not hours.is_holiday(date(2026, 12, 25))  # only the listed dates without a country


def test_german_christmas_in_the_holidays_package_is_25th_and_26th_not_24th() -> None:
    hours = desk({"country": "de"})
    assert hours.country == "DE"
    assert [hours.is_holiday(date(2026, 12, d)) for d in (24, 25, 26)] == [False, True, True]


def test_subdivision_adds_regional_holidays_and_dates_add_company_closures() -> None:
    bavaria = desk({"country": "DE", "subdiv": "BY", "dates": ["2026-12-24"]})
    germany = desk({"country": "DE"})
    assert bavaria.is_holiday(date(2026, 1, 6))  # Epiphany: Bavaria only
    assert not germany.is_holiday(date(2026, 1, 6))
    assert bavaria.is_holiday(date(2026, 12, 24))


def test_config_section_builds_a_schedule_and_no_section_counts_around_the_clock() -> None:
    assert hours_from_config(None) is ALWAYS
    hours = hours_from_config({"timezone": "Europe/Berlin", "weekly": DESK, "holidays": {"country": "DE"}})
    assert isinstance(hours, BusinessHours)
    assert hours.timezone == BERLIN and hours.country == "DE" and hours.weekly[5] == [(600, 960)]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"weekly": DESK}, "business_hours: timezone is required"),
        ({"timezone": "Europe/Berlin"}, "business_hours: weekly is required"),
        ({"timezone": "Europe/Berlin", "weekly": DESK, "holiday": ["2026-12-24"]},
         "business_hours: unknown key 'holiday'; use timezone, weekly and holidays"),
        ({"timezone": 1, "weekly": DESK}, "timezone: 1 is not a time zone"),
        ({"timezone": "UTC", "weekly": "mon-fri 8-20"},
         "weekly: expected day: hours pairs like mon-fri: 08:00-20:00, got 'mon-fri 8-20'"),
    ],
)
def test_bad_config_section_is_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(HoursError) as caught:
        hours_from_config(section)
    assert str(caught.value) == message


# --- is_open / next_open ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (berlin(2026, 3, 4, 7, 59, 59), False),  # Wednesday before opening
        (berlin(2026, 3, 4, 8), True),  # opening moment
        (berlin(2026, 3, 4, 19, 59, 59), True),
        (berlin(2026, 3, 4, 20), False),  # closing moment is closed
        (berlin(2026, 3, 7, 9, 59), False),  # Saturday opens at 10
        (berlin(2026, 3, 7, 12), True),
        (berlin(2026, 3, 8, 12), False),  # Sunday
        (berlin(2026, 12, 25, 12), False),  # Christmas Day, a Friday
        (berlin(2026, 12, 24, 12), True),  # Christmas Eve is a working day in DE
    ],
)
def test_is_open_on_weekday_evening_weekend_and_holiday(moment: datetime, is_open: bool) -> None:
    assert desk({"country": "DE"}).is_open(moment) is is_open


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        (berlin(2026, 3, 4, 21), utc(2026, 3, 5, 7)),  # Wednesday evening → Thursday 08:00 CET
        (berlin(2026, 3, 4, 6), utc(2026, 3, 4, 7)),  # early morning → same day 08:00
        (berlin(2026, 3, 6, 20), utc(2026, 3, 7, 9)),  # Friday closing → Saturday 10:00
        (berlin(2026, 3, 7, 16, 30), utc(2026, 3, 9, 7)),  # Saturday after 16:00 → Monday 08:00
        (berlin(2026, 12, 24, 20), utc(2026, 12, 28, 7)),  # 25th (Fri) and 26th (Sat) are holidays
        (berlin(2026, 12, 31, 21), utc(2027, 1, 2, 9)),  # New Year's Day 2027 (Fri) → Saturday 10:00
        (berlin(2026, 6, 5, 20, 30), utc(2026, 6, 6, 8)),  # summer time: Saturday 10:00 CEST
    ],
)
def test_next_open_outside_hours_is_the_next_opening(moment: datetime, opens: datetime) -> None:
    result = desk({"country": "DE"}).next_open(moment)
    assert result == opens
    assert result.tzinfo is UTC


def test_next_open_inside_hours_is_the_same_moment_in_utc() -> None:
    new_york = datetime(2026, 3, 4, 5, 15, tzinfo=ZoneInfo("America/New_York"))  # 11:15 in Berlin
    result = desk().next_open(new_york)
    assert result == utc(2026, 3, 4, 10, 15)
    assert result.tzinfo is UTC


def test_listed_holiday_closes_the_day() -> None:
    hours = desk(["2026-12-24"])
    assert not hours.is_open(berlin(2026, 12, 24, 12))
    assert hours.next_open(berlin(2026, 12, 24, 12)) == utc(2026, 12, 25, 7)  # no country: 25th is open


@pytest.mark.parametrize("hours", [desk(), ALWAYS], ids=["business", "always"])
def test_naive_datetimes_are_refused(hours: Hours) -> None:
    naive = datetime(2026, 3, 4, 12)
    aware = utc(2026, 3, 4, 12)
    for call in (
        lambda: hours.is_open(naive),
        lambda: hours.next_open(naive),
        lambda: hours.add(naive, HOUR),
        lambda: hours.between(naive, aware),
        lambda: hours.between(aware, naive),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


def test_search_gives_up_after_400_closed_days() -> None:
    mondays = [(date(2026, 3, 2) + timedelta(weeks=w)).isoformat() for w in range(60)]
    hours = desk(mondays, weekly={"mon": "09:00-10:00"})
    with pytest.raises(HoursError, match="nothing open within 400 days"):
        hours.next_open(berlin(2026, 3, 1))
    with pytest.raises(HoursError, match="nothing open within 400 days"):
        hours.add(berlin(2026, 3, 1), HOUR)
    assert hours.next_open(berlin(2026, 3, 1) + timedelta(weeks=10)) == utc(2027, 4, 26, 7)  # first free Monday


# --- add -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "deadline"),
    [
        (berlin(2026, 3, 2, 9), HOUR, utc(2026, 3, 2, 9)),  # within a day: Monday 10:00 CET
        (berlin(2026, 3, 2, 19, 30), HOUR, utc(2026, 3, 3, 7, 30)),  # across closing → Tuesday 08:30
        (berlin(2026, 3, 2, 19), HOUR, utc(2026, 3, 2, 19)),  # uses up the day exactly: closing time 20:00
        (berlin(2026, 3, 6, 19, 30), 8 * HOUR, utc(2026, 3, 9, 8, 30)),  # Fri 0.5h + Sat 6h + Mon 1.5h
        (berlin(2026, 3, 8, 12), HOUR, utc(2026, 3, 9, 8)),  # starts on Sunday: counts from Monday 08:00
        (berlin(2026, 3, 2, 6), 90.5, utc(2026, 3, 2, 7, 1) + timedelta(seconds=30.5)),  # before opening
        (berlin(2026, 3, 2, 9), 60 * HOUR, utc(2026, 3, 7, 10)),  # Mon 11h + Tue-Fri 48h + Sat 10:00-11:00
    ],
)
def test_add_counts_only_business_time(start: datetime, seconds: float, deadline: datetime) -> None:
    result = desk().add(start, seconds)
    assert result == deadline
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "start", [berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 20), berlin(2026, 3, 8, 12), berlin(2026, 12, 25, 9)]
)
def test_add_zero_is_next_open(start: datetime) -> None:
    hours = desk({"country": "DE"})
    assert hours.add(start, 0) == hours.next_open(start)


def test_add_across_a_lunch_break() -> None:
    hours = desk(weekly={"mon-fri": "08:00-12:00, 13:00-17:00"})
    assert hours.add(berlin(2026, 3, 2, 11, 30), HOUR) == utc(2026, 3, 2, 12, 30)  # 13:30 CET


def test_add_skips_listed_holidays() -> None:
    hours = desk(["2026-12-24", "2026-12-31"], weekly={"mon-fri": "08:00-20:00"})
    # Wednesday 23rd 19:30 + 1h: 30 min, the 24th is closed, 30 min on Friday 25th (no country given).
    assert hours.add(berlin(2026, 12, 23, 19, 30), HOUR) == utc(2026, 12, 25, 7, 30)


def test_add_skips_german_christmas_but_not_christmas_eve() -> None:
    hours = desk({"country": "DE"})
    # Wed 23rd 0.5h, Thu 24th 12h, Fri 25th and Sat 26th holidays, Sunday closed → Monday 28th 08:30 CET.
    assert hours.add(berlin(2026, 12, 23, 19, 30), 13 * HOUR) == utc(2026, 12, 28, 7, 30)


@pytest.mark.parametrize(
    ("start", "deadline"),
    [
        (berlin(2026, 12, 31, 19, 30), utc(2027, 1, 2, 9, 30)),  # 1 Jan 2027 is a Friday → Saturday 10:30
        (berlin(2027, 12, 31, 19, 30), utc(2028, 1, 3, 7, 30)),  # 1 Jan 2028 is a Saturday → Monday 08:30
    ],
)
def test_add_across_new_year_uses_next_years_country_holidays(start: datetime, deadline: datetime) -> None:
    assert desk({"country": "DE"}).add(start, HOUR) == deadline


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_add_refuses_negative_or_non_finite_durations(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite number >= 0"):
        desk().add(berlin(2026, 3, 2, 9), seconds)


# --- between ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        (berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 9, 45), 45 * 60.0),
        (berlin(2026, 3, 6, 19), berlin(2026, 3, 9, 9), 8 * HOUR),  # Fri 1h + Sat 6h + Mon 1h
        (berlin(2026, 3, 8, 0), berlin(2026, 3, 8, 23), 0.0),  # Sunday
        (berlin(2026, 12, 25, 0), berlin(2026, 12, 27, 0), 0.0),  # Christmas holidays
        (berlin(2026, 3, 2, 12), berlin(2026, 3, 2, 9), 0.0),  # end before start
        (berlin(2026, 3, 2, 12), berlin(2026, 3, 2, 12), 0.0),
    ],
)
def test_between_counts_business_seconds(start: datetime, end: datetime, seconds: float) -> None:
    assert desk({"country": "DE"}).between(start, end) == seconds


def test_between_over_a_whole_year_walks_every_week() -> None:
    hours = BusinessHours.from_config("UTC", {"mon": "09:00-10:00"}, None)
    assert hours.between(utc(2026, 1, 1), utc(2027, 1, 1)) == 52 * HOUR  # 2026 has 52 Mondays


@pytest.mark.parametrize("spring_or_autumn", [date(2026, 3, 20), date(2026, 10, 16), date(2026, 12, 18)])
def test_between_and_add_are_inverse(spring_or_autumn: date) -> None:
    hours = desk(
        {"country": "DE", "dates": ["2026-12-31"]},
        weekly={"mon-thu": "08:00-12:00, 13:00-18:00", "fri": "08:00-16:00", "sat": "10:00-16:00", "sun": "02:00-04:00"},
    )
    rng = random.Random(f"hours-{spring_or_autumn}")
    base = datetime.combine(spring_or_autumn, datetime.min.time(), tzinfo=UTC)
    checked_landings = 0
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(0, 14 * 24 * 60))
        seconds = float(rng.randrange(0, 40 * 3600))
        deadline = hours.add(start, seconds)
        assert hours.between(start, deadline) == seconds
        end = start + timedelta(minutes=rng.randrange(0, 10 * 24 * 60), seconds=rng.randrange(1, 60))  # never on an opening
        if hours.is_open(end) and end > hours.next_open(start):
            assert hours.add(start, hours.between(start, end)) == end
            checked_landings += 1
    assert checked_landings > 50


# --- daylight saving -------------------------------------------------------------------------------------


def test_target_started_on_saturday_before_spring_forward_ends_monday_in_summer_time() -> None:
    deadline = desk().add(berlin(2026, 3, 28, 15, 30), HOUR)  # 30 min Saturday, 30 min Monday
    assert deadline == utc(2026, 3, 30, 6, 30)
    assert deadline.astimezone(BERLIN) == berlin(2026, 3, 30, 8, 30)


def test_around_the_clock_schedule_counts_real_seconds_across_the_spring_night() -> None:
    hours = desk(weekly={"mon-sun": "00:00-24:00"})
    deadline = hours.add(berlin(2026, 3, 29, 1, 30), HOUR)
    assert deadline == utc(2026, 3, 29, 1, 30)
    assert deadline.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"


@pytest.mark.parametrize(("day", "hours_long"), [(29, 23.0), (30, 24.0)])
def test_a_full_day_on_spring_forward_lasts_23_hours(day: int, hours_long: float) -> None:
    hours = desk(weekly={"mon-sun": "00:00-24:00"})
    assert hours.between(berlin(2026, 3, day), berlin(2026, 3, day + 1)) == hours_long * HOUR


def test_a_full_day_on_fall_back_lasts_25_hours() -> None:
    hours = desk(weekly={"sun": "00:00-24:00"})
    assert hours.between(utc(2026, 10, 24), utc(2026, 10, 27)) == 25 * HOUR
    assert hours.next_open(utc(2026, 10, 24)) == utc(2026, 10, 24, 22)  # midnight CEST


def test_opening_in_the_skipped_hour_begins_at_the_first_existing_moment() -> None:
    hours = desk(weekly={"sun": "02:30-05:00"})
    assert hours.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert hours.between(utc(2026, 3, 28), utc(2026, 3, 30)) == 2 * HOUR  # 03:00-05:00 CEST
    assert not hours.is_open(utc(2026, 3, 29, 0, 59))


def test_opening_in_the_repeated_hour_uses_its_first_occurrence() -> None:
    hours = desk(weekly={"sun": "02:30-04:00"})
    assert hours.next_open(utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert hours.between(utc(2026, 10, 24), utc(2026, 10, 26)) == 2.5 * HOUR  # until 04:00 CET
    assert hours.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second time round


def test_a_day_starting_in_a_midnight_gap_opens_when_the_clock_jumps() -> None:
    santiago = BusinessHours.from_config("America/Santiago", {"sun": "00:00-02:00"}, None)
    # Chile springs forward at midnight on Sunday 2026-09-06: 00:00 does not exist, 01:00 -03 is first.
    assert santiago.next_open(utc(2026, 9, 5)) == utc(2026, 9, 6, 4)
    assert santiago.between(utc(2026, 9, 1), utc(2026, 9, 10)) == HOUR


def test_autumn_deadline_moves_with_the_clock() -> None:
    # Saturday 24 Oct 15:30 CEST + 1h: 30 min Saturday, Monday 26th 08:30 CET = 07:30 UTC.
    assert desk().add(berlin(2026, 10, 24, 15, 30), HOUR) == utc(2026, 10, 26, 7, 30)


# --- around the clock ------------------------------------------------------------------------------------


def test_always_counts_every_second_in_utc() -> None:
    assert around_the_clock() is ALWAYS
    start = berlin(2026, 3, 29, 1, 30)
    assert ALWAYS.is_open(berlin(2026, 12, 25, 3))
    assert ALWAYS.next_open(start) == utc(2026, 3, 29, 0, 30) and ALWAYS.next_open(start).tzinfo is UTC
    assert ALWAYS.add(start, HOUR) == utc(2026, 3, 29, 1, 30)
    assert ALWAYS.add(start, HOUR).astimezone(BERLIN).hour == 3
    assert ALWAYS.between(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 23 * HOUR
    assert ALWAYS.between(berlin(2026, 3, 30), berlin(2026, 3, 29)) == 0.0
    with pytest.raises(ValueError, match="finite number >= 0"):
        ALWAYS.add(start, -5)
