"""On-call schedule: config parsing, rotations across weeks and daylight saving, overrides, shifts and hand-offs."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.core.oncall import OncallError, Override, Rotation, Schedule, Shift, parse_length

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

EXAMPLE_YAML = """
oncall:
  rotations:
    - name: primary
      people: [U0ALICE, U0BOB]
      start: 2026-11-02T09:00
      length: 1w
      timezone: Europe/Berlin
    - name: secondary
      people: [U0DAN, U0ERIN, U0FRANK]
      start: 2026-11-02T09:00
      length: 1d
      timezone: America/New_York
  overrides:
    - {who: U0CAROL, from: 2026-12-24T00:00, to: 2026-12-27T00:00}
    - {who: U0GUS, from: 2026-12-01T00:00, to: 2026-12-02T00:00, rotation: secondary}
"""


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def example() -> dict[str, Any]:
    section: dict[str, Any] = yaml.safe_load(EXAMPLE_YAML)["oncall"]
    return section


def schedule(section: dict[str, Any] | None = None) -> Schedule:
    return Schedule.from_config(example() if section is None else section)


def rotation(**entry: Any) -> Rotation:
    """A one-rotation schedule's rotation, built through the config like the bot does."""
    base = {"name": "r", "people": ["U0A", "U0B"], "timezone": "Europe/Berlin"}
    return Schedule.from_config({"rotations": [base | entry]}).rotations[0]


def brief(shifts: list[Shift]) -> list[tuple[str, str, datetime, datetime, bool]]:
    return [(s.rotation, s.who, s.start, s.end, s.overridden) for s in shifts]


# --- parsing ---------------------------------------------------------------------------------------------


def test_the_documented_yaml_becomes_rotations_and_overrides_in_utc() -> None:
    parsed = schedule()

    primary, secondary = parsed.rotations
    assert primary == Rotation("primary", ("U0ALICE", "U0BOB"), utc(2026, 11, 2, 8), timedelta(weeks=1), BERLIN)
    assert secondary == Rotation(
        "secondary", ("U0DAN", "U0ERIN", "U0FRANK"), utc(2026, 11, 2, 14), timedelta(days=1), NEW_YORK
    )
    # Naive override times are local to the rotation they apply to; no `rotation` means the first one.
    assert parsed.overrides == (
        Override("U0CAROL", utc(2026, 12, 23, 23), utc(2026, 12, 26, 23), "primary"),
        Override("U0GUS", utc(2026, 12, 1, 5), utc(2026, 12, 2, 5), "secondary"),
    )
    assert bool(parsed)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
        (" 2 H ", timedelta(hours=2)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(hours=8), timedelta(hours=8)),
    ],
)
def test_lengths_in_every_accepted_form(value: object, expected: timedelta) -> None:
    assert parse_length(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0s", "length: '0s' must be positive"),
        (0, "length: 0 must be positive"),
        (-60, "length: -60 must be positive"),
        ("1y", "length: '1y' is not a duration like 30s, 5m, 2h, 1d or 1w"),
        ("1.5h", "length: '1.5h' is not a duration like 30s, 5m, 2h, 1d or 1w"),
        ("h", "length: 'h' is not a duration like 30s, 5m, 2h, 1d or 1w"),
        ("", "length: '' is not a duration like 30s, 5m, 2h, 1d or 1w"),
        (True, "length: True is not a duration like 30s, 5m, 2h, 1d or 1w"),
        (float("inf"), "length: inf is not a duration like 30s, 5m, 2h, 1d or 1w"),
    ],
)
def test_bad_lengths_are_refused_with_the_key(value: object, message: str) -> None:
    with pytest.raises(OncallError) as caught:
        parse_length(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "start",
    [
        "2026-11-02T09:00",  # how YAML hands over a time without seconds: a string
        "2026-11-02T09:00:00",
        "2026-11-02T08:00:00+00:00",
        "2026-11-02T03:00-05:00",
        "2026-11-02T08:00Z",
        datetime(2026, 11, 2, 9, 0),  # YAML's own timestamp with seconds: a naive datetime
        datetime(2026, 11, 2, 9, 0, tzinfo=timezone(timedelta(hours=1))),  # ... with an offset: aware
        yaml.safe_load("start: 2026-11-02 09:00:00")["start"],
    ],
)
def test_start_as_string_or_yaml_datetime_naive_meaning_the_rotations_zone(start: object) -> None:
    assert rotation(start=start, length="1w").start == utc(2026, 11, 2, 8)


