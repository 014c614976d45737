"""Storms: alike new cases grouped into one incident, shown as one card with the members in its thread.

Ingest hands every new case's first message to `Storms` (the detector of bot.core.storms, one per process);
`Grouping` turns its decisions into rows in the same transaction as the cases: the incident row (found by the
detector's key, or by its feature while another copy's incident for it is active), `cases.incident_id` for each
member, and the chat effects the change owes, coalesced: at most one pending incident-card update per desk,
scheduled no sooner than `storms.update_every` after the last one, and one pending members digest per desk.
A member gets no card of its own (a member whose card was posted before the storm was recognised keeps it, and
the card says where the case went); its response target stops (the incident is answered as a whole).

The detector keeps its state in memory; `Storms.warm` replays the new cases of the last window from the database
at start, so a restart finds the storm where it was. Several copies each see their share of the webhooks: a copy
that recognises a storm another copy already opened joins that incident (same feature, active within the window).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bot.config import Config, StormsConfig
from bot.core.model import Action, Item, ReplyStatus, Status, personalise
from bot.core.storms import TREND_MINUTES, Decision, StormDetector
from bot.core.view import IncidentView, MemberView
from bot.services.outbox import mark_done
from bot.services.records import Effect, event_values, outbox_values
from storage.db import transaction
from storage.tables import (
    CaseRow,
    ChatRefRow,
    CursorRow,
    EventRow,
    FollowupRow,
    IncidentRow,
    ItemRow,
    OutboxRow,
    ReplyRow,
    as_utc,
    utcnow,
)

log = logging.getLogger("socialops.incidents")

CASES = CaseRow.__table__  # type: ignore[attr-defined]
REPLIES = ReplyRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
EVENTS = EventRow.__table__  # type: ignore[attr-defined]
MAX_SAMPLES = 3
MEMBERS_PER_MESSAGE = {"slack": 40, "teams": 25}
"""Members per digest message in the incident's thread (Slack: 50 blocks a message; Teams: a card's 28 KB)."""


def reply_key(incident_id: int, case_id: int) -> str:
    """The idempotency key of a member's reply from Reply to all: one per member, ever."""
    return f"socialops-incident-{incident_id}-case-{case_id}"


def statement_key(incident_id: int, platform: str) -> str:
    return f"socialops-incident-{incident_id}-statement-{platform}"


def incident_of_key(key: str) -> int | None:
    """The incident a reply or statement of Reply to all belongs to (from its idempotency key)."""
    if not key.startswith("socialops-incident-"):
        return None
    number = key.removeprefix("socialops-incident-").partition("-")[0]
    return int(number) if number.isdigit() else None


class Storms:
    """This process's storm detector. Thread-safe: ingest runs in worker threads (webhooks and polling)."""

    def __init__(self, config: StormsConfig) -> None:
        self.config = config
        self._detector = StormDetector(config.threshold, timedelta(seconds=config.window), MAX_SAMPLES,
                                       keywords=config.keywords, ignore=config.ignored_features())
        self._lock = threading.Lock()

    def observe(self, case_id: int, text: str, platform: str, at: datetime) -> Decision:
        with self._lock:
            return self._detector.observe(str(case_id), text, platform, at)

    def label(self, key: str) -> str:
        with self._lock:
            info = self._detector.incident(key)
        return info.label if info is not None else key.partition(":")[2].rpartition("@")[0]

    def warm(self, engine: Engine, now: datetime | None = None) -> int:
        """Replay the new cases of the last window (their first message each), oldest first; returns how many."""
        now = now or utcnow()
        since = now - timedelta(seconds=self.config.window)
        with transaction(engine, write=False) as session:
            items = ItemRow.__table__  # type: ignore[attr-defined]
            rows = session.connection().execute(
                select(items.c.case_id, items.c.text, items.c.platform, CASES.c.opened_at)
                .join(CASES, CASES.c.id == items.c.case_id)
                .where(CASES.c.opened_at >= since, items.c.direction == "in")
                .order_by(items.c.id)).all()
        seen: set[int] = set()
        for row in rows:
            if row.case_id in seen:
                continue
            seen.add(row.case_id)
            self.observe(int(row.case_id), str(row.text), str(row.platform), as_utc(row.opened_at))
        return len(seen)


