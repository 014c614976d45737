"""Business hours: when response-time targets count, and how much business time has passed.

A schedule is weekly opening hours in one time zone, minus holidays (a list of dates, a country's public
holidays from the `holidays` package, or both). Without one, time counts around the clock (`ALWAYS`).

Every method takes timezone-aware datetimes and returns UTC ones. Open intervals are half-open
`[opening, closing)`: at closing time the desk is closed, and a deadline that uses up the last minute of an
interval falls on its closing moment rather than on the next opening.

Opening hours are wall-clock times in the schedule's zone, converted to UTC day by day, so a day of
`00:00-24:00` lasts 23 or 25 hours on daylight-saving days. A wall-clock time that does not exist (the hour
skipped in spring) means the first moment that exists after it, i.e. the transition itself; a time that
occurs twice (the hour repeated in autumn) means its first occurrence (`fold=0`).

Overlapping ranges for one day (`08:00-12:00, 11:00-14:00`) are refused as a likely typo; ranges that only
touch (`08:00-12:00, 12:00-17:00`) are merged into one.

The `holidays` package is imported only when a schedule names a country.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from holidays import HolidayBase

__all__ = [
    "ALWAYS",
    "MAX_SEARCH_DAYS",
    "AroundTheClock",
    "BusinessHours",
    "Hours",
    "HoursError",
    "Weekly",
    "around_the_clock",
    "hours_from_config",
    "parse_holidays",
    "parse_timezone",
    "parse_weekly",
]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SEARCH_DAYS: Final = 400
"""How far `next_open` and `add` look ahead before giving up (a schedule closed for longer is a mistake)."""

Weekly = dict[int, list[tuple[int, int]]]
"""Weekday (0 = Monday) → sorted, disjoint `(start, end)` minutes since local midnight; closed days absent."""

_DAY_KEY = re.compile(r"^\s*([a-z]{3})\s*(?:-\s*([a-z]{3})\s*)?$")
_TIME_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CLOSED = "closed"


class HoursError(ValueError):
    """A business-hours setting is wrong; the message names the key and the problem."""


class Hours(Protocol):
    """What response-time targets need from a schedule; `BusinessHours` and `ALWAYS` both provide it."""

    def is_open(self, t: datetime) -> bool: ...

    def next_open(self, t: datetime) -> datetime: ...

    def add(self, start: datetime, seconds: float) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> float: ...


# --- parsing -------------------------------------------------------------------------------------------


def parse_timezone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise HoursError(f"timezone: {name!r} is not a time zone")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"timezone: {name!r} is not a time zone") from None


def _parse_days(key: object) -> list[int]:
    match = _DAY_KEY.match(key.lower()) if isinstance(key, str) else None
    if match is None or match[1] not in DAYS or (match[2] is not None and match[2] not in DAYS):
        raise HoursError(f"weekly: {key!r} is not a day or a range of days like mon-fri")
    first = DAYS.index(match[1])
    last = first if match[2] is None else DAYS.index(match[2])
    if last < first:
        tail = "mon" if last == 0 else f"mon-{DAYS[last]}"
        raise HoursError(
            f"weekly: {key!r} runs past the end of the week; write it as two keys: {DAYS[first]}-sun and {tail}"
        )
    return list(range(first, last + 1))


def _parse_ranges(key: str, value: object) -> list[tuple[int, int]]:
    """`"08:00-12:00, 13:00-17:00"` → `[(480, 720), (780, 1020)]`, touching ranges merged."""
    if not isinstance(value, str):
        raise HoursError(f"weekly.{key}: {value!r} is not a time range like 08:00-20:00")
    if value.strip().lower() == _CLOSED:
        return []
    ranges: list[tuple[int, int, str]] = []
    for piece in value.split(","):
        match = _TIME_RANGE.match(piece)
        if match is None:
            raise HoursError(f"weekly.{key}: {piece.strip()!r} is not a time range like 08:00-20:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise HoursError(f"weekly.{key}: {piece.strip()!r} is not a time range like 08:00-20:00")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise HoursError(
                f"weekly.{key}: {piece.strip()!r} does not end after it starts; for hours past midnight "
                "split them across two days, e.g. fri: 20:00-24:00 and sat: 00:00-02:00"
            )
        ranges.append((start, end, piece.strip()))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for i, (start, end, text) in enumerate(ranges):
        if merged and start < merged[-1][1]:
            raise HoursError(f"weekly.{key}: {ranges[i - 1][2]!r} and {text!r} overlap")
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def parse_weekly(mapping: Mapping[str, str]) -> Weekly:
    """`{"mon-fri": "08:00-20:00", "sat": "10:00-16:00"}` → `{0: [(480, 1200)], …, 5: [(600, 960)]}`.

    Keys are a day (`mon`…`sun`) or a range within one week (`mon-fri`); values are one or more
    comma-separated ranges, or `closed`. Days not named are closed.
    """
    if not isinstance(mapping, Mapping):
        raise HoursError(f"weekly: expected day: hours pairs like mon-fri: 08:00-20:00, got {mapping!r}")
    weekly: Weekly = {}
    given: dict[int, str] = {}
    for key, value in mapping.items():
        days = _parse_days(key)
        for day in days:
            if day in given:
                raise HoursError(f"weekly: {DAYS[day]} is given twice (in {given[day]!r} and {key!r})")
            given[day] = key
        ranges = _parse_ranges(key, value)
        for day in days:
            if ranges:
                weekly[day] = list(ranges)
    return dict(sorted(weekly.items()))


def _parse_date(where: str, value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # YAML reads an unquoted 2026-12-24 as a date already
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise HoursError(f"{where}: {value!r} is not a date like 2026-12-24")


def parse_holidays(value: object) -> tuple[frozenset[date], str | None, str | None]:
    """A list of dates, or `{country: DE}` with optional `subdiv: BY` and extra `dates: [...]`.

    Returns `(dates, country, subdiv)`; the country is checked when the schedule is built.
    """
    if value is None:
        return frozenset(), None, None
    if isinstance(value, list | tuple):
        return frozenset(_parse_date(f"holidays[{i}]", v) for i, v in enumerate(value)), None, None
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in ("country", "subdiv", "dates"))
        if unknown:
            raise HoursError(f"holidays: unknown key {unknown[0]!r}; use country, subdiv and dates")
        country, subdiv, extra = value.get("country"), value.get("subdiv"), value.get("dates", [])
        if not isinstance(country, str) or not country.strip():
            raise HoursError(f"holidays.country: {country!r} is not a country code like DE")
        if subdiv is not None and (not isinstance(subdiv, str) or not subdiv.strip()):
            raise HoursError(f"holidays.subdiv: {subdiv!r} is not a subdivision code like BY")
        if not isinstance(extra, list | tuple):
            raise HoursError(f"holidays.dates: {extra!r} is not a list of dates like [2026-12-24]")
        dates = frozenset(_parse_date(f"holidays.dates[{i}]", v) for i, v in enumerate(extra))
        return dates, country.strip().upper(), subdiv.strip().upper() if subdiv else None
    raise HoursError(f"holidays: expected a list of dates like [2026-12-24] or {{country: DE}}, got {value!r}")


def _country_calendar(country: str, subdiv: str | None, years: int | None = None) -> HolidayBase:
    try:
        import holidays
    except ImportError:  # pragma: no cover - the package is a dependency
        raise HoursError("holidays.country: needs the 'holidays' package (pip install holidays)") from None
    try:
        return holidays.country_holidays(country, subdiv=subdiv, years=years)
    except NotImplementedError:
        pass
    try:
        holidays.country_holidays(country)
    except NotImplementedError:
        raise HoursError(f"holidays.country: {country!r} is not a country the holidays package knows") from None
    raise HoursError(f"holidays.subdiv: {subdiv!r} is not a subdivision of {country} the holidays package knows")


# --- time arithmetic -----------------------------------------------------------------------------------


def _utc(t: datetime, name: str = "t") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {t!r}")
    return t.astimezone(UTC)


def _duration(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening hours in `timezone`, minus `holidays` and (if set) a country's public holidays."""

    timezone: ZoneInfo
    weekly: Weekly
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdiv: str | None = None
    _country_years: dict[int, frozenset[date]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not any(self.weekly.values()):
            raise HoursError("weekly: no open hours on any day")
        if self.country is not None:
            _country_calendar(self.country, self.subdiv)  # fails now rather than on the first deadline
        elif self.subdiv is not None:
            raise HoursError("holidays.subdiv: needs a country")

    @classmethod
    def from_config(
        cls,
        timezone: str,
        weekly: Mapping[str, str],
        holidays: list[str] | Mapping[str, object] | None = None,
    ) -> BusinessHours:
        dates, country, subdiv = parse_holidays(holidays)
        return cls(parse_timezone(timezone), parse_weekly(weekly), dates, country, subdiv)

    def is_holiday(self, day: date) -> bool:
        """Whether the local date `day` is closed all day as a holiday."""
        if day in self.holidays:
            return True
        if self.country is None:
            return False
        year = self._country_years.get(day.year)
        if year is None:
            year = frozenset(_country_calendar(self.country, self.subdiv, day.year))
            self._country_years[day.year] = year
        return day in year

    def is_open(self, t: datetime) -> bool:
        t = _utc(t)
        for opening, _closing in self._intervals(t, until=t + timedelta(days=2)):
            return opening <= t
        return False

    def next_open(self, t: datetime) -> datetime:
        t = _utc(t)
        for opening, _closing in self._intervals(t, limit_days=MAX_SEARCH_DAYS):
            return max(opening, t)
        raise AssertionError("unreachable: _intervals raises when it gives up")  # pragma: no cover

    def add(self, start: datetime, seconds: float) -> datetime:
        start, left = _utc(start, "start"), _duration(seconds)
        for opening, closing in self._intervals(start, limit_days=MAX_SEARCH_DAYS):
            opening = max(opening, start)
            if left <= closing - opening:
                return opening + left
            left -= closing - opening
        raise AssertionError("unreachable: _intervals raises when it gives up")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> float:
        start, end = _utc(start, "start"), _utc(end, "end")
        total = timedelta()
        if end <= start:
            return 0.0
        for opening, closing in self._intervals(start, until=end):
            total += min(closing, end) - max(opening, start)
        return total.total_seconds()

    def _intervals(
        self, t: datetime, *, until: datetime | None = None, limit_days: int | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC) that end after `t`, in order, day by day.

        Stops before the first interval opening at or after `until`; raises HoursError after
        `limit_days` local days without reaching the caller's goal.
        """
        day = t.astimezone(self.timezone).date() - timedelta(days=1)  # a repeated midnight can hide a day
        last = day + timedelta(days=limit_days + 1) if limit_days is not None else None
        while True:
            if last is not None and day > last:
                raise HoursError(f"business hours: nothing open within {limit_days} days after {t.isoformat()}")
            ranges = self.weekly.get(day.weekday())
            if ranges and not self.is_holiday(day):
                for start, end in ranges:
                    opening, closing = self._wall_to_utc(day, start), self._wall_to_utc(day, end)
                    if until is not None and opening >= until:
                        return
                    if closing > t and closing > opening:
                        yield opening, closing
            elif until is not None and self._wall_to_utc(day, 0) >= until:
                return
            day += timedelta(days=1)

    def _wall_to_utc(self, day: date, minute: int) -> datetime:
        """The UTC moment of local wall-clock `minute` on `day` (1440 = next midnight); see module docstring."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        first = wall.replace(tzinfo=self.timezone).astimezone(UTC)
        other = wall.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if other >= first:
            return first  # an ordinary time, or the first of a repeated one
        # Skipped time: `other` is before the transition and `first` after it; find the transition.
        lo, hi = int(other.timestamp()), math.ceil(first.timestamp())
        target = first.astimezone(self.timezone).utcoffset()
        while lo < hi:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self.timezone).utcoffset() == target:
                hi = mid
            else:
                lo = mid + 1
        return datetime.fromtimestamp(lo, UTC)


