"""Ingest: accept social items exactly once, attach them to cases and owe the chat a card.

Deduplication is the database's unique constraint on (platform, platform id), not a lookup, so
concurrent deliveries and several running copies cannot both accept the same item.

This is the hot path (thousands of webhook deliveries a second in a storm), so it speaks SQLAlchemy
Core on the session's connection rather than the ORM, and `IngestBatcher` commits the deliveries
that arrive together in one transaction (group commit): each is still answered only after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, bindparam, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bot.config import Config
from bot.core.model import Action, Item, Status
from bot.core.priority import REPEAT_WINDOW_DAYS, Signals, rank
from bot.services import rollups, targets
from bot.services.incidents import Grouping, Storms
from bot.services.records import Effect, audit, desks_for, enqueue, event_values, outbox_values
from storage.db import transaction
from storage.tables import CaseRow, CursorRow, EventRow, FollowupRow, ItemRow, OutboxRow, ReplyRow, as_utc, utcnow

log = logging.getLogger("socialops.ingest")

CASES = CaseRow.__table__  # type: ignore[attr-defined]
ITEMS = ItemRow.__table__  # type: ignore[attr-defined]
EVENTS = EventRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
ADD_EVENT = EVENTS.insert()
ADD_OUTBOX = OUTBOX.insert()


@dataclass(frozen=True, slots=True)
class Accepted:
    platform_id: str
    case_id: int | None
    duplicate: bool
    reopened: bool = False


def _conversation(connection: Connection, item: Item) -> str:
    """An answer to a message we know (ours or the customer's) continues that message's case."""
    if item.parent_id:
        parent_case = connection.execute(
            select(CASES.c.conversation).join(ITEMS, ITEMS.c.case_id == CASES.c.id)
            .where(ITEMS.c.platform == item.platform, ITEMS.c.platform_id == item.parent_id)
        ).scalar()
        if parent_case:
            return str(parent_case)
    return item.conversation


@dataclass(frozen=True, slots=True)
class _Statements:
    """Built once per dialect: values come as parameters, so SQLAlchemy compiles each statement once."""

    open_cases: Any
    find_cases: Any
    add_items: Any
    touch_cases: Any

    @classmethod
    def get(cls, dialect: str) -> _Statements:
        if dialect not in _STATEMENTS:
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            _STATEMENTS[dialect] = cls(
                open_cases=insert(CASES).on_conflict_do_nothing(index_elements=["platform", "conversation"])
                .returning(CASES.c.id, CASES.c.platform, CASES.c.conversation),
                find_cases=select(CASES.c.id, CASES.c.platform, CASES.c.conversation, CASES.c.status,
                                  CASES.c.owner, CASES.c.reopened, CASES.c.cycle, CASES.c.priority,
                                  CASES.c.priority_reasons, CASES.c.priority_by, CASES.c.due_from, CASES.c.due_at)
                .where(tuple_(CASES.c.platform, CASES.c.conversation).in_(bindparam("keys", expanding=True)))
                .order_by(CASES.c.id).with_for_update(),
                add_items=insert(ITEMS).on_conflict_do_nothing(index_elements=["platform", "platform_id"])
                .returning(ITEMS.c.id, ITEMS.c.platform, ITEMS.c.platform_id),
                touch_cases=update(CASES).where(CASES.c.id == bindparam("case_id"))
                .values(last_message_at=bindparam("now"), updated_at=bindparam("now")),
            )
        return _STATEMENTS[dialect]


_STATEMENTS: dict[str, _Statements] = {}


@dataclass(slots=True)
class _Writes:
    """Audit events, outbox rows and stats counters of a batch, written with one executemany each at its end."""

    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)

    def flush(self, session: Session) -> None:
        connection = session.connection()
        if self.events:
            connection.execute(ADD_EVENT, self.events)
        if self.outbox:
            connection.execute(ADD_OUTBOX, self.outbox)
        rollups.bump_many(session, self.counts)
        self.events, self.outbox, self.counts = [], [], Counter()


def ingest_one(session: Session, item: Item, *, config: Config, storms: Storms | None = None) -> Accepted:
    """One item in the caller's transaction. A duplicate changes nothing."""
    return ingest_many(session, [item], config=config, storms=storms)[0]


def ingest_many(session: Session, items: list[Item], *, config: Config, storms: Storms | None = None
                ) -> list[Accepted]:
    """Items in the caller's transaction, in order, with a handful of statements whatever their number.

    Cases are opened with one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING`, the rest found
    (and locked) with one `SELECT`; items are inserted the same way: an item the database did not
    return is a duplicate and changes nothing (a case opened only for duplicates is deleted again).
    """
    if not items:
        return []
    connection = session.connection()
    sql = _Statements.get(connection.dialect.name)
    now = utcnow()
    keys = [(item.platform, _conversation(connection, item)) for item in items]
    first_of_key: dict[tuple[str, str], Item] = {}
    for item, key in zip(items, keys, strict=True):
        first_of_key.setdefault(key, item)
    rules = targets.policy(config)
    repeat = _recent_customers(connection, [(key[0], item.author.id) for key, item in first_of_key.items()], now)
    opened = {(row.platform, row.conversation): int(row.id) for row in connection.execute(sql.open_cases, [
        {"platform": platform, "conversation": conversation, "kind": item.kind, "status": Status.OPEN,
         "channel": config.channel_for(platform=platform, kind=item.kind), "customer_id": item.author.id,
         "customer_name": item.author.name, "customer_handle": item.author.handle,
         "customer_followers": item.author.followers, "escalated": False, "reopened": 0, "cycle": 0,
         "opened_at": now, "last_message_at": now, "updated_at": now,
         **_target_columns(rules, _signals(item, (platform, item.author.id) in repeat), now)}
        for (platform, conversation), item in first_of_key.items()
    ])}
    existing = {(row.platform, row.conversation): row for row in connection.execute(
        sql.find_cases, {"keys": [key for key in first_of_key if key not in opened]})} \
        if len(opened) < len(first_of_key) else {}
    case_of = {key: opened.get(key) or int(existing[key].id) for key in first_of_key}
    stored = {(row.platform, row.platform_id): int(row.id) for row in connection.execute(sql.add_items, [
        {"case_id": case_of[key], "platform": item.platform, "platform_id": item.platform_id, "direction": "in",
         "kind": item.kind, "author_id": item.author.id, "author_name": item.author.name,
         "author_handle": item.author.handle, "author_followers": item.author.followers, "text": item.text,
         "url": item.url, "rating": item.rating, "reply_to": dict(item.reply_to), "raw": dict(item.raw),
         "created_at": as_utc(item.created_at), "received_at": now}
        for item, key in zip(items, keys, strict=True)
    ])}

    writes = _Writes()
    desks = desks_for(session)
    away = AwayCheck(config, rules, now)
    away_cases: list[tuple[int, Item]] = []
    results: list[Accepted] = []
    has_messages: set[int] = set()
    touched: set[int] = set()
    resolved = {int(row.id): row for row in existing.values() if row.status == Status.RESOLVED}
    existing_by_id = {int(row.id): row for row in existing.values()}
    started: set[int] = set()
    grouping = Grouping(storms, config, now) if storms is not None else None
    for item, key in zip(items, keys, strict=True):
        case_id = case_of[key]
        if stored.pop((item.platform, item.platform_id), None) is None:  # not stored, or stored for a twin
            results.append(Accepted(platform_id=item.platform_id, case_id=case_id, duplicate=True))
            continue
        if key in opened and case_id not in has_messages:
            has_messages.add(case_id)
            writes.events.append(event_values(case_id, Action.OPEN, now, platform_id=item.platform_id))
            writes.counts[(rollups.day_of(now), rollups.NEW, item.platform, str(item.kind))] += 1
            results.append(Accepted(platform_id=item.platform_id, case_id=case_id, duplicate=False))
            if grouping is not None and grouping.observe(case_id, item):
                continue  # a member of a storm: listed in the incident's thread, no card of its own
            if away.applies(item):
                away_cases.append((case_id, item))
            writes.outbox += outbox_values(case_id, Effect.CARD, now, desks)
            continue
        has_messages.add(case_id)
        row = resolved.pop(case_id, None)  # a second message in this batch finds the case open again
        reopened = row is not None
        if row is not None:
            connection.execute(update(CASES).where(CASES.c.id == case_id).values(
                status=Status.CLAIMED if row.owner else Status.OPEN, reopened=row.reopened + 1,
                cycle=row.cycle + 1, resolved_at=None))
            cancel_followups(session, case_id)
        touched.add(case_id)
        _next_target(connection, existing_by_id.get(case_id), item, rules, now, started)
        action = Action.REOPEN if reopened else Action.MESSAGE
        detail = {"reason": "customer wrote again"} if reopened else {}
        writes.events.append(event_values(case_id, action, now, platform_id=item.platform_id, **detail))
        prefix = "Reopened: the customer wrote again" if reopened else "New message from the customer"
        writes.outbox += outbox_values(case_id, Effect.CARD, now, desks)
        writes.outbox += outbox_values(case_id, Effect.THREAD, now, desks, text=prefix + ":", quote=item.text,
                                       url=item.url)
        results.append(Accepted(platform_id=item.platform_id, case_id=case_id, duplicate=False, reopened=reopened))
    if touched:
        connection.execute(sql.touch_cases, [{"case_id": case_id, "now": now} for case_id in sorted(touched)])
    orphans = [case_id for key, case_id in opened.items() if case_id not in has_messages]
    if orphans:  # opened for repeated items under a new conversation key: nothing is opened after all
        connection.execute(CASES.delete().where(CASES.c.id.in_(orphans)))
        results = [r if r.case_id not in orphans else Accepted(r.platform_id, None, True) for r in results]
    writes.flush(session)
    if grouping is not None:
        grouping.write(session, desks, set(opened.values()))
    for case_id, item in away_cases:
        away.send(session, case_id, item)
    return results


class AwayCheck:
    """Outside business hours, the away message for a new customer (once per customer per `at_most_every`)."""

    def __init__(self, config: Config, rules: targets.Policy, now: datetime) -> None:
        self._config = config.away_message
        self._hours = rules.hours
        self._now = now
        self._open = True
        if self._config is not None and config.business_hours is not None:
            self._open = self._hours.is_open(now)
            self._zone = ZoneInfo(config.business_hours.timezone)

    def applies(self, item: Item) -> bool:
        if self._config is None or self._open:
            return False
        return self._config.platforms is None or item.platform in self._config.platforms

    def send(self, session: Session, case_id: int, item: Item) -> None:
        assert self._config is not None
        since = self._now - timedelta(seconds=self._config.at_most_every)
        already = session.exec(
            sm_select(ReplyRow.id).join(CaseRow, col(CaseRow.id) == col(ReplyRow.case_id)).where(
                ReplyRow.kind == "away", col(ReplyRow.created_at) >= since,
                CaseRow.platform == item.platform, CaseRow.customer_id == item.author.id)).first()
        if already is not None:
            return
        back = self._hours.next_open(self._now)
        local = back.astimezone(self._zone)
        text = (self._config.text.replace("{first_name}", item.author.first_name)
                .replace("{next_open}", f"{local:%a %d %b, %H:%M} ({self._zone.key})"))
        row = ReplyRow(case_id=case_id, kind="away", text=text, author=None, author_name=None,
                       idempotency_key=f"socialops-away-{uuid.uuid4()}", created_at=self._now)
        session.add(row)
        session.flush()
        case = session.get(CaseRow, case_id)
        assert case is not None
        audit(session, case, Action.AWAY, at=self._now, reply_id=row.id)
        enqueue(session, Effect.SEND, case_id, reply_id=row.id)
        enqueue(session, Effect.CARD, case_id)
        enqueue(session, Effect.THREAD, case_id, text="🌙 Away message sent (outside business hours):",
                quote=text)


def _signals(item: Item, repeat: bool) -> Signals:
    return Signals(kind=str(item.kind), text=item.text, handle=item.author.handle, followers=item.author.followers,
                   rating=item.rating, repeat=repeat)


def _target_columns(rules: targets.Policy, signals: Signals, now: datetime) -> dict[str, Any]:
    """A new case: its priority (and why) and the first-response target, running from now."""
    triage = rules.triage(signals)
    warn_at, due_at = rules.deadlines(now, triage.priority)
    return {"priority": triage.priority, "priority_reasons": list(triage.reasons), "priority_by": None,
            "due_from": now, "warn_at": warn_at, "due_at": due_at, "sla_state": ""}


def _recent_customers(connection: Connection, customers: list[tuple[str, str]], now: datetime
                      ) -> set[tuple[str, str]]:
    """Customers of this batch who opened another case in the last REPEAT_WINDOW_DAYS days (repeat contacts)."""
    wanted = {c for c in customers if c[1]}
    if not wanted:
        return set()
    since = now - timedelta(days=REPEAT_WINDOW_DAYS)
    rows = connection.execute(select(CASES.c.platform, CASES.c.customer_id).where(
        tuple_(CASES.c.platform, CASES.c.customer_id).in_(sorted(wanted)), CASES.c.opened_at >= since)).all()
    return {(str(row.platform), str(row.customer_id)) for row in rows}


def _next_target(connection: Connection, row: Any, item: Item, rules: targets.Policy, now: datetime,
                 started: set[int]) -> None:
    """The customer wrote on an existing case: a reply is owed again if none was owed (it had been answered or
    resolved), and the message may make the case more urgent."""
    if row is None:
        return
    case_id = int(row.id)
    priority, reasons = str(row.priority), list(row.priority_reasons or [])
    triage = rules.triage(_signals(item, False))
    values: dict[str, Any] = {}
    if not row.priority_by and rank(triage.priority) < rank(priority):
        priority, reasons = triage.priority, list(dict.fromkeys([*reasons, *triage.reasons]))
        values.update(priority=priority, priority_reasons=reasons)
    due_from = row.due_from
    if row.due_at is None and case_id not in started:
        due_from = now
        started.add(case_id)
        values["due_from"] = now
    if values and due_from is not None:
        warn_at, due_at = rules.deadlines(as_utc(due_from), priority)
        values.update(warn_at=warn_at, due_at=due_at, sla_state="")
    if values:
        connection.execute(update(CASES).where(CASES.c.id == case_id).values(**values))


def cancel_followups(session: Session, case_id: int | None) -> None:
    """Pending check-ins are void once the customer is talking again; shown prompts say so."""
    pending = session.scalars(
        select(FollowupRow).where(
            col(FollowupRow.case_id) == case_id,
            col(FollowupRow.status).in_(("scheduled", "prompted")),
        )
    )
    for followup in pending:
        if followup.status == "prompted":
            enqueue(session, Effect.PROMPT, case_id, followup_id=followup.id)
        followup.status = "cancelled"
        session.add(followup)


def ingest(
    engine: Engine, items: list[Item], *, config: Config, cursor: tuple[str, str] | None = None,
    storms: Storms | None = None,
) -> list[Accepted]:
    """All items (and the polling cursor) in one transaction; should any item fail unexpectedly, each is
    retried in a transaction of its own so that one bad item never holds back the others."""
    try:
        with transaction(engine) as session:
            results = ingest_many(session, items, config=config, storms=storms)
            if cursor is not None:
                save_cursor(session, *cursor)
            return results
    except Exception:
        if len(items) <= 1:
            raise
        log.exception("batch of %d items failed; ingesting them one by one", len(items))
    results = []
    for item in items:
        with transaction(engine) as session:
            results.append(ingest_one(session, item, config=config, storms=storms))
    if cursor is not None:
        with transaction(engine) as session:
            save_cursor(session, *cursor)
    return results


class IngestBatcher:
    """Group commit: webhook deliveries that arrive while a batch is being written go in the next one."""

    def __init__(self, run: Callable[[list[Item]], list[Accepted]], *, max_batch: int = 256) -> None:
        self._run = run
        self._max = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Accepted]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Accepted:
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max], self._waiting[self._max:]
            try:
                results = await asyncio.to_thread(self._run, [item for item, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def load_cursor(engine: Engine, name: str) -> str | None:
    with transaction(engine, write=False) as session:
        row = session.get(CursorRow, name)
        return row.value if row else None


def save_cursor(session: Session, name: str, value: str) -> None:
    row = session.get(CursorRow, name)
    if row is None:
        row = CursorRow(name=name, value=value)
    row.value = value
    row.updated_at = utcnow()
    session.add(row)