@dataclass(slots=True)
class _Joining:
    key: str
    feature: str
    cases: list[tuple[int, Item, str]] = field(default_factory=list)
    """(case id, first message, channel) of members new in this batch."""
    earlier: list[int] = field(default_factory=list)
    """Members opened before this batch (their cards were posted already)."""


class Grouping:
    """The storm decisions of one ingest batch, written at its end in the batch's transaction."""

    def __init__(self, storms: Storms, config: Config, now: datetime) -> None:
        self._storms = storms
        self._config = config
        self._now = now
        self._joining: dict[str, _Joining] = {}

    def observe(self, case_id: int, item: Item) -> bool:
        """A new case's first message: True when it became a member of an incident (it gets no card)."""
        decision = self._storms.observe(case_id, item.text, item.platform, self._now)
        if decision.kind == "none" or decision.incident is None:
            return False
        joining = self._joining.get(decision.incident)
        if joining is None:
            joining = self._joining[decision.incident] = _Joining(decision.incident,
                                                                  decision.incident.rpartition("@")[0])
        channel = self._config.channel_for(platform=item.platform, kind=item.kind)
        joining.cases.append((case_id, item, channel))
        if decision.kind == "opened":
            mine = {c for c, _, _ in joining.cases}
            joining.earlier += [int(m) for m in decision.members if int(m) not in mine]
        return True

    def write(self, session: Session, desks: tuple[str, ...], batch_cases: set[int]) -> None:
        if not self._joining:
            return
        connection = session.connection()
        for joining in self._joining.values():
            incident = self._incident(session, joining)
            if incident is None:
                continue
            _join(session, connection, incident, joining, self._now, self._config, desks, batch_cases)

    def _incident(self, session: Session, joining: _Joining) -> IncidentRow | None:
        """The incident of this key; else another copy's active incident of the same feature; else a new one."""
        incident = session.exec(sm_select(IncidentRow).where(col(IncidentRow.key) == joining.key)
                                .with_for_update()).first()
        if incident is None:
            window = timedelta(seconds=self._storms.config.window)
            incident = session.exec(sm_select(IncidentRow).where(
                col(IncidentRow.feature) == joining.feature, col(IncidentRow.status) == "open",
                col(IncidentRow.last_at) >= self._now - window).order_by(col(IncidentRow.id)).with_for_update()).first()
        if incident is not None:
            return incident
        members = joining.earlier + [case_id for case_id, _, _ in joining.cases]
        if not members:
            return None
        lead = session.get(CaseRow, members[0])
        if lead is None:  # the detector remembers a case a rolled-back batch opened
            lead_id, channel = joining.cases[0][0], joining.cases[0][2]
        else:
            lead_id, channel = int(lead.id or 0), lead.channel
        incident = IncidentRow(key=joining.key, feature=joining.feature, label=self._storms.label(joining.key)[:300],
                               lead_case_id=lead_id, channel=channel, first_at=self._now, last_at=self._now)
        session.add(incident)
        session.flush()
        log.info("storm: incident #%s (%s) opened with %d members", incident.id, incident.label, len(members))
        return incident


