"""Follow-up check-ins after a case is resolved.

APScheduler keeps one date job per check-in in its SQL job store, so they survive restarts. A job
carries only the follow-up id and the case's cycle; when it fires it reloads the rows and does
nothing if the case moved on (reopened, resolved again). Jobs are added after the commit that
created the rows; `reconcile` re-adds any that a crash in between lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.errors import ActionError
from bot.core.model import Action, Status, personalise
from bot.services.cases import Actor, _queue_message
from bot.services.records import Effect, audit, enqueue, load_case
from storage.db import transaction
from storage.tables import CaseRow, FollowupRow, ReplyRow

log = logging.getLogger("socialops.followups")

JOB_FUNC = "bot.services.followups:run_due_job"


class _Runtime:
    engine: Engine | None = None
    notify: Callable[[], None] = staticmethod(lambda: None)


runtime = _Runtime()


def job_id(followup_id: int) -> str:
    return f"followup-{followup_id}"


def due(session: Session, followup_id: int, cycle: int) -> bool:
    """The check-in's time has come: prompt the team, unless the case moved on."""
    followup = session.get(FollowupRow, followup_id, with_for_update=True)
    if followup is None or followup.status != "scheduled":
        return False
    case = load_case(session, followup.case_id, for_update=True)
    if case.cycle != cycle or followup.cycle != cycle or case.status != Status.RESOLVED:
        followup.status = "cancelled"
        session.add(followup)
        return False
    followup.status = "prompted"
    session.add(followup)
    audit(session, case, Action.FOLLOWUP_DUE, followup_id=followup.id)
    enqueue(session, Effect.PROMPT, case.id, followup_id=followup.id)
    return True


def run_due_job(followup_id: int, cycle: int) -> None:
    """APScheduler entry point (runs in the scheduler's thread pool)."""
    engine = runtime.engine
    if engine is None:
        log.error("follow-up %s fired before the runtime was installed", followup_id)
        return
    with transaction(engine) as session:
        changed = due(session, followup_id, cycle)
    if changed:
        runtime.notify()


def _prompted(session: Session, followup_id: int) -> FollowupRow:
    followup = session.get(FollowupRow, followup_id, with_for_update=True)
    if followup is None:
        raise ActionError("That check-in does not exist (any more). Nothing was changed.")
    if followup.status != "prompted":
        raise ActionError(f"That check-in is already {followup.status}.")
    return followup


def send_checkin(session: Session, followup_id: int, actor: Actor) -> FollowupRow:
    followup = _prompted(session, followup_id)
    case = load_case(session, followup.case_id, for_update=True)
    if case.status != Status.RESOLVED or case.cycle != followup.cycle:
        followup.status = "cancelled"
        session.add(followup)
        enqueue(session, Effect.PROMPT, case.id, followup_id=followup.id)
        raise ActionError("The case was reopened, so this check-in is no longer needed.")
    message = queue_checkin(session, followup, case, actor)
    audit(session, case, Action.FOLLOWUP_SENT, actor=actor.id, actor_name=actor.name, desk=actor.desk,
          followup_id=followup.id, reply_id=message.id)
    enqueue(session, Effect.PROMPT, case.id, followup_id=followup.id)
    return followup


def queue_checkin(session: Session, followup: FollowupRow, case: CaseRow, actor: Actor) -> ReplyRow:
    """The check-in's message to the customer, queued, and the follow-up marked sent by `actor`."""
    text = personalise(followup.text, name=case.customer_name, handle=case.customer_handle)
    message = _queue_message(session, case, text, actor, kind="checkin")
    followup.status, followup.acted_by, followup.reply_id = "sent", actor.name, message.id
    session.add(followup)
    return message


def skip(session: Session, followup_id: int, actor: Actor) -> FollowupRow:
    followup = _prompted(session, followup_id)
    case = load_case(session, followup.case_id)
    followup.status, followup.acted_by = "skipped", actor.name
    session.add(followup)
    audit(session, case, Action.FOLLOWUP_SKIPPED, actor=actor.id, actor_name=actor.name, desk=actor.desk,
          followup_id=followup.id)
    enqueue(session, Effect.PROMPT, case.id, followup_id=followup.id)
    return followup


def scheduled(engine: Engine) -> list[FollowupRow]:
    """Check-ins waiting for their job (those of incident members are sent by the incident sweep instead)."""
    with transaction(engine, write=False) as session:
        return list(session.exec(select(FollowupRow).join(CaseRow, col(CaseRow.id) == col(FollowupRow.case_id))
                                 .where(FollowupRow.status == "scheduled", col(CaseRow.incident_id).is_(None))
                                 .order_by(col(FollowupRow.due_at))))


def _wake() -> None:
    """Nothing: the scheduler re-reads the shared job store each time it wakes."""


class FollowupScheduler:
    """APScheduler with a persistent SQL job store; jobs are plain references plus (id, cycle).

    Several copies share the job store. APScheduler only looks at the store when a job it knows of is
    due, so a copy also wakes every `look_every` seconds (an in-memory job): check-ins scheduled by a
    copy that stopped are then run by another. A check-in fired by two copies acts once (`due`)."""

    def __init__(self, *, engine: Engine, look_every: float = 15.0) -> None:
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs"),
                       "local": MemoryJobStore()},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._engine = engine
        self._look_every = look_every

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(_wake, trigger="interval", seconds=self._look_every, jobstore="local",
                                id="look-at-the-shared-job-store", replace_existing=True)
        self.reconcile()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def schedule(self, followups: list[FollowupRow]) -> None:
        for followup in followups:
            assert followup.id is not None
            self._scheduler.add_job(
                JOB_FUNC, trigger="date", run_date=followup.due_at.replace(tzinfo=UTC),
                args=[followup.id, followup.cycle], id=job_id(followup.id), replace_existing=True,
            )

    def reconcile(self) -> None:
        """Re-add jobs for check-ins whose rows were committed but whose job was not (a crash in between)."""
        missing = [f for f in scheduled(self._engine)
                   if f.id is not None and self._scheduler.get_job(job_id(f.id)) is None]
        if missing:
            log.info("re-scheduling %d follow-up(s) missing from the job store", len(missing))
            self.schedule(missing)
