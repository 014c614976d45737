"""On-call schedule: rotations of people handing over at set times, and overrides that cover for them.

A rotation hands over every `length` from `start`, cycling through its people in order. When hand-offs happen:

- a length of whole days or weeks (`1d`, `1w`, `14d`) keeps the wall-clock time in the rotation's zone, so
  "every Monday 09:00 Europe/Berlin" stays 09:00 in winter and in summer (the hand-off moves by an hour in UTC);
- any other length (`12h`, `90m`, `1d12h`) counts elapsed time, so a `12h` rotation hands over every 12 real
  hours and its wall-clock hand-off times shift by an hour when daylight saving starts or ends.

A wall-clock time that does not exist (the hour skipped in spring) means the first moment after the jump, i.e.
the transition itself (02:30 on the spring-forward Sunday in Berlin → 03:00 CEST); a time that occurs twice
(the hour repeated in autumn) means its first occurrence (02:30 CEST, not 02:30 CET). The same rule reads naive
`start`, `from` and `to` values from the config.

An override puts one person on call for one rotation between two moments, whatever the rotation says.
Overrides may overlap: the one that started last wins (for the same start, the later one in the list), and when
it ends the one it interrupted resumes, so "Carol covers the holidays, Gus takes Christmas Day" reads naturally.

A `Shift` is one stretch of one person's duty: a rotation turn, or an override, cut where another shift
interrupts it. Intervals are half-open `[start, end)`: at a hand-off moment the new person is on call. Adjacent
shifts can name the same person (a one-person rotation hands over to itself every `length`; an override for
the person whose turn follows ends inside their turn).

Every method takes timezone-aware datetimes (naive ones raise `ValueError`) and returns UTC ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "OncallError",
    "Override",
    "Rotation",
    "Schedule",
    "Shift",
    "parse_length",
]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LENGTH: Final = re.compile(r"^(?:\d+[smhdw])+$")
_LENGTH_PART: Final = re.compile(r"(\d+)([smhdw])")
_DAY: Final = timedelta(days=1)
_ROTATION_KEYS: Final = ("name", "people", "start", "length", "timezone")
_OVERRIDE_KEYS: Final = ("who", "from", "to", "rotation")


class OncallError(ValueError):
    """An on-call setting is wrong; the message names the key (`oncall.rotations[0].people: ...`)."""


# --- parsing -------------------------------------------------------------------------------------------


def parse_length(value: object, *, key: str = "length") -> timedelta:
    """`30s`, `5m`, `2h`, `1d`, `1w` or a combination like `1d12h`; a number means seconds."""
    if isinstance(value, timedelta):
        length = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise OncallError(f"{key}: {value!r} is not a duration like 30s, 5m, 2h, 1d or 1w")
        length = timedelta(seconds=value)
    elif isinstance(value, str) and _LENGTH.match(compact := "".join(value.split()).lower()):
        length = timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _LENGTH_PART.findall(compact)))
    else:
        raise OncallError(f"{key}: {value!r} is not a duration like 30s, 5m, 2h, 1d or 1w")
    if length <= timedelta(0):
        raise OncallError(f"{key}: {value!r} must be positive")
    return length


def _parse_timezone(value: object, key: str) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise OncallError(f"{key}: {value!r} is not a time zone")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise OncallError(f"{key}: {value!r} is not a time zone") from None


def _parse_datetime(value: object, key: str) -> datetime:
    """A config moment as YAML hands it over: a string, a (naive or aware) datetime, or a date (midnight)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise OncallError(f"{key}: {value!r} is not a date and time like 2026-11-02T09:00")


