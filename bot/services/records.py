"""Small writes every use case shares: audit events and outbox rows, always in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlmodel import Session, col, select

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
    PAGE = "page"
    """Page people for an escalation (a level of the escalation policy, or its reminder), with Acknowledge."""
    USERGROUP = "usergroup"
    """Set a Slack user group's members to whoever is on call now (oncall.usergroup)."""
    HANDOFF = "handoff"
    """Announce an on-call hand-off in the escalation channel (who is on call now, until when)."""
    INCIDENT = "incident"
    """Post or update an incident card (a storm); payload incident_id. Coalesced: one pending per desk."""
    MEMBERS = "members"
    """List the next members of an incident in its card's thread (a digest); payload incident_id."""


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


def event_values(case_id: int, action: Action, now: datetime, **detail: Any) -> dict[str, Any]:
    """An audit event by the bot itself, as column values for a bulk insert (ingest's hot path)."""
    return {"case_id": case_id, "action": action, "actor": None, "actor_name": None, "desk": None,
            "detail": detail, "at": now}


def outbox_values(case_id: int, effect: str, now: datetime, desks: tuple[str, ...], *, due: datetime | None = None,
                  **payload: Any) -> list[dict[str, Any]]:
    """Outbox rows as column values for a bulk insert, one per desk (`("",)` for a send), due at `due` (now)."""
    return [{"effect": effect, "desk": desk, "case_id": case_id, "payload": payload, "done": False, "dead": False,
             "attempts": 0, "next_attempt_at": due or now, "locked_until": None, "last_error": None, "created_at": now,
             "done_at": None} for desk in desks]


_DESKS: WeakKeyDictionary[Engine, tuple[str, ...]] = WeakKeyDictionary()
DEFAULT_DESKS = ("slack",)


def use_desks(engine: Engine, desks: Sequence[str]) -> None:
    """The chat desks this database's cases are shown in: every chat effect is written once per desk."""
    _DESKS[engine] = tuple(desks)


def desks_of(engine: Engine) -> tuple[str, ...]:
    return _DESKS.get(engine, DEFAULT_DESKS)


def desks_for(session: Session, desk: str | None = None) -> tuple[str, ...]:
    if desk is not None:
        return (desk,)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return desks_of(engine)


def enqueue(session: Session, effect: str, case_id: int | None, *, desk: str | None = None, **payload: Any) -> None:
    """A side effect, written in the caller's transaction: a send to the platform once, a chat effect once per
    desk (or for the one `desk` named)."""
    if effect == Effect.SEND:
        session.add(OutboxRow(effect=effect, desk="", case_id=case_id, payload=payload))
        return
    for each in desks_for(session, desk):
        session.add(OutboxRow(effect=effect, desk=each, case_id=case_id, payload=dict(payload)))


def desk_of_person(session: Session, case_id: int, person: str) -> str | None:
    """The desk a person last acted from on this case (where a private note to them belongs)."""
    return session.exec(select(EventRow.desk).where(
        EventRow.case_id == case_id, EventRow.actor == person, col(EventRow.desk).is_not(None),
    ).order_by(col(EventRow.id).desc()).limit(1)).first()


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
