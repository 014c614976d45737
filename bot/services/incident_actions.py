"""What people do with an incident card: Reply to all, Split a member off, Resolve all.

Each runs in the caller's single transaction, like the case use cases; the desks call them through Services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bot.config import Config
from bot.core.errors import ActionError, InvalidInput
from bot.core.model import Action, Status, personalise
from bot.core.ports import Announces, Sender
from bot.services import cases, followups, incidents, targets
from bot.services.cases import Actor
from bot.services.records import Effect, audit, desks_for, enqueue, load_case, refresh_card
from storage.tables import CaseRow, ChatRefRow, IncidentRow, ReplyRow, as_utc

CASES = CaseRow.__table__  # type: ignore[attr-defined]
REFS = ChatRefRow.__table__  # type: ignore[attr-defined]
MAX_TEMPLATE = 2000


def announcers(senders: Mapping[str, Sender]) -> list[str]:
    """Platforms whose sender can post a public statement."""
    return [platform for platform, sender in senders.items() if isinstance(sender, Announces)]


def reply_to_all(session: Session, incident_id: int, actor: Actor, template: str, statement: str, *,
                 config: Config, senders: Mapping[str, Sender], now: datetime) -> int:
    """One public statement per platform that allows one (optional) and a personal reply to every member not
    answered yet; members who join later get the same reply. Returns how many replies were queued."""
    template, statement = template.strip(), statement.strip()
    if not template:
        raise InvalidInput("Write the reply each member gets ({first_name} is filled in).")
    if len(template) > MAX_TEMPLATE:
        raise InvalidInput(f"The reply is {len(template)} characters; keep it under {MAX_TEMPLATE}.")
    incident = _open_incident(session, incident_id)
    if incident.reply_text:
        raise ActionError(f"{incident.reply_name or 'Someone'} already replied to all members of incident "
                          f"#{incident_id}; members who join get that reply too.")
    members = session.connection().execute(
        select(CASES.c.id, CASES.c.platform, CASES.c.customer_name, CASES.c.customer_handle)
        .where(CASES.c.incident_id == incident_id, CASES.c.first_response_at.is_(None),
               CASES.c.status != Status.RESOLVED)).all()
    problems = _too_long(template, members, senders)
    if problems:
        raise InvalidInput(problems)
    incident.reply_text, incident.statement = template, statement or None
    incident.reply_by, incident.reply_name, incident.reply_at = actor.id, actor.name, now
    queued = incidents._reply_to(session, session.connection(), incident, list(members), config, now)
    platforms = sorted({str(m.platform) for m in members} | set((incident.platforms or {}).keys()))
    announced: list[str] = []
    if statement:
        for platform in platforms:
            sender = senders.get(platform)
            if not isinstance(sender, Announces) or not (incident.platforms or {}).get(platform):
                continue
            if len(statement) > sender.announce_limit:
                raise InvalidInput(f"The statement is {len(statement)} characters; "
                                   f"{platform} allows {sender.announce_limit}.")
            row = ReplyRow(case_id=incident.lead_case_id, kind="statement", text=statement, author=actor.id,
                           author_name=actor.name, idempotency_key=incidents.statement_key(incident_id, platform),
                           options={"platform": platform}, created_at=now)
            session.add(row)
            session.flush()
            enqueue(session, Effect.SEND, incident.lead_case_id, reply_id=row.id)
            announced.append(platform)
    session.add(incident)
    lead = load_case(session, incident.lead_case_id)
    audit(session, lead, Action.REPLY_ALL, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now,
          incident_id=incident_id, replies=queued, statements=announced)
    said = f" and a public statement on {', '.join(announced)}" if announced else ""
    incidents.owe_card(session, incident, desks_for(session), config, now, at_once=True,
                       log=f"{actor.name} replied to all: {queued} personal replies queued{said}.")
    return queued


def _open_incident(session: Session, incident_id: int) -> IncidentRow:
    """The incident, locked, if it exists and is open; else the refusal the person sees."""
    incident = session.exec(sm_select(IncidentRow).where(col(IncidentRow.id) == incident_id)
                            .with_for_update()).first()
    if incident is None:
        raise ActionError(f"Incident #{incident_id} does not exist (any more). Nothing was changed.")
    if incident.status != "open":
        raise ActionError(f"Incident #{incident_id} is already resolved.")
    return incident


def _too_long(template: str, members: Iterable[object], senders: Mapping[str, Sender]) -> str | None:
    """The longest personalised reply must fit each platform (names differ: {first_name} is counted per member)."""
    longest: dict[str, int] = {}
    for member in members:
        platform = str(getattr(member, "platform"))  # noqa: B009 - a Row's attribute
        text = personalise(template, name=str(getattr(member, "customer_name") or ""),  # noqa: B009
                                     handle=str(getattr(member, "customer_handle") or ""))  # noqa: B009
        longest[platform] = max(longest.get(platform, 0), len(text))
    for platform, length in sorted(longest.items()):
        sender = senders.get(platform)
        if sender is not None and length > sender.max_length:
            return f"With the longest member's name the reply is {length} characters; {platform} allows " \
                   f"{sender.max_length}."
    return None


def split(session: Session, case_id: int, actor: Actor, *, config: Config, now: datetime) -> CaseRow:
    """A member becomes its own case again: its card is posted, its response target runs from when it opened."""
    case = load_case(session, case_id, for_update=True)
    if case.incident_id is None:
        raise ActionError(f"Case #{case_id} is not part of an incident (any more).")
    incident = session.exec(sm_select(IncidentRow).where(col(IncidentRow.id) == case.incident_id)
                            .with_for_update()).first()
    case.incident_id = None
    if case.first_response_at is None and case.status != Status.RESOLVED:
        rules = targets.policy(config)
        start = as_utc(case.opened_at)
        case.due_from = start
        case.warn_at, case.due_at = rules.deadlines(start, case.priority)
    audit(session, case, Action.SPLIT, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now,
          incident_id=incident.id if incident else None)
    refresh_card(session, case, f"{actor.name} split this case off incident #{incident.id if incident else '?'}.")
    if incident is not None:
        incident.count = max(0, incident.count - 1)
        platforms = dict(incident.platforms or {})
        platforms[case.platform] = max(0, platforms.get(case.platform, 0) - 1)
        incident.platforms = platforms
        session.add(incident)
        incidents.owe_card(session, incident, desks_for(session), config, now, at_once=True,
                           log=f"{actor.name} split case #{case_id} ({case.customer_name or case.customer_handle}) "
                               "off the incident: it has its own card now.")
    return case


def resolve_all(session: Session, incident_id: int, actor: Actor, note: str, *, config: Config,
                senders: Mapping[str, Sender], now: datetime) -> int:
    """Resolve every member (with the configured check-ins each, sent automatically when due by
    `send_due_checkins`, never prompted one by one) and the incident. Returns how many members were resolved."""
    # The members first, then the incident: the order ingest locks them in (else PostgreSQL may find a deadlock).
    ids = [int(i) for i in session.connection().execute(select(CASES.c.id).where(
        CASES.c.incident_id == incident_id, CASES.c.status != Status.RESOLVED).order_by(CASES.c.id)
        .with_for_update()).scalars()]
    incident = _open_incident(session, incident_id)
    carded = {int(i) for i in session.connection().execute(
        select(REFS.c.case_id).where(REFS.c.purpose == "card", REFS.c.case_id.in_(ids))).scalars()} if ids else set()
    for case_id in ids:
        case = load_case(session, case_id, for_update=True)
        sender = senders.get(case.platform)
        case_config = config
        if sender is not None and not getattr(sender, "checkins", True):
            case_config = config.model_copy(update={"followups": []})
        cases.resolve(session, case_id, actor, note, config=case_config, show=case_id in carded, check_owner=False)
    incident.status, incident.resolved_by, incident.resolved_name = "resolved", actor.id, actor.name
    incident.resolved_at, incident.note = now, note.strip() or None
    session.add(incident)
    lead = load_case(session, incident.lead_case_id)
    audit(session, lead, Action.RESOLVE_ALL, actor=actor.id, actor_name=actor.name, desk=actor.desk, at=now,
          incident_id=incident_id, resolved=len(ids))
    checkins = f" Check-ins: {len(config.followups)} per member, sent when due." if config.followups else ""
    incidents.owe_card(session, incident, desks_for(session), config, now, at_once=True,
                       log=f"{actor.name} resolved all {len(ids)} open members.{checkins}")
    return len(ids)


def send_due_checkins(session: Session, now: datetime) -> int:
    """Check-ins of members resolved together are sent when due, without a prompt each."""
    sent = 0
    for followup in incidents.due_checkins(session, now):
        case = load_case(session, followup.case_id, for_update=True)
        if case.cycle != followup.cycle or case.status != Status.RESOLVED:
            followup.status = "cancelled"
            session.add(followup)
            continue
        message = followups.queue_checkin(session, followup, case,
                                          Actor(id=case.resolved_by or "", name="Resolve all", desk=""))
        audit(session, case, Action.FOLLOWUP_SENT, at=now, followup_id=followup.id, reply_id=message.id,
              automatic=True)
        sent += 1
    return sent
