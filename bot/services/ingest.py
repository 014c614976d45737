"""Ingest: accept social items exactly once, attach them to cases and owe the chat a card.

Deduplication is the database's unique constraint on (platform, platform id), not a lookup, so
concurrent deliveries and several running copies cannot both accept the same item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.config import Config
from bot.core.model import Action, Item, Status
from bot.services.records import Effect, audit, enqueue, refresh_card
from storage.db import transaction
from storage.tables import CaseRow, CursorRow, FollowupRow, ItemRow, utcnow


@dataclass(frozen=True, slots=True)
class Accepted:
    platform_id: str
    case_id: int | None
    duplicate: bool
    reopened: bool = False


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _naive_utc(item: Item) -> ItemRow:
    created = item.created_at
    created = created.astimezone(UTC) if created.tzinfo else created.replace(tzinfo=UTC)
    return ItemRow(
        case_id=0,
        platform=item.platform,
        platform_id=item.platform_id,
        direction="in",
        kind=item.kind,
        author_id=item.author.id,
        author_name=item.author.name,
        author_handle=item.author.handle,
        author_followers=item.author.followers,
        text=item.text,
        url=item.url,
        rating=item.rating,
        reply_to=dict(item.reply_to),
        raw=dict(item.raw),
        created_at=created,
    )


def _conversation(session: Session, item: Item) -> str:
    """An answer to a message we know (ours or the customer's) continues that message's case."""
    if item.parent_id:
        parent_case = session.exec(
            select(CaseRow.conversation).join(ItemRow, col(ItemRow.case_id) == col(CaseRow.id))
            .where(ItemRow.platform == item.platform, ItemRow.platform_id == item.parent_id)
        ).first()
        if parent_case:
            return parent_case
    return item.conversation


def ingest_one(session: Session, item: Item, *, config: Config) -> Accepted:
    insert = _insert(session)
    now = utcnow()
    conversation = _conversation(session, item)
    # Open the case if this conversation has none; a conflict means it exists already.
    created = session.execute(
        insert(CaseRow)
        .values(
            platform=item.platform,
            conversation=conversation,
            kind=item.kind,
            status=Status.OPEN,
            channel=config.channel_for(platform=item.platform, kind=item.kind),
            customer_id=item.author.id,
            customer_name=item.author.name,
            customer_handle=item.author.handle,
            customer_followers=item.author.followers,
            escalated=False,
            reopened=0,
            cycle=0,
            opened_at=now,
            last_message_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["platform", "conversation"])
        .returning(CaseRow.id)
    ).first()
    case = session.exec(
        select(CaseRow)
        .where(CaseRow.platform == item.platform, CaseRow.conversation == conversation)
        .with_for_update()
    ).one()
    assert case.id is not None
    row = _naive_utc(item)
    values = {c: getattr(row, c) for c in ItemRow.model_fields if c != "id"}
    values["case_id"] = case.id
    inserted = session.execute(
        insert(ItemRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["platform", "platform_id"])
        .returning(ItemRow.id)
    ).first()
    if inserted is None:
        session.rollback()
        return Accepted(platform_id=item.platform_id, case_id=case.id, duplicate=True)

    reopened = False
    if created is not None:
        audit(session, case, Action.OPEN, platform_id=item.platform_id)
        enqueue(session, Effect.CARD, case.id)
    else:
        case.last_message_at = now
        if case.status == Status.RESOLVED:
            reopened = True
            case.status = Status.CLAIMED if case.owner else Status.OPEN
            case.reopened += 1
            case.cycle += 1
            case.resolved_at = None
            cancel_followups(session, case)
            audit(session, case, Action.REOPEN, reason="customer wrote again", platform_id=item.platform_id)
        else:
            audit(session, case, Action.MESSAGE, platform_id=item.platform_id)
        prefix = "Reopened: the customer wrote again" if reopened else "New message from the customer"
        refresh_card(session, case, prefix + ":", quote=item.text, url=item.url)
    return Accepted(platform_id=item.platform_id, case_id=case.id, duplicate=False, reopened=reopened)


def cancel_followups(session: Session, case: CaseRow) -> None:
    """Pending check-ins are void once the customer is talking again; shown prompts say so."""
    pending = select(FollowupRow).where(
        FollowupRow.case_id == case.id,
        FollowupRow.status.in_(("scheduled", "prompted")),  # type: ignore[attr-defined]
    )
    for followup in session.exec(pending):
        if followup.status == "prompted":
            enqueue(session, Effect.PROMPT, case.id, followup_id=followup.id)
        followup.status = "cancelled"
        session.add(followup)


def ingest(
    engine: Engine, items: list[Item], *, config: Config, cursor: tuple[str, str] | None = None
) -> list[Accepted]:
    """Each item in its own transaction (a duplicate never rolls back its neighbours).

    The polling cursor, when given, is saved with the last item, so a restart neither misses nor repeats.
    """
    results: list[Accepted] = []
    for item in items:
        with transaction(engine) as session:
            results.append(ingest_one(session, item, config=config))
    if cursor is not None:
        with transaction(engine) as session:
            save_cursor(session, *cursor)
    return results


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
