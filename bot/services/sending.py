"""Delivering replies and check-ins to the platform, exactly once per idempotency key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy import Engine
from sqlmodel import Session

from bot.config import Config
from bot.core.errors import SendError
from bot.core.model import Action, Delivery, ReplyStatus
from bot.core.ports import Announces, Sender
from bot.services import incidents, rollups, targets
from bot.services.cases import reply_target
from bot.services.outbox import Finish
from bot.services.records import audit, desks_for, load_case, refresh_card
from storage.db import transaction
from storage.tables import CaseRow, ItemRow, OutboxRow, ReplyRow, utcnow

MAX_SEND_ATTEMPTS = 8


class SendHandler:
    def __init__(self, *, engine: Engine, senders: Mapping[str, Sender], config: Config | None = None) -> None:
        self._engine = engine
        self._senders = senders
        self._config = config

    def _load(self, reply_id: int) -> tuple[ReplyRow, str, dict[str, object]] | None:
        with transaction(self._engine, write=False) as session:
            row = session.get(ReplyRow, reply_id)
            if row is None or row.status != ReplyStatus.QUEUED:
                return None
            case = load_case(session, row.case_id)
            if row.kind == "statement":  # a post of the brand's own on the platform named, not a reply
                return row, str((row.options or {}).get("platform") or case.platform), {}
            return row, case.platform, {**reply_target(session, row.case_id).reply_to, **(row.options or {})}

    async def __call__(self, outbox: OutboxRow) -> Finish | None:
        reply_id = int(outbox.payload["reply_id"])
        loaded = await asyncio.to_thread(self._load, reply_id)
        if loaded is None:
            return None  # already sent or failed: nothing is owed
        row, platform, reply_to = loaded
        sender = self._senders.get(str(reply_to.get("via") or platform))
        if sender is None:
            return _failed(reply_id, f"no source is configured to send on {platform}", self._config)
        try:
            if row.kind == "statement":
                if not isinstance(sender, Announces):
                    return _failed(reply_id, f"{platform} takes no public statement from the bot", self._config)
                delivery = await sender.announce(text=row.text, idempotency_key=row.idempotency_key)
            else:
                delivery = await sender.send(reply_to=reply_to, text=row.text, idempotency_key=row.idempotency_key)
        except SendError as error:
            if error.permanent or outbox.attempts >= MAX_SEND_ATTEMPTS:
                return _failed(reply_id, error.message, self._config)
            raise
        return _sent(reply_id, platform, delivery, self._config)


def _incident_progress(session: Session, row: ReplyRow, case: CaseRow, config: Config | None, text: str) -> bool:
    """A reply or statement of Reply to all: the incident card shows the progress (coalesced), and the member's own
    card only if it has one. True when the row belonged to an incident."""
    incident_id = incidents.incident_of_key(row.idempotency_key)
    if incident_id is None:
        return False
    now = utcnow()
    incidents.refresh(session, incident_id, config, desks_for(session), now,
                      log=text if row.kind == "statement" else None)
    if row.kind != "statement" and incidents.has_card(session, case.id or 0):
        refresh_card(session, case)
    return True


def _sent(reply_id: int, platform: str, delivery: Delivery, config: Config | None = None) -> Finish:
    def finish(session: Session) -> None:
        row = session.get(ReplyRow, reply_id, with_for_update=True)
        if row is None or row.status == ReplyStatus.SENT:
            return
        now = utcnow()
        row.status, row.platform_id, row.url, row.sent_at, row.error = (
            ReplyStatus.SENT, delivery.platform_id, delivery.url, now, None)
        session.add(row)
        case = load_case(session, row.case_id, for_update=True)
        if row.kind == "statement":
            audit(session, case, Action.REPLY_SENT, actor=row.author, actor_name=row.author_name, at=now,
                  reply_id=row.id, platform_id=delivery.platform_id, kind=row.kind)
            _incident_progress(session, row, case, config,
                               f"Public statement posted on {platform if len(platform) > 2 else platform.upper()}." +
                               (f" {delivery.url}" if delivery.url else ""))
            return
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
        if not _incident_progress(session, row, case, config, ""):
            refresh_card(session, case, f"{what} sent.", url=delivery.url)

    return finish


def _failed(reply_id: int, reason: str, config: Config | None = None) -> Finish:
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
        if row.kind == "statement":
            _incident_progress(session, row, case, config, f"The public statement failed: {reason}")
        elif not _incident_progress(session, row, case, config, ""):
            refresh_card(session, case, f"{what} failed:", quote=reason)

    return finish
