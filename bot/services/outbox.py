"""The outbox worker: delivers side effects written by use cases, with retries, backoff and pacing.

Only the head of each case's queue (per desk: Slack, Teams, and sends to the platform each have their own) is
leased, so a case's effects go out in the order they were written and never concurrently (also across several
copies on PostgreSQL, with SKIP LOCKED).
A handler returns a `finish` function that runs in the same transaction that marks the row done:
what the platform answered (a message ts, a status id) is stored atomically with "delivered".
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, case
from sqlalchemy.orm import aliased
from sqlmodel import Session, and_, col, exists, or_, select

from bot.core.errors import SendError
from bot.services.records import Effect
from storage.db import is_postgres, transaction
from storage.tables import OutboxRow, utcnow

log = logging.getLogger("socialops.outbox")

Finish = Callable[[Session], None]
Handler = Callable[[OutboxRow], Awaitable[Finish | None]]
Handlers = dict[tuple[str, str], Handler]
"""By (desk, effect): ("slack", "card"), ("teams", "card"), ("", "send")."""

MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=60)
"""How long a claimed row stays invisible to other workers; a crashed copy's rows come back after it."""


def backoff(attempts: int) -> float:
    return float(min(300.0, 2.0 ** min(attempts, 9)) * (0.75 + random.random() / 2))


