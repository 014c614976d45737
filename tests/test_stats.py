"""`/social stats` from the daily rollups: what a lead sees after a scripted two days of work.

The use cases run for real (ingest, claim, reply, the send handler, escalate, resolve, check-ins) on a
migrated database, with the services' clock set by the test, so cases open, get answered and resolved
on the days the script says. Then the rollups that the use cases bumped are compared with what
`rollups.rebuild` recomputes from the raw tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.chat.slack import blocks as render
from bot.config import Config, config_from_mapping
from bot.core.errors import SendError
from bot.core.model import Author, Delivery, Item, Kind
from bot.services import cases, followups, ingest, records, rollups, sending
from bot.services.cases import Actor
from bot.services.sending import SendHandler
from bot.services.stats import compute
from storage.db import make_engine, migrate, transaction
from storage.tables import CaseRow, DailyCountRow, OutboxRow, ReplyRow
from tests.conftest import bot_config as config_for_tests

ALICE = Actor("U0ALICE", "Alice")
BOB = Actor("U0BOB", "Bob")
CAROL = Actor("U0CAROL", "Carol")


class Clock:
    """What `utcnow()` returns inside the services during a test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, moment: str) -> datetime:
        self.now = datetime.fromisoformat(moment).replace(tzinfo=UTC)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (ingest, cases, sending, records):
        monkeypatch.setattr(module, "utcnow", fake)
    return fake


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


class FakeSender:
    platform = "generic"
    max_length = 1000

    def __init__(self, error: SendError | None = None) -> None:
        self.error = error
        self.sent = count(1)

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        if self.error:
            raise self.error
        n = next(self.sent)
        return Delivery(platform_id=f"out-{idempotency_key}-{n}", url=f"https://social.example/out/{n}")

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text


class Desk:
    """The script's hands: each call is one use case in its own transaction, like a click."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine, self.clock = engine, clock
        self.config: Config = config_from_mapping(config_for_tests())
        self.ids = count(1)

    def arrives(self, moment: str, text: str, *, kind: Kind = Kind.MENTION) -> int:
        self.clock.at(moment)
        n = next(self.ids)
        item = Item(platform="generic", platform_id=f"in-{n}", kind=kind, author=Author(f"cust-{n}", f"Customer {n}"),
                    text=text, conversation=f"conv-{n}", created_at=self.clock.now,
                    reply_to={"reply_url": "https://tool.example/reply"})
        [accepted] = ingest.ingest(self.engine, [item], config=self.config)
        assert accepted.case_id is not None and not accepted.duplicate
        return accepted.case_id

    def do(self, moment: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        self.clock.at(moment)
        with transaction(self.engine) as session:
            return action(session, *args, **kwargs)

    def reply(self, moment: str, case_id: int, actor: Actor, text: str = "Sorry about that!") -> int:
        row = self.do(moment, cases.reply, case_id, actor, text, max_length=1000)
        return int(row.id)

    async def deliver(self, moment: str, reply_id: int, *, error: SendError | None = None) -> None:
        """The outbox's send handler delivers the reply (or fails), and its finish commits."""
        self.clock.at(moment)
        with transaction(self.engine) as session:
            row = session.exec(select(OutboxRow).where(OutboxRow.effect == "send", col(OutboxRow.done).is_(False))
                               .order_by(col(OutboxRow.id))).first()
            assert row is not None and row.payload["reply_id"] == reply_id
            row.done = True
            session.add(row)
        handler = SendHandler(engine=self.engine, senders={"generic": FakeSender(error)})
        finish = await handler(row)
        assert finish is not None
        with transaction(self.engine) as session:
            finish(session)

    def stats(self, period: str, moment: str) -> Any:
        with transaction(self.engine, write=False) as session:
            return compute(session, period, now=datetime.fromisoformat(moment).replace(tzinfo=UTC))


def shown(view: Any) -> str:
    _, blocks = render.stats(view)
    return json.dumps(blocks, ensure_ascii=False)


def rollup_rows(engine: Engine) -> list[tuple[date, str, str, str, int, str | None]]:
    with transaction(engine, write=False) as session:
        rows = session.exec(select(DailyCountRow)).all()
        return sorted((r.day, r.metric, r.dim1, r.dim2, r.value, r.label) for r in rows)