def test_a_date_alone_starts_at_local_midnight() -> None:
    assert rotation(start=date(2026, 11, 2), length="1d").start == utc(2026, 11, 1, 23)


def test_override_times_with_an_offset_are_taken_as_given() -> None:
    section = example()
    section["overrides"] = [{"who": "U0CAROL", "from": "2026-12-24T00:00+00:00", "to": "2026-12-25T00:00Z"}]
    assert schedule(section).overrides == (Override("U0CAROL", utc(2026, 12, 24), utc(2026, 12, 25), "primary"),)


def _broken(path: str, value: Any) -> dict[str, Any]:
    """The example with one key changed; `value` None deletes it."""
    section = copy.deepcopy(example())
    *parents, last = path.split(".")
    node: Any = section
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return section


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (_broken("rotations.0.people", []), "oncall.rotations[0].people: needs at least one person"),
        (_broken("rotations.0.people", "U0ALICE"), "oncall.rotations[0].people: expected a list of user ids, got 'U0ALICE'"),
        (_broken("rotations.0.people", ["U0ALICE", 42]), "oncall.rotations[0].people[1]: 42 is not a user id"),
        (_broken("rotations.1.timezone", "Mars/Base"), "oncall.rotations[1].timezone: 'Mars/Base' is not a time zone"),
        (_broken("rotations.0.length", "0s"), "oncall.rotations[0].length: '0s' must be positive"),
        (_broken("rotations.0.length", "weekly"), "oncall.rotations[0].length: 'weekly' is not a duration like 30s, 5m, 2h, 1d or 1w"),
        (_broken("rotations.0.start", "next monday"), "oncall.rotations[0].start: 'next monday' is not a date and time like 2026-11-02T09:00"),
        (_broken("rotations.0.start", None), "oncall.rotations[0]: start is required"),
        (_broken("rotations.0.lenght", "1w"), "oncall.rotations[0]: unknown key 'lenght'; use name, people, start, length, timezone"),
        (_broken("rotations.1.name", "primary"), "oncall.rotations[1].name: 'primary' is already used by rotations[0]"),
        (_broken("overrides.0.rotation", "tertiary"), "oncall.overrides[0].rotation: 'tertiary' is not a rotation"),
        (_broken("overrides.1.to", "2026-11-30T23:00"), "oncall.overrides[1]: 'to' must be after 'from'"),
        (_broken("overrides.1.to", "2026-12-01T00:00"), "oncall.overrides[1]: 'to' must be after 'from'"),
        (_broken("overrides.0.who", None), "oncall.overrides[0]: who is required"),
        (_broken("rotations", None), "oncall.overrides[0].rotation: there is no rotation to override"),
        (_broken("rotations", "primary"), "oncall.rotations: expected a list, got 'primary'"),
        (_broken("rotation", []), "oncall: unknown key 'rotation'; use rotations, overrides"),
    ],
)
def test_each_bad_setting_is_refused_naming_its_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(OncallError) as caught:
        Schedule.from_config(section)
    assert str(caught.value) == message


def test_built_in_code_a_schedule_still_refuses_duplicates_and_unknown_rotations() -> None:
    alice = Rotation("primary", ("U0ALICE",), utc(2026, 11, 2, 8), timedelta(weeks=1), BERLIN)
    with pytest.raises(OncallError, match="'primary' is already used"):
        Schedule((alice, alice))
    with pytest.raises(OncallError, match="'tertiary' is not a rotation"):
        Schedule((alice,), (Override("U0CAROL", utc(2026, 12, 1), utc(2026, 12, 2), "tertiary"),))
    with pytest.raises(ValueError, match="timezone-aware"):
        Rotation("primary", ("U0ALICE",), datetime(2026, 11, 2, 9), timedelta(weeks=1), BERLIN)