class Outbox:
    def __init__(self, *, engine: Engine, handlers: Handlers, batch: int = 20,
                 idle_poll: float = 1.0, lease: timedelta = LEASE) -> None:
        self._engine = engine
        self._lease_for = lease
        self._handlers = handlers
        self._batch = batch
        self._idle_poll = idle_poll
        self._lane_wakes: list[asyncio.Event] = []
        self._stopping = False
        self._held: set[int] = set()
        """Rows this worker leased and has not finished: handed back on a graceful stop."""

    def wake(self) -> None:
        for wake in self._lane_wakes:
            wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    async def run(self) -> None:
        """Two lanes, each keeping up to `batch` deliveries in flight and leasing more as soon as one ends:
        sends to the platforms in one, chat messages in the other, so a slow or unreachable platform never
        holds back the cards (nor another case's send)."""
        await asyncio.gather(self._lane(sends=True), self._lane(sends=False))

    async def _lane(self, *, sends: bool) -> None:
        wake = asyncio.Event()
        self._lane_wakes.append(wake)
        in_flight: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            wake.set()

        try:
            while not self._stopping:
                leased = 0
                free = self._batch - len(in_flight)
                if free > 0:
                    try:
                        rows = await asyncio.to_thread(self._lease, free, sends)
                    except Exception:
                        log.exception("outbox lease failed")
                        rows = []
                    self._held.update(row.id for row in rows if row.id is not None)
                    for row in rows:
                        task = asyncio.create_task(self._deliver(row))
                        in_flight.add(task)
                        task.add_done_callback(finished)
                    leased = len(rows)
                if leased == 0 or len(in_flight) >= self._batch:
                    wake.clear()
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=self._idle_poll)
                    except TimeoutError:
                        pass
        finally:
            if in_flight:  # a graceful stop lets them finish; their leases are handed back otherwise
                _, pending = await asyncio.wait(in_flight, timeout=5)
                for task in pending:
                    task.cancel()

    async def deliver_once(self) -> int:
        """One lease of due rows, delivered before returning (tests step the outbox with it)."""
        rows = await asyncio.to_thread(self._lease, self._batch, None)
        self._held.update(row.id for row in rows if row.id is not None)
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    def hand_back(self) -> int:
        """After a stop: rows leased but not finished are due again at once, for this or another copy."""
        held, self._held = list(self._held), set()
        return self._unlock(col(OutboxRow.id).in_(held)) if held else 0

    def _lease(self, limit: int, sends: bool | None) -> list[OutboxRow]:
        """Lease up to `limit` due rows, heads of their case's queue: only sends to the platforms
        (`sends` True), only chat effects (False), or both (None). Incident cards first, then by age: in a storm
        the card that sums it up must not wait behind a backlog of other cards."""
        now = utcnow()
        earlier = aliased(OutboxRow)
        is_head = ~exists().where(
            col(earlier.case_id) == col(OutboxRow.case_id), col(earlier.desk) == col(OutboxRow.desk),
            col(earlier.done).is_(False), col(earlier.id) < col(OutboxRow.id),
        )
        query = (
            select(OutboxRow)
            .where(
                col(OutboxRow.done).is_(False),
                col(OutboxRow.next_attempt_at) <= now,
                or_(col(OutboxRow.locked_until).is_(None), col(OutboxRow.locked_until) < now),
                or_(col(OutboxRow.case_id).is_(None), and_(is_head)),
            )
            .order_by(case((col(OutboxRow.effect) == Effect.INCIDENT, 0), else_=1), col(OutboxRow.id))
            .limit(limit)
        )
        if sends is not None:
            query = query.where(col(OutboxRow.effect) == Effect.SEND if sends else col(OutboxRow.effect) != Effect.SEND)
        with transaction(self._engine) as session:
            if is_postgres(self._engine):
                query = query.with_for_update(skip_locked=True, of=OutboxRow)
            rows = list(session.exec(query))
            for row in rows:
                row.locked_until = now + self._lease_for
                row.attempts += 1
                session.add(row)
        return rows

    async def _deliver(self, row: OutboxRow) -> None:
        handler = self._handlers.get((row.desk, row.effect))
        try:
            if handler is None:
                raise SendError(f"no handler for effect {row.effect!r} on desk {row.desk!r}", permanent=True)
            finish = await handler(row)
        except SendError as error:
            await asyncio.to_thread(self._failed, row, error.message, error.permanent, error.retry_after)
            return
        except Exception as error:
            log.exception("outbox %s for case %s failed", row.effect, row.case_id)
            await asyncio.to_thread(self._failed, row, f"{type(error).__name__}: {error}", False, None)
            return
        await asyncio.to_thread(self._done, row, finish)

    def release_leases(self) -> int:
        """At start on SQLite (one process owns the file): rows a killed process had claimed are due now."""
        return self._unlock(col(OutboxRow.locked_until).is_not(None))

    def _unlock(self, *which: Any) -> int:
        """Undone rows matching `which` become due again at once; returns how many."""
        with transaction(self._engine) as session:
            rows = list(session.exec(select(OutboxRow).where(col(OutboxRow.done).is_(False), *which)))
            for row in rows:
                row.locked_until = None
                session.add(row)
        return len(rows)

    def _done(self, row: OutboxRow, finish: Finish | None) -> None:
        with transaction(self._engine) as session:
            if finish is not None:
                finish(session)
            stored = session.get(OutboxRow, row.id)
            if stored is not None:
                stored.done, stored.done_at, stored.locked_until = True, utcnow(), None
                session.add(stored)
        self._held.discard(row.id or 0)

    def _failed(self, row: OutboxRow, message: str, permanent: bool, retry_after: float | None) -> None:
        with transaction(self._engine) as session:
            stored = session.get(OutboxRow, row.id)
            if stored is None:
                return
            stored.last_error = message[:2000]
            stored.locked_until = None
            if permanent or stored.attempts >= MAX_ATTEMPTS:
                stored.done, stored.dead, stored.done_at = True, True, utcnow()
                log.error("outbox %s for case %s gave up after %d attempts: %s",
                          row.effect, row.case_id, stored.attempts, message)
            else:
                delay = retry_after if retry_after is not None else backoff(stored.attempts)
                stored.next_attempt_at = utcnow() + timedelta(seconds=delay)
                log.warning("outbox %s for case %s: retry in %.1fs: %s", row.effect, row.case_id, delay, message)
            session.add(stored)
        self._held.discard(row.id or 0)


def pending_card_rows(session: Session, case_id: int, desk: str) -> list[int]:
    """A desk's card rows for a case written before its view is read: one update covers them all."""
    return list(session.exec(select(OutboxRow.id).where(
        OutboxRow.case_id == case_id, OutboxRow.desk == desk, OutboxRow.effect == Effect.CARD,
        col(OutboxRow.done).is_(False),
    )).all())  # type: ignore[arg-type]


def mark_done(ids: list[int]) -> Finish:
    """A `finish` marking other rows done too (those one delivery covered)."""
    def finish(session: Session) -> None:
        for outbox_id in ids:
            stored = session.get(OutboxRow, outbox_id)
            if stored is not None and not stored.done:
                stored.done = True
                session.add(stored)

    return finish
