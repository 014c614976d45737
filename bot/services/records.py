"""Small writes every use case shares: audit events and outbox rows, always in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.core.errors import UnknownCase
from bot.core.model import Action
from storage.tables import CaseRow, EventRow, OutboxRow, utcnow


class Effect:
    CARD = "card"
    """Post the case card, or update it in place when it is already posted."""
    THREAD = "thread"
    EPHEMERAL = "ephemeral"
    ESCALATION = "escalation"
    SEND = "send"
    PROMPT = "prompt"
    """Post or update a follow-up prompt in the card's thread."""
    NOTICE = "notice"
    """Tell the admin channel about a problem the bot cannot fix itself (a source's credentials)."""


def audit(
    session: Session,
    case: CaseRow,
    action: Action,
    *,
    actor: str | None = None,
    actor_name: str | None = None,
    desk: str | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> EventRow:
    """`at` defaults to now; a use case passes its own `now` when a rollup counts the event on that day."""
    assert case.id is not None
    event = EventRow(case_id=case.id, action=action, actor=actor, actor_name=actor_name, desk=desk,
                     detail=detail, at=at or utcnow())
    session.add(event)
    return event


def enqueue(session: Session, effect: str, case_id: int | None, **payload: Any) -> None:
    session.add(OutboxRow(effect=effect, case_id=case_id, payload=payload))


def refresh_card(session: Session, case: CaseRow, log: str | None = None, *, quote: str | None = None,
                 url: str | None = None) -> None:
    """The card shows the new state; `log` (and a quoted text, a link) goes to the card's thread."""
    assert case.id is not None
    case.updated_at = utcnow()
    session.add(case)
    enqueue(session, Effect.CARD, case.id)
    if log:
        enqueue(session, Effect.THREAD, case.id, text=log, quote=quote, url=url)


def load_case(session: Session, case_id: int, *, for_update: bool = False) -> CaseRow:
    case = session.get(CaseRow, case_id, with_for_update=for_update)
    if case is None:
        raise UnknownCase(f"Case #{case_id} does not exist (any more). Nothing was changed.")
    return case