def _parse_person(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OncallError(f"{key}: {value!r} is not a user id")
    return value.strip()


def _check_keys(entry: object, key: str, allowed: Sequence[str]) -> Mapping[str, object]:
    if not isinstance(entry, Mapping):
        raise OncallError(f"{key}: expected a mapping with {', '.join(allowed)}, got {entry!r}")
    unknown = sorted(str(k) for k in entry if k not in allowed)
    if unknown:
        raise OncallError(f"{key}: unknown key {unknown[0]!r}; use {', '.join(allowed)}")
    return entry


def _parse_rotation(entry: object, key: str) -> Rotation:
    entry = _check_keys(entry, key, _ROTATION_KEYS)
    for required in _ROTATION_KEYS:
        if entry.get(required) is None:
            raise OncallError(f"{key}: {required} is required")
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        raise OncallError(f"{key}.name: {name!r} is not a name")
    people = entry["people"]
    if isinstance(people, str) or not isinstance(people, Sequence):
        raise OncallError(f"{key}.people: expected a list of user ids, got {people!r}")
    if not people:
        raise OncallError(f"{key}.people: needs at least one person")
    zone = _parse_timezone(entry["timezone"], f"{key}.timezone")
    start = _parse_datetime(entry["start"], f"{key}.start")
    return Rotation(
        name=name.strip(),
        people=tuple(_parse_person(p, f"{key}.people[{i}]") for i, p in enumerate(people)),
        # A naive start is a wall-clock time in the zone; Rotation keeps that wall time as its anchor.
        start=start if start.tzinfo is not None else start.replace(tzinfo=zone, fold=0),
        length=parse_length(entry["length"], key=f"{key}.length"),
        timezone=zone,
    )


def _parse_override(entry: object, key: str, rotations: Sequence[Rotation]) -> Override:
    entry = _check_keys(entry, key, _OVERRIDE_KEYS)
    for required in ("who", "from", "to"):
        if entry.get(required) is None:
            raise OncallError(f"{key}: {required} is required")
    name = entry.get("rotation")
    if name is None:
        if not rotations:
            raise OncallError(f"{key}.rotation: there is no rotation to override")
        rotation = rotations[0]
    else:
        found = [r for r in rotations if isinstance(name, str) and r.name == name.strip()]
        if not found:
            raise OncallError(f"{key}.rotation: {name!r} is not a rotation")
        rotation = found[0]
    start = _local_or_aware(_parse_datetime(entry["from"], f"{key}.from"), rotation.timezone)
    end = _local_or_aware(_parse_datetime(entry["to"], f"{key}.to"), rotation.timezone)
    if end <= start:
        raise OncallError(f"{key}: 'to' must be after 'from'")
    return Override(who=_parse_person(entry["who"], f"{key}.who"), start=start, end=end, rotation=rotation.name)


# --- time arithmetic -----------------------------------------------------------------------------------


def _utc(t: datetime, name: str = "t") -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {t!r}")
    return t.astimezone(UTC)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC moment of naive wall-clock `wall` in `zone`: skipped → the transition, repeated → first."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if other >= first:
        return first  # an ordinary time, or the first occurrence of a repeated one
    # Skipped: `other` lies before the transition and `first` after it; find the transition itself.
    lo, hi = math.floor(other.timestamp()), math.ceil(first.timestamp())
    target = first.astimezone(zone).utcoffset()
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


def _local_or_aware(t: datetime, zone: ZoneInfo) -> datetime:
    return _wall_to_utc(t, zone) if t.tzinfo is None else _utc(t)


def _same_zone(tz: object, zone: ZoneInfo) -> bool:
    return tz is zone or (isinstance(tz, ZoneInfo) and tz.key == zone.key)


# --- the schedule --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """People taking turns, in order, handing over every `length` from `start` (see the module docstring).

    `start` is normalised to UTC. Given in the rotation's own zone, its wall-clock time is the anchor for
    day-based lengths, so a start of 02:30 on the spring-forward Sunday gives later hand-offs at 02:30.
    """

    name: str
    people: tuple[str, ...]
    start: datetime
    length: timedelta
    timezone: ZoneInfo
    _anchor: datetime = field(init=False, repr=False, compare=False)
    _by_calendar: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise OncallError("rotation name: must not be empty")
        if not self.people:
            raise OncallError(f"rotation {self.name!r} people: needs at least one person")
        if self.length <= timedelta(0):
            raise OncallError(f"rotation {self.name!r} length: {self.length} must be positive")
        start = self.start
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"rotation {self.name!r} start must be a timezone-aware datetime, got {start!r}")
        if _same_zone(start.tzinfo, self.timezone):
            anchor = start.replace(tzinfo=None, fold=0)
            if start.astimezone(UTC).astimezone(self.timezone).replace(tzinfo=None) == anchor:
                first = start.astimezone(UTC)  # exists; honours fold for a repeated time
            else:
                first = _wall_to_utc(anchor, self.timezone)
        else:
            first = start.astimezone(UTC)
            anchor = first.astimezone(self.timezone).replace(tzinfo=None, fold=0)
        object.__setattr__(self, "start", first)
        object.__setattr__(self, "_anchor", anchor)
        object.__setattr__(self, "_by_calendar", self.length % _DAY == timedelta(0))

    def who(self, t: datetime) -> str | None:
        """Whose turn it is at `t`; None before `start`. Overrides are the schedule's business, not this."""
        turn = self._turn(_utc(t))
        return None if turn is None else self._person(turn)

    def handoffs(self, after: datetime, count: int) -> list[tuple[datetime, str]]:
        """The next `count` hand-offs strictly after `after`: (UTC moment, who takes over)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        turn = self._turn(_utc(after, "after"))
        first = 0 if turn is None else turn + 1
        return [(self._handoff(k), self._person(k)) for k in range(first, first + count)]

    def _person(self, turn: int) -> str:
        return self.people[turn % len(self.people)]

    def _handoff(self, turn: int) -> datetime:
        """When turn number `turn` (0 = the first, at `start`) begins, in UTC."""
        if turn == 0:
            return self.start
        if self._by_calendar:
            return _wall_to_utc(self._anchor + turn * self.length, self.timezone)
        return self.start + turn * self.length

    def _turn(self, t: datetime) -> int | None:
        """The number of the turn running at UTC `t`, or None before the first one."""
        if t < self.start:
            return None
        turn = (t - self.start) // self.length
        if self._by_calendar:  # daylight saving moves wall-clock hand-offs by at most a few hours: adjust
            while turn > 0 and self._handoff(turn) > t:
                turn -= 1
            while self._handoff(turn + 1) <= t:
                turn += 1
        return turn


@dataclass(frozen=True)
class Override:
    """`who` is on call for `rotation` in `[start, end)` (UTC after construction), whatever its turns say."""

    who: str
    start: datetime
    end: datetime
    rotation: str

    def __post_init__(self) -> None:
        if not self.who:
            raise OncallError("override who: must not be empty")
        object.__setattr__(self, "start", _utc(self.start, "override start"))
        object.__setattr__(self, "end", _utc(self.end, "override end"))
        if self.end <= self.start:
            raise OncallError(f"override for {self.who}: end must be after start")


@dataclass(frozen=True)
class Shift:
    """`who` holds `rotation` in `[start, end)`; `overridden` when an override put them there."""

    rotation: str
    who: str
    start: datetime
    end: datetime
    overridden: bool


@dataclass(frozen=True)
class Schedule:
    """Rotations (the first one is the primary: escalation level 1) and the overrides that apply to them."""

    rotations: tuple[Rotation, ...] = ()
    overrides: tuple[Override, ...] = ()
    _by_rotation: dict[str, tuple[tuple[int, Override], ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        names: dict[str, int] = {}
        for i, rotation in enumerate(self.rotations):
            if rotation.name in names:
                first = names[rotation.name]
                raise OncallError(f"rotations[{i}].name: {rotation.name!r} is already used by rotations[{first}]")
            names[rotation.name] = i
        for i, override in enumerate(self.overrides):
            if override.rotation not in names:
                raise OncallError(f"overrides[{i}].rotation: {override.rotation!r} is not a rotation")
        for rotation in self.rotations:
            self._by_rotation[rotation.name] = tuple(
                (i, o) for i, o in enumerate(self.overrides) if o.rotation == rotation.name
            )

    @classmethod
    def empty(cls) -> Schedule:
        return cls()

    @classmethod
    def from_config(cls, section: Mapping[str, object] | None) -> Schedule:
        """The `oncall:` config section (already parsed from YAML) → a schedule; none → `Schedule.empty()`."""
        if section is None:
            return cls.empty()
        section = _check_keys(section, "oncall", ("rotations", "overrides"))
        rotations: list[Rotation] = []
        for i, entry in enumerate(_as_list(section.get("rotations"), "oncall.rotations")):
            rotation = _parse_rotation(entry, f"oncall.rotations[{i}]")
            for j, earlier in enumerate(rotations):
                if earlier.name == rotation.name:
                    raise OncallError(
                        f"oncall.rotations[{i}].name: {rotation.name!r} is already used by rotations[{j}]"
                    )
            rotations.append(rotation)
        overrides = [
            _parse_override(entry, f"oncall.overrides[{i}]", rotations)
            for i, entry in enumerate(_as_list(section.get("overrides"), "oncall.overrides"))
        ]
        return cls(tuple(rotations), tuple(overrides))

    def __bool__(self) -> bool:
        return bool(self.rotations)

    def rotation(self, name: str) -> Rotation:
        for rotation in self.rotations:
            if rotation.name == name:
                return rotation
        raise KeyError(name)

    def shift_at(self, rotation: str, t: datetime) -> Shift | None:
        """The shift of `rotation` running at `t`, or None when nobody is on call (before it starts)."""
        return self._shift_at(self.rotation(rotation), _utc(t))

    def now(self, t: datetime) -> list[Shift]:
        """Who is on call at `t`, one shift per rotation in config order; rotations with nobody are left out."""
        t = _utc(t)
        return [s for r in self.rotations if (s := self._shift_at(r, t)) is not None]

    def upcoming(self, t: datetime) -> list[Shift]:
        """For each rotation, the next shift to start after `t` (a hand-off, or an override starting or ending)."""
        t = _utc(t)
        shifts: list[Shift] = []
        for rotation in self.rotations:
            moment = self._next_change(rotation, t)
            while (shift := self._shift_at(rotation, moment)) is None:
                moment = self._next_change(rotation, moment)
            shifts.append(shift)
        return shifts

    def primary(self, t: datetime) -> str | None:
        """Who the first rotation has on call at `t` (what escalation level 1 pings); None if nobody."""
        t = _utc(t)
        shift = self._shift_at(self.rotations[0], t) if self.rotations else None
        return None if shift is None else shift.who

    def changes(self, since: datetime, until: datetime) -> list[Shift]:
        """Every shift starting in `(since, until]`, across rotations, ordered by start then rotation."""
        since, until = _utc(since, "since"), _utc(until, "until")
        found: list[tuple[datetime, int, Shift]] = []
        for index, rotation in enumerate(self.rotations):
            moment = since
            while (moment := self._next_change(rotation, moment)) <= until:
                shift = self._shift_at(rotation, moment)
                if shift is not None:
                    found.append((shift.start, index, shift))
        return [shift for _, _, shift in sorted(found, key=lambda f: (f[0], f[1]))]

    # A shift ends at the first of: its own end (the turn's next hand-off, the override's end) or another
    # override starting (a later start always wins). It began at the last of: its own start or the end of an
    # override that had interrupted it (for an override, one that outranks it). So each step of `_next_change`
    # moves strictly forward, and a turn's hand-offs hidden under an override are never reported.

    def _active(self, rotation: Rotation, t: datetime) -> tuple[int, Override] | None:
        active = [(o.start, i, o) for i, o in self._by_rotation[rotation.name] if o.start <= t < o.end]
        if not active:
            return None
        _, i, override = max(active, key=lambda a: (a[0], a[1]))
        return i, override

    def _shift_at(self, rotation: Rotation, t: datetime) -> Shift | None:
        overrides = self._by_rotation[rotation.name]
        next_override = min((o.start for _, o in overrides if o.start > t), default=None)
        active = self._active(rotation, t)
        if active is not None:
            i, override = active
            rank = (override.start, i)
            start = max([override.start, *(o.end for j, o in overrides if (o.start, j) > rank and o.end <= t)])
            end = _first(override.end, next_override)
            return Shift(rotation.name, override.who, start, end, overridden=True)
        turn = rotation._turn(t)
        if turn is None:
            return None
        start = max([rotation._handoff(turn), *(o.end for _, o in overrides if o.end <= t)])
        end = _first(rotation._handoff(turn + 1), next_override)
        return Shift(rotation.name, rotation._person(turn), start, end, overridden=False)

    def _next_change(self, rotation: Rotation, t: datetime) -> datetime:
        """The first moment after `t` when the rotation's shift changes (someone takes over)."""
        shift = self._shift_at(rotation, t)
        if shift is not None:
            return shift.end
        # Nobody on call: only before the rotation starts, so the start or an override starting ends this.
        return min([rotation.start, *(o.start for _, o in self._by_rotation[rotation.name] if o.start > t)])


def _first(moment: datetime, other: datetime | None) -> datetime:
    return moment if other is None or moment <= other else other


def _as_list(value: object, key: str) -> Iterable[object]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise OncallError(f"{key}: expected a list, got {value!r}")
    return value