def test_no_section_is_an_empty_schedule_with_nobody_on_call() -> None:
    for section in (None, {}, {"rotations": [], "overrides": []}):
        empty = Schedule.from_config(section)
        assert empty == Schedule.empty()
        assert not empty
        assert empty.now(utc(2026, 12, 1)) == []
        assert empty.upcoming(utc(2026, 12, 1)) == []
        assert empty.primary(utc(2026, 12, 1)) is None
        assert empty.changes(utc(2026, 1, 1), utc(2027, 1, 1)) == []


def test_naive_moments_are_refused() -> None:
    parsed = schedule()
    naive = datetime(2026, 12, 1, 12)
    for call in (
        lambda: parsed.now(naive),
        lambda: parsed.upcoming(naive),
        lambda: parsed.primary(naive),
        lambda: parsed.changes(naive, utc(2026, 12, 2)),
        lambda: parsed.rotations[0].who(naive),
        lambda: parsed.rotations[0].handoffs(naive, 1),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


# --- rotations -------------------------------------------------------------------------------------------


def test_a_weekly_rotation_alternates_two_people_week_after_week() -> None:
    primary = schedule().rotations[0]
    wednesdays = [utc(2026, 11, 4, 12) + timedelta(weeks=n) for n in range(5)]
    assert [primary.who(t) for t in wednesdays] == ["U0ALICE", "U0BOB", "U0ALICE", "U0BOB", "U0ALICE"]


def test_at_the_hand_off_moment_the_new_person_is_on_call() -> None:
    primary = schedule().rotations[0]
    handoff = datetime(2026, 11, 9, 9, 0, tzinfo=BERLIN)
    assert primary.who(handoff - timedelta(seconds=1)) == "U0ALICE"
    assert primary.who(handoff) == "U0BOB"
    # Any aware datetime works: 03:00 in New York is that same 09:00 in Berlin.
    assert primary.who(datetime(2026, 11, 9, 3, 0, tzinfo=NEW_YORK)) == "U0BOB"
    assert primary.who(datetime(2026, 11, 9, 2, 59, tzinfo=NEW_YORK)) == "U0ALICE"


def test_before_the_start_nobody_is_on_call_and_the_first_hand_off_is_the_start() -> None:
    primary = schedule().rotations[0]
    assert primary.who(utc(2026, 11, 2, 7, 59)) is None
    assert primary.handoffs(utc(2026, 10, 1), 3) == [
        (utc(2026, 11, 2, 8), "U0ALICE"),
        (utc(2026, 11, 9, 8), "U0BOB"),
        (utc(2026, 11, 16, 8), "U0ALICE"),
    ]
    assert primary.handoffs(utc(2026, 11, 2, 8), 1) == [(utc(2026, 11, 9, 8), "U0BOB")]  # strictly after
    assert primary.handoffs(utc(2026, 10, 1), 0) == []


def test_a_weekly_rotation_hands_off_monday_0900_berlin_in_winter_and_in_summer() -> None:
    primary = schedule().rotations[0]
    # Berlin moves to summer time on Sunday 2027-03-28: 09:00 is 08:00 UTC before and 07:00 UTC after.
    assert primary.handoffs(utc(2027, 3, 20), 2) == [
        (utc(2027, 3, 22, 8), "U0ALICE"),
        (utc(2027, 3, 29, 7), "U0BOB"),
    ]
    assert primary.who(utc(2027, 3, 29, 7, 30)) == "U0BOB"  # 08:30 UTC a week earlier would still be Alice


def test_a_daily_rotation_keeps_0900_new_york_across_the_end_of_daylight_saving() -> None:
    daily = rotation(people=["U0DAN", "U0ERIN", "U0FRANK"], start="2026-10-30T09:00", length="1d", timezone="America/New_York")
    handoffs = daily.handoffs(daily.start, 3)
    assert handoffs == [
        (utc(2026, 10, 31, 13), "U0ERIN"),  # 09:00 EDT
        (utc(2026, 11, 1, 14), "U0FRANK"),  # 09:00 EST: 25 hours later
        (utc(2026, 11, 2, 14), "U0DAN"),
    ]
    assert {t.astimezone(NEW_YORK).strftime("%H:%M") for t, _ in handoffs} == {"09:00"}
    assert daily.who(utc(2026, 11, 1, 13, 30)) == "U0ERIN"  # 08:30 EST: Frank is not on yet


def test_a_12_hour_rotation_counts_elapsed_time_across_daylight_saving() -> None:
    halfday = rotation(people=["U0DAN", "U0ERIN"], start="2026-10-31T21:00", length="12h", timezone="America/New_York")
    assert halfday.start == utc(2026, 11, 1, 1)
    handoffs = halfday.handoffs(halfday.start, 2)
    assert handoffs == [(utc(2026, 11, 1, 13), "U0ERIN"), (utc(2026, 11, 2, 1), "U0DAN")]
    assert [t.astimezone(NEW_YORK).strftime("%H:%M") for t, _ in handoffs] == ["08:00", "20:00"]


def test_a_sunday_0230_hand_off_that_does_not_exist_happens_when_berlin_jumps_to_summer_time() -> None:
    weekly = rotation(start="2026-03-22T02:30", length="1w")
    assert weekly.handoffs(weekly.start, 2) == [
        (utc(2026, 3, 29, 1), "U0B"),  # 02:00 CET jumps to 03:00 CEST: the first moment after the gap
        (utc(2026, 4, 5, 0, 30), "U0A"),  # 02:30 CEST again the week after
    ]
    assert weekly.who(utc(2026, 3, 29, 0, 59, 59)) == "U0A"
    assert weekly.who(utc(2026, 3, 29, 1)) == "U0B"


def test_a_start_inside_the_skipped_hour_keeps_its_wall_clock_time_for_later_weeks() -> None:
    weekly = rotation(start="2026-03-29T02:30", length="1w")
    assert weekly.start == utc(2026, 3, 29, 1)
    assert weekly.handoffs(weekly.start, 1) == [(utc(2026, 4, 5, 0, 30), "U0B")]


def test_a_sunday_0230_hand_off_that_happens_twice_in_autumn_takes_the_first() -> None:
    weekly = rotation(start="2026-10-18T02:30", length="1w")
    assert weekly.handoffs(weekly.start, 2) == [
        (utc(2026, 10, 25, 0, 30), "U0B"),  # 02:30 CEST, before the clocks go back at 03:00
        (utc(2026, 11, 1, 1, 30), "U0A"),  # 02:30 CET
    ]
    assert weekly.who(utc(2026, 10, 25, 0, 29)) == "U0A"
    assert weekly.who(utc(2026, 10, 25, 1, 30)) == "U0B"  # the second 02:30 changes nothing


def test_a_start_given_with_an_offset_at_the_second_0230_is_taken_as_given() -> None:
    daily = rotation(start="2026-10-25T02:30+01:00", length="1d")  # the second 02:30, in CET
    assert daily.start == utc(2026, 10, 25, 1, 30)
    assert daily.who(utc(2026, 10, 25, 1, 29)) is None
    assert daily.handoffs(utc(2026, 10, 24), 2) == [(utc(2026, 10, 25, 1, 30), "U0A"), (utc(2026, 10, 26, 1, 30), "U0B")]


# --- overrides and shifts --------------------------------------------------------------------------------


def test_now_lists_each_rotation_with_when_its_shift_started_and_ends() -> None:
    # Secondary's Erin took over Monday 09:00 New York; Gus's override starts at midnight, before her hand-off.
    assert brief(schedule().now(utc(2026, 11, 30, 20))) == [
        ("primary", "U0ALICE", utc(2026, 11, 30, 8), utc(2026, 12, 7, 8), False),
        ("secondary", "U0ERIN", utc(2026, 11, 30, 14), utc(2026, 12, 1, 5), False),
    ]


def test_an_override_replaces_the_first_rotation_inside_one_turn() -> None:
    parsed = schedule()
    # Bob's turn runs Dec 21 to Dec 28; Carol covers Dec 24 00:00 to Dec 27 00:00 Berlin.
    assert brief(parsed.now(datetime(2026, 12, 23, 23, 59, tzinfo=BERLIN)))[0] == (
        "primary", "U0BOB", utc(2026, 12, 21, 8), utc(2026, 12, 23, 23), False,
    )
    assert brief(parsed.now(datetime(2026, 12, 24, 0, 0, tzinfo=BERLIN)))[0] == (
        "primary", "U0CAROL", utc(2026, 12, 23, 23), utc(2026, 12, 26, 23), True,
    )
    # When Carol is done, Bob finishes his turn.
    assert brief(parsed.now(utc(2026, 12, 27, 12)))[0] == (
        "primary", "U0BOB", utc(2026, 12, 26, 23), utc(2026, 12, 28, 8), False,
    )
    assert parsed.primary(utc(2026, 12, 25, 12)) == "U0CAROL"
    assert parsed.primary(utc(2026, 12, 27, 12)) == "U0BOB"


def test_an_override_for_a_named_rotation_spans_a_hand_off_and_leaves_the_others_alone() -> None:
    parsed = schedule()
    # Gus covers secondary for all of Dec 1 New York time; Erin would hand over to Frank at 09:00 in between.
    assert brief(parsed.now(utc(2026, 12, 1, 15))) == [
        ("primary", "U0ALICE", utc(2026, 11, 30, 8), utc(2026, 12, 7, 8), False),
        ("secondary", "U0GUS", utc(2026, 12, 1, 5), utc(2026, 12, 2, 5), True),
    ]
    # After Gus, it is Frank's turn (not Erin's), until his turn ends at 09:00.
    assert brief(parsed.now(utc(2026, 12, 2, 5)))[1] == ("secondary", "U0FRANK", utc(2026, 12, 2, 5), utc(2026, 12, 2, 14), False)
    assert parsed.primary(utc(2026, 12, 1, 15)) == "U0ALICE"


def test_an_override_started_later_wins_and_the_one_it_interrupted_resumes() -> None:
    section = example()
    section["overrides"].append({"who": "U0GUS", "from": "2026-12-25T00:00", "to": "2026-12-26T00:00"})
    parsed = schedule(section)
    assert brief(parsed.now(utc(2026, 12, 24, 12)))[0] == ("primary", "U0CAROL", utc(2026, 12, 23, 23), utc(2026, 12, 24, 23), True)
    assert brief(parsed.now(utc(2026, 12, 25, 12)))[0] == ("primary", "U0GUS", utc(2026, 12, 24, 23), utc(2026, 12, 25, 23), True)
    assert brief(parsed.now(utc(2026, 12, 26, 12)))[0] == ("primary", "U0CAROL", utc(2026, 12, 25, 23), utc(2026, 12, 26, 23), True)


def test_of_two_overrides_starting_together_the_later_in_the_list_wins() -> None:
    section = example()
    section["overrides"].append({"who": "U0HAL", "from": "2026-12-24T00:00", "to": "2026-12-25T00:00"})
    parsed = schedule(section)
    assert parsed.primary(utc(2026, 12, 24, 12)) == "U0HAL"
    assert brief(parsed.now(utc(2026, 12, 25, 12)))[0] == ("primary", "U0CAROL", utc(2026, 12, 24, 23), utc(2026, 12, 26, 23), True)


def test_an_override_crossing_a_hand_off_gives_the_new_person_the_rest_of_their_turn() -> None:
    section = example()
    section["overrides"] = [{"who": "U0CAROL", "from": "2026-12-06T00:00", "to": "2026-12-08T00:00"}]
    parsed = schedule(section)
    # Alice's turn ends Dec 7 09:00 Berlin, under Carol's override; Bob starts when Carol is done.
    assert parsed.changes(utc(2026, 12, 5), utc(2026, 12, 10)) == [
        Shift("secondary", "U0DAN", utc(2026, 12, 5, 14), utc(2026, 12, 6, 14), False),
        Shift("primary", "U0CAROL", utc(2026, 12, 5, 23), utc(2026, 12, 7, 23), True),
        Shift("secondary", "U0ERIN", utc(2026, 12, 6, 14), utc(2026, 12, 7, 14), False),
        Shift("secondary", "U0FRANK", utc(2026, 12, 7, 14), utc(2026, 12, 8, 14), False),
        Shift("primary", "U0BOB", utc(2026, 12, 7, 23), utc(2026, 12, 14, 8), False),
        Shift("secondary", "U0DAN", utc(2026, 12, 8, 14), utc(2026, 12, 9, 14), False),
        Shift("secondary", "U0ERIN", utc(2026, 12, 9, 14), utc(2026, 12, 10, 14), False),
    ]


def test_upcoming_is_the_next_shift_of_each_rotation() -> None:
    parsed = schedule()
    assert brief(parsed.upcoming(utc(2026, 11, 30, 20))) == [
        ("primary", "U0BOB", utc(2026, 12, 7, 8), utc(2026, 12, 14, 8), False),
        ("secondary", "U0GUS", utc(2026, 12, 1, 5), utc(2026, 12, 2, 5), True),  # before Frank's hand-off
    ]
    # During an override, what comes next is the rotation resuming when it ends.
    assert brief(parsed.upcoming(utc(2026, 12, 1, 15)))[1] == ("secondary", "U0FRANK", utc(2026, 12, 2, 5), utc(2026, 12, 2, 14), False)
    # At a hand-off moment, "next" is the one after it.
    assert brief(parsed.upcoming(utc(2026, 12, 7, 8)))[0] == ("primary", "U0ALICE", utc(2026, 12, 14, 8), utc(2026, 12, 21, 8), False)


def test_changes_list_hand_offs_and_overrides_starting_and_ending_in_order() -> None:
    parsed = schedule()
    # (since, until]: the hand-off at exactly `since` was announced last time; the one at `until` is included.
    assert brief(parsed.changes(utc(2026, 11, 30, 14), utc(2026, 12, 2, 14))) == [
        ("secondary", "U0GUS", utc(2026, 12, 1, 5), utc(2026, 12, 2, 5), True),
        ("secondary", "U0FRANK", utc(2026, 12, 2, 5), utc(2026, 12, 2, 14), False),
        ("secondary", "U0DAN", utc(2026, 12, 2, 14), utc(2026, 12, 3, 14), False),
    ]
    primary_only = [s for s in parsed.changes(utc(2026, 12, 20), utc(2026, 12, 29)) if s.rotation == "primary"]
    assert brief(primary_only) == [
        ("primary", "U0BOB", utc(2026, 12, 21, 8), utc(2026, 12, 23, 23), False),
        ("primary", "U0CAROL", utc(2026, 12, 23, 23), utc(2026, 12, 26, 23), True),
        ("primary", "U0BOB", utc(2026, 12, 26, 23), utc(2026, 12, 28, 8), False),
        ("primary", "U0ALICE", utc(2026, 12, 28, 8), utc(2027, 1, 4, 8), False),
    ]


def test_changes_interleave_rotations_by_start_time() -> None:
    assert [(s.rotation, s.who, s.start) for s in schedule().changes(utc(2026, 12, 23, 12), utc(2026, 12, 24, 16))] == [
        ("secondary", "U0DAN", utc(2026, 12, 23, 14)),
        ("primary", "U0CAROL", utc(2026, 12, 23, 23)),
        ("secondary", "U0ERIN", utc(2026, 12, 24, 14)),
    ]


def test_an_override_before_the_rotation_starts_covers_only_its_own_hours() -> None:
    section = example()
    section["overrides"] = [{"who": "U0CAROL", "from": "2026-10-30T09:00", "to": "2026-10-31T09:00"}]
    parsed = schedule(section)
    assert parsed.primary(utc(2026, 10, 30, 12)) == "U0CAROL"
    assert parsed.now(utc(2026, 10, 31, 12)) == []  # between Carol and the first hand-off: nobody
    assert parsed.primary(utc(2026, 10, 31, 12)) is None
    assert brief(parsed.upcoming(utc(2026, 10, 30, 12)))[0] == ("primary", "U0ALICE", utc(2026, 11, 2, 8), utc(2026, 11, 9, 8), False)
    assert [(s.who, s.start) for s in parsed.changes(utc(2026, 10, 1), utc(2026, 11, 2, 8)) if s.rotation == "primary"] == [
        ("U0CAROL", utc(2026, 10, 30, 8)),
        ("U0ALICE", utc(2026, 11, 2, 8)),
    ]


def test_a_one_person_rotation_hands_over_to_the_same_person_each_week() -> None:
    solo = Schedule((rotation(people=["U0ALICE"], start="2026-11-02T09:00", length="1w"),))
    assert [(s.who, s.start) for s in solo.changes(utc(2026, 11, 1), utc(2026, 11, 16, 8))] == [
        ("U0ALICE", utc(2026, 11, 2, 8)),
        ("U0ALICE", utc(2026, 11, 9, 8)),
        ("U0ALICE", utc(2026, 11, 16, 8)),
    ]
