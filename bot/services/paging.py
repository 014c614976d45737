"""The escalation policy: who is paged when a case is escalated, and who next while nobody acknowledges.

Level 1 (usually `after: 0s`) pages at once; each later level is paged `after` its delay from the escalation
while nobody has acknowledged; a level with `repeat_every` reminds until the next level is due. Acknowledge
stops the climb and records who and when; Resolve stops everything. The state lives on the case (`page_level`,
`page_next_at`): the periodic sweep (bot.services.targets) acts on what fell due, re-reading the case under a
row lock, so a restart or another copy carries on and nothing is paged twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.config import Config, EscalationLevel
from bot.core.errors import ActionError
from bot.core.model import Action, Status
from bot.services import rollups
from bot.services.records import Effect, audit, enqueue, load_case, refresh_card
from storage.db import is_postgres
from storage.tables import CaseRow, as_utc


def who(level: EscalationLevel, config: Config, now: datetime) -> list[str]:
    """The ids a level pages: its list, or whoever is on call now (the first rotation; else the desks' oncall)."""
    if level.notify != "oncall":
        return list(level.notify)
    if config.oncall is not None and config.oncall.rotations:
        person = config.oncall.schedule().primary(now)
        if person:
            return [str(person)]
    return [target for target in ((config.slack.oncall if config.slack else None),
                                  (config.teams.oncall if config.teams else None)) if target]


def start(session: Session, case: CaseRow, config: Config, now: datetime) -> None:
    """A new escalation: the climb starts from level 1 (paged at once when its delay is 0)."""
    if not config.escalation:
        return
    case.page_level = 0
    case.acked_by = case.acked_name = case.acked_at = None
    case.page_next_at = now + timedelta(seconds=config.escalation[0].after)
    if config.escalation[0].after == 0:
        _step(session, case, config, now)


def stop(case: CaseRow) -> None:
    case.page_next_at = None


def _step(session: Session, case: CaseRow, config: Config, now: datetime) -> None:
    """Page the next level when it is due, else remind the current one; then plan the next step."""
    levels = config.escalation
    assert case.escalated_at is not None
    escalated_at = as_utc(case.escalated_at)
    if case.page_level < len(levels) and escalated_at + timedelta(seconds=levels[case.page_level].after) <= now:
        case.page_level += 1
        _page(session, case, levels[case.page_level - 1], config, now, reminder=False)
    elif case.page_level >= 1:
        _page(session, case, levels[case.page_level - 1], config, now, reminder=True)
    upcoming: list[datetime] = []
    if case.page_level < len(levels):
        upcoming.append(escalated_at + timedelta(seconds=levels[case.page_level].after))
    current = levels[case.page_level - 1] if case.page_level >= 1 else None
    if current is not None and current.repeat_every:
        upcoming.append(now + timedelta(seconds=current.repeat_every))
    case.page_next_at = min(upcoming) if upcoming else None
    session.add(case)


def _page(session: Session, case: CaseRow, level: EscalationLevel, config: Config, now: datetime, *,
          reminder: bool) -> None:
    targets = who(level, config, now)
    audit(session, case, Action.PAGE, at=now, level=case.page_level, notify=targets, reminder=reminder)
    if not reminder:  # the card shows the level; reminders change nothing on it
        refresh_card(session, case, f"🚨 Escalation level {case.page_level} paged"
                                    f"{': ' + ', '.join(targets) if targets else ' (nobody is on call)'}.")
    enqueue(session, Effect.PAGE, case.id, level=case.page_level, notify=targets, reminder=reminder,
            minutes=max(0, int((now - as_utc(case.escalated_at or now)).total_seconds() // 60)))


def sweep(session: Session, config: Config, now: datetime, limit: int = 200) -> list[int]:
    """Escalations whose next step is due (in the caller's transaction, rows locked by the caller's query)."""
    if not config.escalation:
        return []
    query = select(CaseRow).where(col(CaseRow.page_next_at) <= now, col(CaseRow.acked_at).is_(None),
                                  col(CaseRow.escalated).is_(True), col(CaseRow.status) != Status.RESOLVED,
                                  ).order_by(col(CaseRow.page_next_at)).limit(limit)
    if is_postgres(session.get_bind().engine):
        query = query.with_for_update(skip_locked=True)
    stepped = []
    for case in session.exec(query).all():
        _step(session, case, config, now)
        stepped.append(case.id or 0)
    return stepped


def acknowledge(session: Session, case_id: int, actor_id: str, actor_name: str, desk: str, now: datetime) -> CaseRow:
    """Someone takes the escalation: the climb stops; who and when are recorded."""
    case = load_case(session, case_id, for_update=True)
    if not case.escalated or case.status == Status.RESOLVED:
        raise ActionError(f"Case #{case.id} is not escalated: nothing to acknowledge.")
    if case.acked_at is not None:
        raise ActionError(f"{case.acked_name or case.acked_by} already acknowledged case #{case.id}.")
    case.acked_by, case.acked_name, case.acked_at = actor_id, actor_name, now
    stop(case)
    seconds = (now - as_utc(case.escalated_at or now)).total_seconds()
    audit(session, case, Action.ACKNOWLEDGE, actor=actor_id, actor_name=actor_name, desk=desk, at=now,
          seconds=seconds, level=case.page_level)
    rollups.bump(session, day=rollups.day_of(now), metric=rollups.ACK, dim1=rollups.bucket(seconds))
    refresh_card(session, case, f"✋ {actor_name} acknowledged the escalation.")
    return case


HANDOFF_CURSOR = "oncall:announced"
"""The moment up to which hand-offs are announced (a cursor row: one announcement per hand-off across copies)."""


def announce_handoffs(session: Session, config: Config, now: datetime) -> int:
    """Hand-offs since the last sweep: one HANDOFF row each. The first sweep after start only sets the mark (a
    restart never repeats old announcements; one missed while nothing ran is skipped, not announced late)."""
    if config.oncall is None or not config.oncall.rotations:
        return 0
    from storage.tables import CursorRow

    mark = session.get(CursorRow, HANDOFF_CURSOR, with_for_update=True)
    if mark is None:
        session.add(CursorRow(name=HANDOFF_CURSOR, value=now.isoformat(), updated_at=now))
        return 0
    since = datetime.fromisoformat(mark.value)
    if since >= now:
        return 0
    if now - since > timedelta(hours=1):
        since = now - timedelta(hours=1)
    shifts = config.oncall.schedule().changes(since, now)
    for shift in shifts:
        enqueue(session, Effect.HANDOFF, None, rotation=shift.rotation, who=shift.who,
                until=shift.end.isoformat(), overridden=shift.overridden)
    mark.value, mark.updated_at = now.isoformat(), now
    session.add(mark)
    return len(shifts)


USERGROUP_CURSOR = "oncall:usergroup"


def sync_usergroup(session: Session, config: Config, now: datetime) -> bool:
    """Whoever is on call now (every rotation) becomes the members of `oncall.usergroup`, when that changed."""
    if config.oncall is None or not config.oncall.usergroup or not config.oncall.rotations or config.slack is None:
        return False
    from storage.tables import CursorRow

    members = sorted({shift.who for shift in config.oncall.schedule().now(now)})
    if not members:
        return False
    value = f"{config.oncall.usergroup}:{','.join(members)}"
    mark = session.get(CursorRow, USERGROUP_CURSOR, with_for_update=True)
    if mark is not None and mark.value == value:
        return False
    if mark is None:
        mark = CursorRow(name=USERGROUP_CURSOR, value=value, updated_at=now)
    mark.value, mark.updated_at = value, now
    session.add(mark)
    enqueue(session, Effect.USERGROUP, None, desk="slack", usergroup=config.oncall.usergroup, users=members)
    return True
