"""Delivering replies and check-ins to the platform, exactly once per idempotency key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.errors import SendError
from bot.core.model import Action, Delivery, ReplyStatus
from bot.core.ports import Sender
from bot.services import rollups, targets
from bot.services.cases import reply_target
from bot.services.outbox import Finish
from bot.services.records import audit, load_case, refresh_card
from storage.db import transaction
from storage.tables import ItemRow, OutboxRow, ReplyRow, utcnow

MAX_SEND_ATTEMPTS = 8


class SendHandler:
    def __init__(self, *, engine: Engine, senders: Mapping[str, Sender]) -> None:
        self._engine = engine
        self._senders = senders

    def _load(self, reply_id: int) -> tuple[ReplyRow, str, dict[str, object]] | None:
        with transaction(self._engine, write=False) as session:
            row = session.get(ReplyRow, reply_id)
            if row is None or row.status != ReplyStatus.QUEUED:
                return None
            case = load_case(session, row.case_id)
            return row, case.platform, {**reply_target(session, row.case_id).reply_to, **(row.options or {})}

    async def __call__(self, outbox: OutboxRow) -> Finish | None:
        reply_id = int(outbox.payload["reply_id"])
        loaded = await asyncio.to_thread(self._load, reply_id)
        if loaded is None:
            return None  # already sent or failed: nothing is owed
        row, platform, reply_to = loaded
        sender = self._senders.get(str(reply_to.get("via") or platform))
        if sender is None:
            return _failed(reply_id, f"no source is configured to send on {platform}")
        try:
            delivery = await sender.send(reply_to=reply_to, text=row.text, idempotency_key=row.idempotency_key)
        except SendError as error:
            if error.permanent or outbox.attempts >= MAX_SEND_ATTEMPTS:
                return _failed(reply_id, error.message)
            raise
        return _sent(reply_id, platform, delivery)


def _sent(reply_id: int, platform: str, delivery: Delivery) -> Finish:
    def finish(session: Session) -> None:
        row = session.get(ReplyRow, reply_id, with_for_update=True)
        if row is None or row.status == ReplyStatus.SENT:
            return
        now = utcnow()
        row.status, row.platform_id, row.url, row.sent_at, row.error = (
            ReplyStatus.SENT, delivery.platform_id, delivery.url, now, None)
        session.add(row)
        case = load_case(session, row.case_id, for_update=True)
        session.add(ItemRow(
            case_id=row.case_id, platform=platform, platform_id=delivery.platform_id or row.idempotency_key,
            direction="out", kind="reply", author_id=row.author or "", author_name=row.author_name or "",
            text=row.text, url=delivery.url, created_at=now,
        ))
        if row.kind == "reply" and case.first_response_at is None:
            case.first_response_at = now
            case.first_response_s = (now - case.opened_at).total_seconds()
            case.first_responder = row.author
            # Counted on the day the case was opened, so answered / new is the period's response rate.
            opened = rollups.day_of(case.opened_at)
            rollups.bump(session, day=opened, metric=rollups.ANSWERED, dim1=case.platform, dim2=case.kind)
            rollups.bump(session, day=opened, metric=rollups.FIRST_RESPONSE,
                         dim1=rollups.bucket(case.first_response_s))
        if row.kind == "reply":
            targets.answered(session, case, now)
        if row.kind == "reply" and row.author:
            rollups.bump(session, day=rollups.day_of(now), metric=rollups.PERSON_REPLY, dim1=row.author,
                         label=row.author_name)
        audit(session, case, Action.REPLY_SENT, actor=row.author, actor_name=row.author_name, at=now,
              reply_id=row.id, platform_id=delivery.platform_id, kind=row.kind)
        what = {"checkin": "Check-in", "away": "Away message"}.get(row.kind, "Reply")
        refresh_card(session, case, f"{what} sent.", url=delivery.url)

    return finish


def _failed(reply_id: int, reason: str) -> Finish:
    def finish(session: Session) -> None:
        row = session.get(ReplyRow, reply_id, with_for_update=True)
        if row is None or row.status != ReplyStatus.QUEUED:
            return
        row.status, row.error = ReplyStatus.FAILED, reason[:1000]
        session.add(row)
        case = load_case(session, row.case_id, for_update=True)
        audit(session, case, Action.REPLY_FAILED, actor=row.author, actor_name=row.author_name,
              reply_id=row.id, reason=reason)
        what = {"checkin": "Check-in", "away": "Away message"}.get(row.kind, "Reply")
        refresh_card(session, case, f"{what} failed:", quote=reason)

    return finish
