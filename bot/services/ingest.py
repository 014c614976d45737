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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot.config import Config
from bot.core.model import Action, Item, Status
from bot.services import rollups
from bot.services.records import Effect, enqueue
from storage.db import transaction
from storage.tables import CaseRow, CursorRow, EventRow, FollowupRow, ItemRow, OutboxRow, utcnow

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


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


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


def _event(case_id: int, action: Action, now: datetime, **detail: Any) -> dict[str, Any]:
    return {"case_id": case_id, "action": action, "actor": None, "actor_name": None, "desk": None,
            "detail": detail, "at": now}


def _outbox(case_id: int, effect: str, now: datetime, **payload: Any) -> dict[str, Any]:
    return {"effect": effect, "case_id": case_id, "payload": payload, "done": False, "dead": False, "attempts": 0,
            "next_attempt_at": now, "locked_until": None, "last_error": None, "created_at": now, "done_at": None}


@dataclass(frozen=True, slots=True)
class _Statements:
    """Built once per dialect: values come as parameters, so SQLAlchemy compiles each statement once."""

    open_case: Any
    find_case: Any
    add_item: Any

    @classmethod
    def get(cls, dialect: str) -> _Statements:
        if dialect not in _STATEMENTS:
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            _STATEMENTS[dialect] = cls(
                open_case=insert(CASES).on_conflict_do_nothing(index_elements=["platform", "conversation"])
                .returning(CASES.c.id),
                find_case=select(CASES.c.id, CASES.c.status, CASES.c.owner, CASES.c.reopened, CASES.c.cycle)
                .where(CASES.c.platform == bindparam("p"), CASES.c.conversation == bindparam("c")).with_for_update(),
                add_item=insert(ITEMS).on_conflict_do_nothing(index_elements=["platform", "platform_id"])
                .returning(ITEMS.c.id),
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


def ingest_one(session: Session, item: Item, *, config: Config, writes: _Writes | None = None) -> Accepted:
    """One item in the caller's transaction. A duplicate changes nothing (its writes are undone).

    With `writes`, the audit event and outbox rows are collected for the caller to flush before commit.
    """
    own = writes is None
    writes = writes or _Writes()
    connection = session.connection()
    sql = _Statements.get(connection.dialect.name)
    now = utcnow()
    conversation = _conversation(connection, item)
    created = connection.execute(sql.open_case, {
        "platform": item.platform, "conversation": conversation, "kind": item.kind, "status": Status.OPEN,
        "channel": config.channel_for(platform=item.platform, kind=item.kind), "customer_id": item.author.id,
        "customer_name": item.author.name, "customer_handle": item.author.handle,
        "customer_followers": item.author.followers, "escalated": False, "reopened": 0, "cycle": 0,
        "opened_at": now, "last_message_at": now, "updated_at": now,
    }).scalar()
    case = None
    if created is None:
        case = connection.execute(sql.find_case, {"p": item.platform, "c": conversation}).one()
    case_id = int(created if created is not None else case.id)  # type: ignore[union-attr]
    inserted = connection.execute(sql.add_item, {
        "case_id": case_id, "platform": item.platform, "platform_id": item.platform_id, "direction": "in",
        "kind": item.kind, "author_id": item.author.id, "author_name": item.author.name,
        "author_handle": item.author.handle, "author_followers": item.author.followers, "text": item.text,
        "url": item.url, "rating": item.rating, "reply_to": dict(item.reply_to), "raw": dict(item.raw),
        "created_at": _utc(item.created_at), "received_at": now,
    }).scalar()
    if inserted is None:
        if created is not None:  # a repeated item under a new conversation key opens nothing
            connection.execute(CASES.delete().where(CASES.c.id == case_id))
        return Accepted(platform_id=item.platform_id, case_id=None if created else case_id, duplicate=True)

    if case is None:
        writes.events.append(_event(case_id, Action.OPEN, now, platform_id=item.platform_id))
        writes.outbox.append(_outbox(case_id, Effect.CARD, now))
        writes.counts[(rollups.day_of(now), "new", item.platform, str(item.kind))] += 1
        if own:
            writes.flush(session)
        return Accepted(platform_id=item.platform_id, case_id=case_id, duplicate=False)

    reopened = case.status == Status.RESOLVED
    changes: dict[str, Any] = {"last_message_at": now, "updated_at": now}
    if reopened:
        changes.update(status=Status.CLAIMED if case.owner else Status.OPEN, reopened=case.reopened + 1,
                       cycle=case.cycle + 1, resolved_at=None)
    connection.execute(update(CASES).where(CASES.c.id == case_id).values(**changes))
    if reopened:
        cancel_followups(session, case_id)
    action = Action.REOPEN if reopened else Action.MESSAGE
    detail = {"reason": "customer wrote again"} if reopened else {}
    writes.events.append(_event(case_id, action, now, platform_id=item.platform_id, **detail))
    prefix = "Reopened: the customer wrote again" if reopened else "New message from the customer"
    writes.outbox.append(_outbox(case_id, Effect.CARD, now))
    writes.outbox.append(_outbox(case_id, Effect.THREAD, now, text=prefix + ":", quote=item.text, url=item.url))
    if own:
        writes.flush(session)
    return Accepted(platform_id=item.platform_id, case_id=case_id, duplicate=False, reopened=reopened)


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
    engine: Engine, items: list[Item], *, config: Config, cursor: tuple[str, str] | None = None
) -> list[Accepted]:
    """All items (and the polling cursor) in one transaction; should any item fail unexpectedly, each is
    retried in a transaction of its own so that one bad item never holds back the others."""
    try:
        with transaction(engine) as session:
            writes = _Writes()
            results = [ingest_one(session, item, config=config, writes=writes) for item in items]
            writes.flush(session)
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
            results.append(ingest_one(session, item, config=config))
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