def _join(session: Session, connection: Connection, incident: IncidentRow, joining: _Joining, now: datetime,
          config: Config, desks: tuple[str, ...], batch_cases: set[int]) -> None:
    assert incident.id is not None
    incident_id = incident.id
    earlier = [c for c in joining.earlier if c not in batch_cases]
    new_ids = [case_id for case_id, _, _ in joining.cases]
    member_ids = sorted(set(earlier + [c for c in joining.earlier if c in batch_cases] + new_ids))
    rows = connection.execute(
        select(CASES.c.id, CASES.c.platform, CASES.c.customer_name, CASES.c.customer_handle, CASES.c.status,
               CASES.c.first_response_at, CASES.c.incident_id)
        .where(CASES.c.id.in_(member_ids))).all()
    fresh = [row for row in rows if row.incident_id is None]
    if not fresh:
        return
    fresh_ids = [int(row.id) for row in fresh]
    connection.execute(update(CASES).where(CASES.c.id == bindparam("member")).values(
        incident_id=incident_id, incident_seq=bindparam("seq"), warn_at=None, due_at=None, due_from=None,
        sla_state=""), [{"member": case_id, "seq": incident.members_seq + n}
                        for n, case_id in enumerate(fresh_ids, start=1)])
    incident.members_seq += len(fresh_ids)
    connection.execute(EVENTS.insert(), [event_values(case_id, Action.GROUPED, now, incident_id=incident_id,
                                                      label=incident.label) for case_id in fresh_ids])
    texts = {case_id: item.text for case_id, item, _ in joining.cases}
    platforms = Counter(incident.platforms or {})
    minutes = dict(incident.minutes or {})
    current = int(now.timestamp() // 60)
    for row in fresh:
        platforms[str(row.platform)] += 1
    minutes[str(current)] = minutes.get(str(current), 0) + len(fresh)
    samples = list(incident.samples or [])
    for case_id in fresh_ids:
        if len(samples) >= MAX_SAMPLES:
            break
        text = texts.get(case_id) or _first_text(connection, case_id)
        if text:
            samples.append(text)
    reopened = incident.status != "open"
    incident.count += len(fresh)
    incident.platforms = dict(platforms)
    incident.minutes = {k: v for k, v in minutes.items() if int(k) > current - TREND_MINUTES}
    incident.samples = samples
    incident.last_at = now
    if reopened:
        incident.status, incident.resolved_at = "open", None
    session.add(incident)
    for case_id in earlier:  # their cards were posted: they now say the case is part of the incident
        for desk in desks:
            session.add(OutboxRow(effect=Effect.CARD, desk=desk, case_id=case_id, payload={}))
    if incident.reply_text:
        _reply_to(session, connection, incident, [r for r in fresh if r.first_response_at is None
                                                  and r.status != Status.RESOLVED], config, now)
    owe_card(session, incident, desks, config, now,
             log=f"{len(fresh)} more alike messages after Resolve all: the incident is open again."
             if reopened else None)
    owe_members(session, incident, desks, now)


def _first_text(connection: Connection, case_id: int) -> str:
    items = ItemRow.__table__  # type: ignore[attr-defined]
    return str(connection.execute(select(items.c.text).where(
        items.c.case_id == case_id, items.c.direction == "in").order_by(items.c.id).limit(1)).scalar() or "")


def _reply_to(session: Session, connection: Connection, incident: IncidentRow, members: list[Any], config: Config,
              now: datetime) -> int:
    """Queue the personal reply of Reply to all for these members, paced per platform; returns how many.

    Each member's reply has the key `reply_key(incident, case)`: a member is answered once even if this runs
    again for them (the unique key refuses a second row)."""
    assert incident.id is not None and incident.reply_text is not None
    if not members:
        return 0
    storms = config.storms or StormsConfig()
    paced = dict(incident.paced or {})
    slots: dict[str, datetime] = {}
    replies: list[dict[str, Any]] = []
    due: list[tuple[int, datetime]] = []
    for row in sorted(members, key=lambda r: int(r.id)):
        case_id, platform = int(row.id), str(row.platform)
        slot = slots.get(platform)
        if slot is None:
            stored = paced.get(platform)
            slot = max(now, datetime.fromisoformat(stored)) if stored else now
        replies.append({
            "case_id": case_id, "kind": "incident",
            "text": personalise(incident.reply_text, name=str(row.customer_name or ""),
                                handle=str(row.customer_handle or "")),
            "author": incident.reply_by, "author_name": incident.reply_name, "status": ReplyStatus.QUEUED,
            "idempotency_key": reply_key(incident.id, case_id), "attempts": 0, "created_at": now, "options": None})
        due.append((case_id, slot))
        slots[platform] = slot + timedelta(seconds=60.0 / storms.pace(platform))
    ids = connection.execute(REPLIES.insert().returning(REPLIES.c.id, sort_by_parameter_order=True),
                             replies).scalars().all()
    connection.execute(OUTBOX.insert(), [
        row for (case_id, slot), reply_id in zip(due, ids, strict=True)
        for row in outbox_values(case_id, Effect.SEND, now, ("",), due=slot, reply_id=int(reply_id))])
    incident.paced = {**paced, **{platform: slot.isoformat() for platform, slot in slots.items()}}
    session.add(incident)
    return len(replies)


# ---- chat effects, coalesced ----------------------------------------------------------------------------------------

def card_queue(incident_id: int) -> int:
    """The outbox queue of an incident's card and its thread lines: `case_id` -2 × id (no case has it). Its own
    queue, so a card update waits neither behind the lead case's effects nor behind member lists, and two
    deliveries of one incident's card never run at once (which could post it twice)."""
    return -2 * incident_id


def members_queue(incident_id: int) -> int:
    """The outbox queue of an incident's member digests: `case_id` -2 × id - 1, so digests go out one after
    another, and neither wait behind a throttled card update nor hold one back."""
    return -2 * incident_id - 1


def _pending(session: Session, effect: str, queue: int, desk: str, now: datetime) -> int | None:
    """An undelivered row of this effect in this queue and desk that nobody is working on right now (it will show
    everything written before it is delivered)."""
    query = select(OUTBOX.c.id).where(
        OUTBOX.c.case_id == queue, OUTBOX.c.desk == desk, OUTBOX.c.effect == effect,
        OUTBOX.c.done.is_(False), or_(OUTBOX.c.locked_until.is_(None), OUTBOX.c.locked_until < now)).limit(1)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()  # the outbox skips it (SKIP LOCKED) until this transaction commits
    return session.connection().execute(query).scalar()


def owe_card(session: Session, incident: IncidentRow, desks: Iterable[str], config: Config | None, now: datetime, *,
             log: str | None = None, at_once: bool = False) -> None:
    """The incident card is to show the new state: one pending update per desk, no sooner than `update_every`
    after the last one (unless `at_once`: a person's action shows at once). `log` goes to its thread."""
    every = (config.storms if config is not None and config.storms else StormsConfig()).update_every
    due = now
    if not at_once and incident.card_at is not None:
        due = max(now, as_utc(incident.card_at) + timedelta(seconds=every))
    assert incident.id is not None
    incident.version += 1  # a delivery that read an older version owes one more update (`shown`)
    session.add(incident)
    for desk in desks:
        if log:
            session.add(OutboxRow(effect=Effect.THREAD, desk=desk, case_id=card_queue(incident.id),
                                  payload={"incident_id": incident.id, "text": log}, next_attempt_at=now))
        pending = _pending(session, Effect.INCIDENT, card_queue(incident.id), desk, now)
        if pending is None:
            session.add(OutboxRow(effect=Effect.INCIDENT, desk=desk, case_id=card_queue(incident.id),
                                  payload={"incident_id": incident.id}, next_attempt_at=due))
        elif at_once:  # a person's action shows at once, not at the throttled time
            session.connection().execute(update(OUTBOX).where(OUTBOX.c.id == pending).values(next_attempt_at=now))


def owe_members(session: Session, incident: IncidentRow, desks: Iterable[str], now: datetime) -> None:
    """New members are to be listed in the incident's thread (a digest per desk, the next ones after it)."""
    assert incident.id is not None
    for desk in desks:
        if _pending(session, Effect.MEMBERS, members_queue(incident.id), desk, now) is None:
            session.add(OutboxRow(effect=Effect.MEMBERS, desk=desk, case_id=members_queue(incident.id),
                                  payload={"incident_id": incident.id}, next_attempt_at=now))


def refresh(session: Session, incident_id: int, config: Config | None, desks: Iterable[str], now: datetime,
            log: str | None = None) -> None:
    """An incident changed outside ingest (a reply went out, a member split off): its card is to show it."""
    incident = session.get(IncidentRow, incident_id)
    if incident is not None:
        owe_card(session, incident, desks, config, now, log=log)


# ---- what the desks read --------------------------------------------------------------------------------------------

def load(session: Session, incident_id: int) -> IncidentRow:
    from bot.core.errors import UnknownCase

    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise UnknownCase(f"Incident #{incident_id} does not exist (any more). Nothing was changed.")
    return incident


def incident_view(session: Session, incident_id: int, config: Config, announcing: Iterable[str] = ()) -> IncidentView:
    incident = load(session, incident_id)
    connection = session.connection()
    counts: dict[str, int] = dict(connection.execute(
        select(REPLIES.c.status, func.count()).join(CASES, CASES.c.id == REPLIES.c.case_id)
        .where(CASES.c.incident_id == incident_id, REPLIES.c.kind == "incident").group_by(REPLIES.c.status)).all())
    statements = [(str((row.options or {}).get("platform", "")), str(row.status), row.url) for row in session.exec(
        sm_select(ReplyRow).where(col(ReplyRow.case_id) == incident.lead_case_id, col(ReplyRow.kind) == "statement",
                                  col(ReplyRow.idempotency_key).like(statement_key(incident_id, "") + "%"))
        .order_by(col(ReplyRow.id)))]
    current = int(utcnow().timestamp() // 60)
    minutes = incident.minutes or {}
    trend = [int(minutes.get(str(current - TREND_MINUTES + 1 + i), 0)) for i in range(TREND_MINUTES)]
    platforms = sorted(((p, n) for p, n in (incident.platforms or {}).items() if n > 0), key=lambda x: (-x[1], x[0]))
    actions: list[str] = []
    if incident.status == "open":
        if not incident.reply_text:
            actions.append("reply_all")
        actions.append("resolve_all")
    announce = tuple(p for p, _ in platforms if p in set(announcing))
    teams_channel = ""
    lead = session.get(CaseRow, incident.lead_case_id)
    if lead is not None:
        teams_channel = config.teams_channel_for(platform=lead.platform, kind=lead.kind)
    return IncidentView(
        id=incident_id, label=incident.label, status=incident.status, channel=incident.channel,
        teams_channel=teams_channel, lead_case_id=incident.lead_case_id, count=incident.count, platforms=platforms,
        per_minute=trend, first_at=as_utc(incident.first_at), last_at=as_utc(incident.last_at),
        samples=list(incident.samples or []), reply_text=incident.reply_text, statement=incident.statement,
        reply_name=incident.reply_name, replies_sent=int(counts.get(ReplyStatus.SENT, 0)),
        replies_failed=int(counts.get(ReplyStatus.FAILED, 0)), replies_queued=int(counts.get(ReplyStatus.QUEUED, 0)),
        statements=statements, resolved_name=incident.resolved_name,
        resolved_at=as_utc(incident.resolved_at) if incident.resolved_at else None, note=incident.note,
        actions=tuple(actions), can_announce=announce, version=incident.version)


def listed_cursor(incident_id: int, desk: str) -> str:
    return f"incident-members:{desk}:{incident_id}"


def members_after(session: Session, incident_id: int, desk: str, limit: int) -> list[MemberView]:
    """The next members not yet listed in the incident's thread on this desk (by case id)."""
    cursor = session.get(CursorRow, listed_cursor(incident_id, desk))
    after = int(cursor.value) if cursor else 0
    cases = list(session.exec(sm_select(CaseRow).where(
        col(CaseRow.incident_id) == incident_id, col(CaseRow.incident_seq) > after)
        .order_by(col(CaseRow.incident_seq)).limit(limit)))
    if not cases:
        return []
    ids = [c.id for c in cases]
    first: dict[int, ItemRow] = {}
    for item in session.exec(sm_select(ItemRow).where(
            col(ItemRow.case_id).in_(ids), col(ItemRow.direction) == "in").order_by(col(ItemRow.id))):
        first.setdefault(item.case_id, item)
    return [MemberView(case_id=c.id or 0, platform=c.platform, customer_name=c.customer_name,
                       customer_handle=c.customer_handle, text=first[c.id].text if c.id in first else "",
                       url=first[c.id].url if c.id in first else None, status=c.status, seq=c.incident_seq or 0)
            for c in cases]


def listed(session: Session, incident_id: int, desk: str, last_seq: int, now: datetime) -> None:
    """A digest was posted up to this member (`MemberView.seq`): the next one starts after it (and is owed if more
    are waiting)."""
    name = listed_cursor(incident_id, desk)
    cursor = session.get(CursorRow, name)
    if cursor is None:
        cursor = CursorRow(name=name, value="0")
    if int(cursor.value) < last_seq:
        cursor.value, cursor.updated_at = str(last_seq), now
        session.add(cursor)
    more = session.exec(sm_select(CaseRow.id).where(
        col(CaseRow.incident_id) == incident_id, col(CaseRow.incident_seq) > last_seq).limit(1)).first()
    incident = session.get(IncidentRow, incident_id)
    if more is not None and incident is not None:
        owe_members(session, incident, (desk,), now)


def has_card(session: Session, case_id: int) -> bool:
    return session.exec(sm_select(ChatRefRow.id).where(
        col(ChatRefRow.case_id) == case_id, col(ChatRefRow.purpose) == "card").limit(1)).first() is not None


# ---- check-ins of incident members -------------------------------------------------------------------------------

def due_checkins(session: Session, now: datetime, limit: int = 500) -> list[FollowupRow]:
    """Check-ins of members resolved with Resolve all that are due: sent automatically (nobody clicks thousands
    of prompts), not prompted in a thread."""
    return list(session.exec(sm_select(FollowupRow).join(
        CaseRow, col(CaseRow.id) == col(FollowupRow.case_id)).where(
        col(FollowupRow.status) == "scheduled", col(FollowupRow.due_at) <= now,
        col(CaseRow.incident_id).is_not(None)).order_by(col(FollowupRow.id)).limit(limit).with_for_update()))


def stats(session: Session, since: datetime, limit: int = 5) -> list[tuple[str, int, str]]:
    rows = session.exec(sm_select(IncidentRow).where(col(IncidentRow.first_at) >= since)
                        .order_by(col(IncidentRow.count).desc(), col(IncidentRow.id)).limit(limit))
    return [(row.label, row.count, row.status) for row in rows]


# ---- for the desks' outbox handlers -------------------------------------------------------------------------------

def covered_rows(session: Session, effect: str, incident_id: int, desk: str) -> list[int]:
    """A desk's undelivered rows of this effect for an incident, read before its view: one delivery covers them."""
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        return []
    queue = members_queue(incident_id) if effect == Effect.MEMBERS else card_queue(incident_id)
    return [int(i) for i in session.connection().execute(select(OUTBOX.c.id).where(
        OUTBOX.c.case_id == queue, OUTBOX.c.desk == desk, OUTBOX.c.effect == effect,
        OUTBOX.c.done.is_(False))).scalars()]


def shown(session: Session, incident_id: int, desk: str, version: int, covered: list[int], now: datetime,
          config: Config | None = None) -> None:
    """A desk posted or updated the incident card, showing `version`: the rows it covered are done, the next update
    waits `update_every`, and if the incident changed after the view was read (a change that found one of the
    covered rows pending and so wrote none of its own), one more update is owed at once."""
    # Locks in the order ingest takes them (the incident, then its outbox rows), or PostgreSQL finds a deadlock.
    incident = session.get(IncidentRow, incident_id, with_for_update=True)
    mark_done(covered)(session)
    if incident is None:
        return
    incident.card_at = now
    session.add(incident)
    session.flush()
    if incident.version > version:
        owe_card(session, incident, (desk,), config, now)


def is_member_without_card(session: Session, case_id: int) -> bool:
    """A storm member that never had a card of its own: its history lives in the incident's thread."""
    case = session.get(CaseRow, case_id)
    return case is not None and case.incident_id is not None and not has_card(session, case_id)