async def test_a_lead_sees_today_and_the_last_7_days(engine: Engine, clock: Clock) -> None:
    desk = Desk(engine, clock)
    desk.arrives("2026-03-03T23:59:00", "Old one")  # a week before: only 30d counts it
    # Monday 9 March: a mention answered in 4 minutes; a DM that Bob claims and escalates.
    a = desk.arrives("2026-03-09T10:00:00", "Where is my parcel?")
    reply = desk.reply("2026-03-09T10:01:00", a, ALICE)  # replying claims the case for Alice
    await desk.deliver("2026-03-09T10:04:00", reply)
    b = desk.arrives("2026-03-09T15:00:00", "You charged me twice", kind=Kind.DM)
    desk.do("2026-03-09T15:10:00", cases.claim, b, BOB)
    desk.do("2026-03-09T15:20:00", cases.escalate, b, BOB, "Billing")
    # Tuesday 10 March: a new mention nobody answers yet; Alice resolves Monday's mention;
    # Carol adds a reason to the escalated DM (not a second escalation).
    desk.arrives("2026-03-10T08:00:00", "Hello?")
    desk.do("2026-03-10T09:00:00", cases.resolve, a, ALICE, "Found it", config=desk.config)
    desk.do("2026-03-10T09:05:00", cases.escalate, b, CAROL, "Still billing")

    today = desk.stats("today", "2026-03-10T12:00:00")
    assert (today.new, today.resolved, today.escalated, today.open_now, today.claimed_now) == (1, 1, 0, 2, 1)
    assert today.since == datetime(2026, 3, 10, tzinfo=UTC)
    assert today.response_rate == 0.0 and today.first_response_median_s is None
    assert today.resolution_median_s == 21 * 3600  # 23 h, in the 18 h – 1 d bucket: its middle
    assert today.per_person == [("U0ALICE", "Alice", 0, 0, 1)]
    text = shown(today)
    assert "*Today*: 1 new · 1 resolved · 0 escalated" in text and "Now: 2 open · 1 claimed" in text
    assert "Response rate*\\n0%" in text and "Resolution (median)*\\n21.0h" in text

    week = desk.stats("7d", "2026-03-10T12:00:00")
    assert (week.new, week.resolved, week.escalated) == (3, 1, 1)
    assert week.since == datetime(2026, 3, 4, tzinfo=UTC)
    assert week.by_platform_kind == [("generic", "mention", 2), ("generic", "dm", 1)]
    assert week.response_rate == pytest.approx(1 / 3)
    assert week.first_response_median_s == 240  # one answer after 4 minutes: the 3–5 min bucket's middle
    assert week.first_response_p90_s == pytest.approx(288)
    assert week.per_person == [("U0ALICE", "Alice", 1, 1, 1), ("U0BOB", "Bob", 1, 0, 0)]
    text = shown(week)
    assert "*Last 7 days*: 3 new · 1 resolved · 1 escalated" in text
    assert "First response (median)*\\n4m" in text and "First response (p90)*\\n5m" in text
    assert "Response rate*\\n33%" in text and "Webhook mention: 2" in text and "Webhook DM: 1" in text
    assert "<@U0ALICE>: 1 claimed · 1 replies · 1 resolved" in text and "<@U0BOB>: 1 claimed · 0 replies" in text

    month = desk.stats("30d", "2026-03-10T12:00:00")
    assert (month.new, month.resolved, month.escalated) == (4, 1, 1)
    assert month.response_rate == 0.25

    # The next day, today is empty again; "now" still counts what is open and claimed.
    tomorrow = desk.stats("today", "2026-03-11T00:00:01")
    assert (tomorrow.new, tomorrow.resolved, tomorrow.open_now, tomorrow.claimed_now) == (0, 0, 2, 1)
    assert tomorrow.response_rate is None and tomorrow.per_person == []


