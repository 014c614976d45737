"""Use cases on a case: claim, take over, release, reply, escalate, resolve, reopen, retry.

Each function runs inside the caller's single transaction, checks the transition and the person's
right to make it, records the audit event and writes the outbox rows the change owes the outside world.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from bot.config import Config
from bot.core.errors import ActionError, InvalidInput, NotAllowed
from bot.core.model import Action, ReplyStatus, Status
from bot.core.priority import NAMES as PRIORITY_NAMES
from bot.core.priority import PRIORITIES
from bot.core.view import CaseView, ReplyView
from bot.services import paging, rollups, targets
from bot.services.ingest import cancel_followups
from bot.services.records import Effect, audit, desk_of_person, enqueue, load_case, refresh_card
from storage.tables import CaseRow, FollowupRow, IncidentRow, ItemRow, ReplyRow, as_utc, utcnow


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str
    desk: str = "slack"


class OwnedByOther(ActionError):
    """Claim on a case someone else owns: the clicker is offered a take-over."""

    def __init__(self, case_id: int, owner: str, owner_name: str | None) -> None:
        super().__init__(f"Case #{case_id} is owned by {owner_name or owner}.")
        self.case_id = case_id
        self.owner = owner
        self.owner_name = owner_name


def _require_not_resolved(case: CaseRow, verb: str) -> None:
    if case.status == Status.RESOLVED:
        raise ActionError(f"Case #{case.id} is resolved; reopen it first to {verb} it.")


def _require_owner_or_free(case: CaseRow, actor: Actor, verb: str) -> None:
    if case.owner and case.owner != actor.id:
        raise OwnedByOther(case.id or 0, case.owner, case.owner_name)


def _record_claim(session: Session, case: CaseRow, action: Action, actor: Actor, **detail: Any) -> None:
    """Audit a claim (or take-over) and count it for the person, on one timestamp."""
    now = utcnow()
    audit(session, case, action, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now, **detail)
    rollups.bump(session, day=rollups.day_of(now), metric=rollups.PERSON_CLAIM, dim1=actor.id, label=actor.name)


def claim(session: Session, case_id: int, actor: Actor) -> CaseRow:
    case = load_case(session, case_id, for_update=True)
    _require_not_resolved(case, "claim")
    if case.owner == actor.id:
        raise ActionError(f"You already own case #{case.id}.")
    _require_owner_or_free(case, actor, "claim")
    case.owner, case.owner_name, case.status = actor.id, actor.name, Status.CLAIMED
    _record_claim(session, case, Action.CLAIM, actor)
    refresh_card(session, case, f"{actor.name} claimed the case.")
    return case


def take_over(session: Session, case_id: int, actor: Actor) -> CaseRow:
    case = load_case(session, case_id, for_update=True)
    _require_not_resolved(case, "take over")
    previous, previous_name = case.owner, case.owner_name
    if previous == actor.id:
        raise ActionError(f"You already own case #{case.id}.")
    case.owner, case.owner_name, case.status = actor.id, actor.name, Status.CLAIMED
    _record_claim(session, case, Action.TAKE_OVER, actor, previous=previous)
    refresh_card(session, case, f"{actor.name} took the case over from {previous_name or 'nobody'}.")
    if previous:
        enqueue(session, Effect.EPHEMERAL, case.id, desk=desk_of_person(session, case.id or 0, previous),
                user=previous, name=previous_name,
                text=f"{actor.name} took over case #{case.id} from you.")
    return case


def release(session: Session, case_id: int, actor: Actor) -> CaseRow:
    case = load_case(session, case_id, for_update=True)
    if case.owner != actor.id:
        raise NotAllowed(f"Only the owner ({case.owner_name or 'nobody'}) can release case #{case.id}.")
    _require_not_resolved(case, "release")
    case.owner, case.owner_name, case.status = None, None, Status.OPEN
    audit(session, case, Action.RELEASE, actor=actor.id, actor_name=actor.name, desk=actor.desk)
    refresh_card(session, case, f"{actor.name} released the case.")
    return case


def reply(session: Session, case_id: int, actor: Actor, text: str, *, max_length: int,
          options: dict[str, Any] | None = None) -> ReplyRow:
    """Queue a reply; replying to an unclaimed case claims it for the one who answers."""
    text = text.strip()
    if not text:
        raise InvalidInput("The reply is empty.")
    if len(text) > max_length:
        raise InvalidInput(f"The reply is {len(text)} characters; this platform allows {max_length}.")
    case = load_case(session, case_id, for_update=True)
    _require_owner_or_free(case, actor, "reply to")
    if case.status == Status.OPEN:
        case.owner, case.owner_name, case.status = actor.id, actor.name, Status.CLAIMED
        _record_claim(session, case, Action.CLAIM, actor)
    row = _queue_message(session, case, text, actor, kind="reply", options=options)
    audit(session, case, Action.REPLY, actor=actor.id, actor_name=actor.name, desk=actor.desk, reply_id=row.id)
    refresh_card(session, case, f"{actor.name} is replying:", quote=text)
    return row


def _queue_message(session: Session, case: CaseRow, text: str, actor: Actor, *, kind: str,
                   options: dict[str, Any] | None = None) -> ReplyRow:
    row = ReplyRow(case_id=case.id or 0, kind=kind, text=text, author=actor.id, author_name=actor.name,
                   idempotency_key=f"socialops-{uuid.uuid4()}", options=options or None)
    session.add(row)
    session.flush()
    enqueue(session, Effect.SEND, case.id, reply_id=row.id)
    return row


def retry(session: Session, reply_id: int, actor: Actor) -> ReplyRow:
    row = session.get(ReplyRow, reply_id, with_for_update=True)
    if row is None:
        raise ActionError("That reply does not exist (any more). Nothing was changed.")
    if row.status != ReplyStatus.FAILED:
        raise ActionError(f"That reply is {row.status}; only a failed reply can be retried.")
    case = load_case(session, row.case_id, for_update=True)
    row.status, row.error = ReplyStatus.QUEUED, None
    session.add(row)
    enqueue(session, Effect.SEND, case.id, reply_id=row.id)
    audit(session, case, Action.REPLY, actor=actor.id, actor_name=actor.name, desk=actor.desk,
          reply_id=row.id, retry=True)
    refresh_card(session, case, f"{actor.name} retried sending the reply.")
    return row


def escalate(session: Session, case_id: int, actor: Actor, reason: str, *, config: Config | None = None) -> CaseRow:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why the case needs escalating.")
    case = load_case(session, case_id, for_update=True)
    _require_not_resolved(case, "escalate")
    now = utcnow()
    if not case.escalated:  # a new reason for an escalated case is not another escalation
        rollups.bump(session, day=rollups.day_of(now), metric=rollups.ESCALATED, dim1=case.platform, dim2=case.kind)
    case.escalated, case.escalation_reason, case.escalated_by = True, reason, actor.name
    case.escalated_at = now
    audit(session, case, Action.ESCALATE, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now,
          reason=reason)
    refresh_card(session, case, f"{actor.name} escalated the case:", quote=reason)
    enqueue(session, Effect.ESCALATION, case.id, reason=reason, by=actor.name)
    if config is not None and (case.page_next_at is None or case.acked_at is not None or not case.page_level):
        paging.start(session, case, config, now)  # a new reason while the climb runs does not restart it
    return case


def set_priority(session: Session, case_id: int, actor: Actor, priority: str, *, rules: targets.Policy) -> CaseRow:
    """The owner changes the priority; the target running now is counted again with the new length."""
    if priority not in PRIORITIES:
        raise InvalidInput(f"{priority!r} is not a priority: use {', '.join(PRIORITIES)}.")
    case = load_case(session, case_id, for_update=True)
    _require_not_resolved(case, "change the priority of")
    if case.owner != actor.id:
        who = case.owner_name or case.owner
        raise NotAllowed(f"Only the owner ({who}) can change the priority of case #{case.id}." if who else
                         f"Claim case #{case.id} first to change its priority.")
    if priority == case.priority:
        return case
    before = case.priority
    targets.set_priority(session, case, priority, by=actor.name, reasons=list(case.priority_reasons or []),
                         rules=rules)
    audit(session, case, Action.PRIORITY, actor=actor.id, actor_name=actor.name, desk=actor.desk,
          before=before, after=priority)
    refresh_card(session, case, f"{actor.name} set the priority to {PRIORITY_NAMES[priority]} "
                                f"(was {PRIORITY_NAMES.get(before, before)}).")
    return case


def resolve(session: Session, case_id: int, actor: Actor, note: str, *, config: Config, show: bool = True,
            check_owner: bool = True) -> list[FollowupRow]:
    """Resolve and schedule the configured check-ins; the caller hands the rows to the scheduler.

    Resolve all (an incident) passes `check_owner=False` (it acts for the team) and `show=False` for members that
    never had a card of their own."""
    case = load_case(session, case_id, for_update=True)
    if case.status == Status.RESOLVED:
        raise ActionError(f"Case #{case.id} is already resolved.")
    if check_owner:
        _require_owner_or_free(case, actor, "resolve")
    now = utcnow()
    case.status, case.resolved_at, case.resolved_by = Status.RESOLVED, now, actor.id
    targets.stop_target(case)  # nothing is owed to a resolved case
    paging.stop(case)
    case.resolution_note = note.strip() or None
    case.resolution_s = (now - case.opened_at).total_seconds()
    case.cycle += 1
    case.escalated = False
    if not case.owner:
        case.owner, case.owner_name = actor.id, actor.name
    audit(session, case, Action.RESOLVE, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now,
          note=case.resolution_note, resolution_s=case.resolution_s)
    day = rollups.day_of(now)
    rollups.bump(session, day=day, metric=rollups.RESOLVED, dim1=case.platform, dim2=case.kind)
    rollups.bump(session, day=day, metric=rollups.RESOLUTION, dim1=rollups.bucket(case.resolution_s))
    rollups.bump(session, day=day, metric=rollups.PERSON_RESOLVE, dim1=actor.id, label=actor.name)
    if show:
        refresh_card(session, case, f"{actor.name} resolved the case.", quote=case.resolution_note)
    else:
        session.add(case)
    followups = []
    for position, followup in enumerate(config.followups):
        row = FollowupRow(case_id=case.id or 0, cycle=case.cycle, position=position, text=followup.text,
                          due_at=now + timedelta(seconds=followup.after))
        session.add(row)
        followups.append(row)
    session.flush()
    return followups


def reopen(session: Session, case_id: int, actor: Actor) -> CaseRow:
    case = load_case(session, case_id, for_update=True)
    if case.status != Status.RESOLVED:
        raise ActionError(f"Case #{case.id} is not resolved.")
    case.status = Status.CLAIMED if case.owner else Status.OPEN
    case.reopened += 1
    case.cycle += 1
    case.resolved_at = None
    cancel_followups(session, case.id)
    audit(session, case, Action.REOPEN, actor=actor.id, actor_name=actor.name, desk=actor.desk)
    refresh_card(session, case, f"{actor.name} reopened the case.")
    return case


def case_view(session: Session, case_id: int) -> CaseView:
    case = load_case(session, case_id)
    first = session.exec(
        select(ItemRow).where(ItemRow.case_id == case_id, ItemRow.direction == "in").order_by(col(ItemRow.id)).limit(1)
    ).one()
    count = session.exec(
        select(func.count()).select_from(ItemRow).where(ItemRow.case_id == case_id, ItemRow.direction == "in")
    ).one()
    last = session.exec(
        select(ReplyRow).where(ReplyRow.case_id == case_id, ReplyRow.kind != "statement")
        .order_by(col(ReplyRow.id).desc()).limit(1)
    ).first()
    last_reply = (
        ReplyView(id=last.id or 0, kind=last.kind, status=last.status, text=last.text,
                  author_name=last.author_name, url=last.url, error=last.error)
        if last else None
    )
    if case.status == Status.RESOLVED:
        actions: tuple[str, ...] = ("reopen",)
    elif case.owner:
        actions = ("claim", "release", "reply", "escalate", "resolve")
    else:
        actions = ("claim", "reply", "escalate", "resolve")
    if last_reply and last_reply.status == ReplyStatus.FAILED and case.status != Status.RESOLVED:
        actions += ("retry",)
    incident_label = None
    if case.incident_id is not None:
        actions += ("split",)
        incident = session.get(IncidentRow, case.incident_id)
        incident_label = incident.label if incident else None
    return CaseView(
        id=case.id or 0, platform=case.platform, kind=case.kind, status=case.status, channel=case.channel,
        customer_name=case.customer_name, customer_handle=case.customer_handle,
        customer_followers=case.customer_followers, text=first.text, url=first.url, rating=first.rating,
        opened_at=case.opened_at, messages=count, owner=case.owner, owner_name=case.owner_name,
        escalated=case.escalated, escalation_reason=case.escalation_reason, escalated_by=case.escalated_by,
        reopened=case.reopened, resolved_by=case.resolved_by, resolution_note=case.resolution_note,
        last_reply=last_reply, actions=actions, priority=case.priority,
        priority_reasons=tuple(case.priority_reasons or ()), priority_by=case.priority_by,
        due_at=as_utc(case.due_at) if case.due_at else None, sla_state=case.sla_state,
        page_level=case.page_level, acked_name=case.acked_name,
        awaiting_ack=bool(case.escalated and case.page_level and case.acked_at is None
                          and case.status != Status.RESOLVED),
        incident_id=case.incident_id, incident_label=incident_label,
    )


def reply_target(session: Session, case_id: int) -> ItemRow:
    """The customer's latest message: the one a reply answers."""
    item = session.exec(
        select(ItemRow).where(ItemRow.case_id == case_id, ItemRow.direction == "in")
        .order_by(col(ItemRow.id).desc()).limit(1)
    ).first()
    if item is None:
        raise ActionError(f"Case #{case_id} has no customer message to answer.")
    return item
