"""Response-time targets: the priority a case gets, when its reply is due (in business time), and the sweep that
marks cases due soon (80% of the target gone) or missed (100%: escalated automatically).

A target runs from the moment a case opens, or the customer writes again after being answered, until a reply is
sent (met or missed) or the case is resolved. Deadlines are stored on the case (`warn_at`, `due_at`), so they
survive restarts and every copy sees them; the sweep changes each case once (row locks), so the card changes at
the two thresholds only, never every minute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session, and_, col, or_, select

from bot.config import Config
from bot.core.hours import BusinessHours, around_the_clock
from bot.core.model import Action, Status
from bot.core.priority import NAMES, Rules, Signals, Triage, rank
from bot.services import paging, rollups
from bot.services.records import audit, refresh_card
from storage.db import is_postgres, transaction
from storage.tables import CaseRow, as_utc, utcnow

log = logging.getLogger("socialops.targets")

WARN_AT = 0.8
"""The share of a target gone when the card says the reply is due soon."""
SYSTEM = "socialops"


class Hours(Protocol):
    def add(self, start: datetime, seconds: float) -> datetime: ...

    def is_open(self, t: datetime) -> bool: ...

    def next_open(self, t: datetime) -> datetime: ...


@dataclass(frozen=True)
class Policy:
    rules: Rules
    hours: Hours
    config: Config

    def triage(self, signals: Signals) -> Triage:
        return self.rules.triage(signals)

    def target_s(self, priority: str) -> float:
        return self.config.targets.for_priority(priority)

    def deadlines(self, start: datetime, priority: str) -> tuple[datetime, datetime]:
        """(warn_at, due_at) for a target of this priority starting at `start`."""
        target = self.target_s(priority)
        return self.hours.add(start, target * WARN_AT), self.hours.add(start, target)


_POLICIES: dict[int, tuple[Config, Policy]] = {}


def policy(config: Config) -> Policy:
    """The triage rules and business hours of a config, built once."""
    cached = _POLICIES.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    hours: Hours = around_the_clock()
    if config.business_hours is not None:
        hours = BusinessHours.from_config(config.business_hours.timezone, config.business_hours.weekly,
                                          config.business_hours.holidays)
    built = Policy(Rules(vip_handles=config.vip.handles, vip_followers=config.vip.followers_at_least,
                         complaint_words=config.complaint_words), hours, config)
    _POLICIES[id(config)] = (config, built)
    return built


def start_target(case: CaseRow, now: datetime, rules: Policy) -> None:
    """A reply is owed from now (the case opened, or the customer wrote again after an answer)."""
    case.due_from = now
    case.warn_at, case.due_at = rules.deadlines(now, case.priority)
    case.sla_state = ""


def stop_target(case: CaseRow) -> None:
    case.due_from = case.warn_at = case.due_at = None
    case.sla_state = ""


def answered(session: Session, case: CaseRow, now: datetime) -> bool | None:
    """A reply went out: the target running now is met (True) or missed (False); None when none was running."""
    if case.due_at is None:
        return None
    met = now <= as_utc(case.due_at)
    if met or case.sla_state != "breached":  # a breach the sweep saw is counted already
        _count(session, case, met, now)
    stop_target(case)
    return met


def _count(session: Session, case: CaseRow, met: bool, now: datetime) -> None:
    """One audit event and one rollup per target met or missed (the stats read the rollup)."""
    assert case.due_at is not None
    audit(session, case, Action.TARGET_MET if met else Action.TARGET_MISSED, at=now, priority=case.priority,
          due_at=as_utc(case.due_at).isoformat())
    rollups.bump(session, day=rollups.day_of(now), metric=rollups.TARGET_MET if met else rollups.TARGET_MISSED,
                 dim1=case.priority)


def set_priority(session: Session, case: CaseRow, priority: str, *, by: str | None, reasons: list[str],
                 rules: Policy) -> None:
    """A new priority: the target running now is counted again from its start with the new length."""
    case.priority, case.priority_reasons, case.priority_by = priority, reasons, by
    if case.due_from is not None and case.due_at is not None:
        case.warn_at, case.due_at = rules.deadlines(as_utc(case.due_from), priority)
        case.sla_state = ""


def raise_priority(case: CaseRow, triage: Triage, rules: Policy) -> bool:
    """A new message may make a case more urgent (never less, and never over a person's choice)."""
    if case.priority_by or rank(triage.priority) >= rank(case.priority):
        return False
    reasons = list(dict.fromkeys([*(case.priority_reasons or []), *triage.reasons]))
    case.priority, case.priority_reasons = triage.priority, reasons
    if case.due_from is not None and case.due_at is not None:
        case.warn_at, case.due_at = rules.deadlines(as_utc(case.due_from), triage.priority)
    return True


def describe_target(priority: str, seconds: float, business: bool) -> str:
    return f"{_length(seconds)} {'business-hours ' if business else ''}target for {NAMES.get(priority, priority)} " \
           "priority"


def _length(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Swept:
    warned: list[int]
    breached: list[int]
    paged: list[int]


def sweep(engine: Engine, config: Config, *, now: datetime | None = None, limit: int = 200) -> Swept:
    """Mark cases whose reply is due soon or overdue; escalate the overdue ones (once)."""
    from bot.services import cases as use_cases  # escalate lives there

    now = now or utcnow()
    rules = policy(config)
    warned: list[int] = []
    breached: list[int] = []
    query = select(CaseRow).where(
        col(CaseRow.status) != Status.RESOLVED,
        or_(and_(col(CaseRow.sla_state) == "", col(CaseRow.warn_at) <= now),
            and_(col(CaseRow.sla_state).in_(("", "warning")), col(CaseRow.due_at) <= now)),
    ).order_by(col(CaseRow.due_at)).limit(limit)
    with transaction(engine) as session:
        if is_postgres(engine):
            query = query.with_for_update(skip_locked=True)
        for case in session.exec(query).all():
            assert case.id is not None
            if case.due_at is None or case.warn_at is None:
                continue
            target = rules.target_s(case.priority)
            what = describe_target(case.priority, target, config.business_hours is not None)
            if as_utc(case.due_at) <= now:
                case.sla_state = "breached"
                breached.append(case.id)
                _count(session, case, False, now)
                session.add(case)
                if case.escalated:
                    refresh_card(session, case, f"⏰ No reply yet: the {what} is missed.")
                else:
                    actor = use_cases.Actor(id=SYSTEM, name="SocialOps", desk="system")
                    use_cases.escalate(session, case.id, actor, f"No reply yet: the {what} is missed.",
                                       config=config)
            else:
                case.sla_state = "warning"
                warned.append(case.id)
                session.add(case)
                refresh_card(session, case, f"⏳ Reply due soon: 80% of the {what} is gone.")
        paged = paging.sweep(session, config, now)
        paging.announce_handoffs(session, config, now)
        paging.sync_usergroup(session, config, now)
    if warned or breached or paged:
        log.info("targets: %d due soon, %d missed; escalations: %d paged", len(warned), len(breached), len(paged))
    return Swept(warned, breached, paged)