async def test_rebuild_recomputes_exactly_the_rollups_the_use_cases_bumped(engine: Engine, clock: Clock) -> None:
    desk = Desk(engine, clock)
    a = desk.arrives("2026-03-09T09:00:00", "Parcel?")
    b = desk.arrives("2026-03-09T09:30:00", "Refund!", kind=Kind.DM)
    desk.do("2026-03-09T09:31:00", cases.claim, a, ALICE)
    desk.do("2026-03-09T09:32:00", cases.release, a, ALICE)
    desk.do("2026-03-09T09:33:00", cases.claim, a, BOB)
    desk.do("2026-03-09T09:34:00", cases.take_over, a, ALICE)
    # A reply fails, is retried and sent: one reply, one first response.
    failed = desk.reply("2026-03-09T09:40:00", a, ALICE)
    await desk.deliver("2026-03-09T09:41:00", failed, error=SendError("rejected", permanent=True))
    desk.do("2026-03-09T09:42:00", cases.retry, failed, ALICE)
    await desk.deliver("2026-03-09T09:43:00", failed)
    second = desk.reply("2026-03-09T10:00:00", a, ALICE, "Anything else?")
    await desk.deliver("2026-03-09T10:00:30", second)  # not a first response: no second "answered"
    # Escalated twice (one escalation), resolved, escalated again after a reopen (a second one).
    desk.do("2026-03-09T11:00:00", cases.escalate, b, BOB, "Legal")
    desk.do("2026-03-09T11:05:00", cases.escalate, b, CAROL, "Legal, really")
    desk.do("2026-03-09T12:00:00", cases.resolve, b, BOB, "", config=desk.config)
    desk.do("2026-03-09T12:30:00", cases.reopen, b, CAROL)
    # A reply queued before midnight and sent after it counts for the person on the day it was sent,
    # and as an answer on the day the case was opened.
    c = desk.arrives("2026-03-09T23:50:00", "Late one", kind=Kind.REVIEW)
    late = desk.reply("2026-03-09T23:58:00", c, BOB)
    await desk.deliver("2026-03-10T00:03:00", late)
    desk.do("2026-03-10T08:00:00", cases.escalate, b, CAROL, "Back again")
    renamed = Actor("U0BOB", "Bobby")  # a new display name on the second day
    desk.do("2026-03-10T09:00:00", cases.resolve, b, renamed, "Refunded", config=desk.config)
    # A check-in after resolving is not a reply a person is counted for.
    [check_in] = desk.do("2026-03-10T10:00:00", cases.resolve, a, ALICE, "", config=desk.config)
    desk.do("2026-03-10T10:00:01", followups.due, check_in.id, check_in.cycle)
    desk.do("2026-03-10T10:01:00", followups.send_checkin, check_in.id, CAROL)
    with transaction(engine, write=False) as session:
        checkin_id = session.exec(select(ReplyRow.id).where(ReplyRow.kind == "checkin")).one()
    await desk.deliver("2026-03-10T10:02:00", int(checkin_id or 0))

    bumped = rollup_rows(engine)
    metrics = {(day.isoformat(), metric, dim1, dim2): (value, label) for day, metric, dim1, dim2, value, label in bumped}
    assert metrics[("2026-03-09", "new", "generic", "mention")] == (1, None)
    assert metrics[("2026-03-09", "answered", "generic", "review")] == (1, None)  # answered on the 10th
    assert metrics[("2026-03-09", "answered", "generic", "mention")] == (1, None)
    assert metrics[("2026-03-09", "escalated", "generic", "dm")] == (1, None)
    assert metrics[("2026-03-10", "escalated", "generic", "dm")] == (1, None)
    assert metrics[("2026-03-09", "person_claim", "U0ALICE", "")] == (2, "Alice")  # a claim and a take-over
    assert metrics[("2026-03-09", "person_claim", "U0BOB", "")] == (2, "Bob")  # a claim and replying to c
    assert metrics[("2026-03-09", "person_reply", "U0ALICE", "")] == (2, "Alice")
    assert metrics[("2026-03-10", "person_reply", "U0BOB", "")] == (1, "Bob")
    assert metrics[("2026-03-10", "person_resolve", "U0BOB", "")] == (1, "Bobby")
    assert metrics[("2026-03-09", "person_resolve", "U0BOB", "")] == (1, "Bob")
    assert ("2026-03-10", "person_reply", "U0CAROL", "") not in metrics  # the check-in
    assert metrics[("2026-03-09", "fr_bucket", rollups.bucket(43 * 60), "")] == (1, None)  # a: sent 43 min after
    assert metrics[("2026-03-09", "fr_bucket", rollups.bucket(13 * 60), "")] == (1, None)  # c: 13 min, past midnight

    # Rebuilding from cases, events and replies gives the same rows, and is repeatable.
    count_after = rollups.rebuild(engine)
    assert rollup_rows(engine) == bumped and count_after == len(bumped)
    rollups.rebuild(engine)
    assert rollup_rows(engine) == bumped

    week = desk.stats("7d", "2026-03-10T23:00:00")
    assert (week.new, week.resolved, week.escalated) == (3, 3, 2)
    assert ("U0BOB", "Bobby", 2, 1, 2) in week.per_person  # the latest name