class AroundTheClock:
    """The schedule when none is configured: every second counts."""

    def is_open(self, t: datetime) -> bool:
        _utc(t)
        return True

    def next_open(self, t: datetime) -> datetime:
        return _utc(t)

    def add(self, start: datetime, seconds: float) -> datetime:
        return _utc(start, "start") + _duration(seconds)

    def between(self, start: datetime, end: datetime) -> float:
        return max(timedelta(), _utc(end, "end") - _utc(start, "start")).total_seconds()

    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Final = AroundTheClock()


def around_the_clock() -> AroundTheClock:
    return ALWAYS


def hours_from_config(section: Mapping[str, object] | None) -> Hours:
    """The `business_hours:` config section (already parsed from YAML) → a schedule; none → `ALWAYS`."""
    if section is None:
        return ALWAYS
    if not isinstance(section, Mapping):
        raise HoursError(f"business_hours: expected timezone, weekly and holidays, got {section!r}")
    unknown = sorted(str(k) for k in section if k not in ("timezone", "weekly", "holidays"))
    if unknown:
        raise HoursError(f"business_hours: unknown key {unknown[0]!r}; use timezone, weekly and holidays")
    for required in ("timezone", "weekly"):
        if section.get(required) is None:
            raise HoursError(f"business_hours: {required} is required")
    weekly = section["weekly"]
    if not isinstance(weekly, Mapping):
        raise HoursError(f"weekly: expected day: hours pairs like mon-fri: 08:00-20:00, got {weekly!r}")
    holidays = section.get("holidays")
    if holidays is not None and not isinstance(holidays, list | Mapping):
        raise HoursError(f"holidays: expected a list of dates like [2026-12-24] or {{country: DE}}, got {holidays!r}")
    timezone = section["timezone"]
    if not isinstance(timezone, str):
        raise HoursError(f"timezone: {timezone!r} is not a time zone")
    return BusinessHours.from_config(timezone, weekly, holidays)