def test_percentiles_interpolate_inside_the_bucket() -> None:
    assert rollups.percentile({}, 0.5) is None
    assert rollups.bucket(0) == "00" and rollups.bucket(-5) == "00" and rollups.bucket(29.9) == "00"
    assert rollups.bucket(30) == "01" and rollups.bucket(240) == "04" and rollups.bucket(10**9) == "28"
    four_minutes = {rollups.bucket_index(240): 1}
    assert rollups.percentile(four_minutes, 0.5) == 240
    # 10 answers: 9 within 30 s, 1 after 2 days; the median is in the first bucket, p90 at its top edge.
    mixed = {0: 9, rollups.bucket_index(2 * 86400): 1}
    assert rollups.percentile(mixed, 0.5) == pytest.approx(30 * 5 / 9)
    assert rollups.percentile(mixed, 0.9) == 30
    assert rollups.percentile(mixed, 1.0) == 3 * 86400
    assert rollups.percentile({rollups.bucket_index(10**9): 3}, 0.5) == 30 * 86400  # open-ended: lower edge


def test_a_case_row_is_not_needed_to_read_stats(engine: Engine) -> None:
    """Stats read the rollups: a counter bumped for a past day shows up in the periods that include it."""
    with transaction(engine) as session:
        rollups.bump(session, day=date(2026, 3, 5), metric="new", dim1="mastodon", dim2="dm", n=40)
        rollups.bump(session, day=date(2026, 3, 5), metric="answered", dim1="mastodon", dim2="dm", n=30)
        rollups.bump(session, day=date(2026, 3, 5), metric="person_reply", dim1="U0ALICE", n=30, label="Al")
        rollups.bump(session, day=date(2026, 3, 6), metric="person_reply", dim1="U0ALICE", label="Alice")
        rollups.bump(session, day=date(2026, 3, 6), metric="person_claim", dim1="U0ALICE")  # no label: kept
        assert session.exec(select(CaseRow)).first() is None
    with transaction(engine, write=False) as session:
        week = compute(session, "7d", now=datetime(2026, 3, 10, 12, tzinfo=UTC))
        today = compute(session, "today", now=datetime(2026, 3, 10, 12, tzinfo=UTC))
    assert week.new == 40 and week.response_rate == 0.75 and week.by_platform_kind == [("mastodon", "dm", 40)]
    assert week.per_person == [("U0ALICE", "Alice", 1, 31, 0)]
    assert today.new == 0 and today.per_person == []
    assert rollup_rows(engine)[-1] == (date(2026, 3, 6), "person_reply", "U0ALICE", "", 1, "Alice")


def test_a_batch_bumps_each_counter_once_in_key_order(engine: Engine) -> None:
    day = date(2026, 3, 10)
    with transaction(engine) as session:
        rollups.bump(session, day=day, metric="new", dim1="x", dim2="dm")
        rollups.bump_many(session, {(day, "new", "x", "dm"): 2, (day, "new", "mastodon", "mention"): 5,
                                    (day, "new", "x", "review"): 0})
    assert rollup_rows(engine) == [(day, "new", "mastodon", "mention", 5, None), (day, "new", "x", "dm", 3, None)]
