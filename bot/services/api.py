"""The async face of the use cases that desks and sources call.

Each call runs one transaction in a worker thread, then wakes the outbox worker and, after the
commit, hands new follow-ups to the scheduler (never before: a job must not fire for rows that might
roll back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.config import Config
from bot.core.errors import InvalidInput
from bot.core.model import Item
from bot.core.ports import ReplyChecks, ReplyRule, Sender
from bot.core.view import CaseView, IncidentView, MemberView, StatsView
from bot.services import cases, followups, incident_actions, incidents, paging, stats, targets
from bot.services.cases import Actor
from bot.services.incidents import Storms
from bot.services.ingest import Accepted, IngestBatcher, ingest, load_cursor
from bot.services.records import Effect, enqueue, load_case
from storage.db import transaction
from storage.tables import ChatRefRow, FollowupRow, utcnow

T = TypeVar("T")
log = logging.getLogger("socialops.services")


class Services:
    def __init__(self, *, engine: Engine, config: Config, senders: Mapping[str, Sender],
                 notify: Callable[[], None] = lambda: None,
                 scheduler: followups.FollowupScheduler | None = None) -> None:
        self.engine = engine
        self.config = config
        self.senders = senders
        self._notify = notify
        self.scheduler = scheduler
        self.storms = Storms(config.storms) if config.storms is not None else None
        self._batcher = IngestBatcher(lambda items: ingest(engine, items, config=config, storms=self.storms))

    def set_notify(self, notify: Callable[[], None]) -> None:
        self._notify = notify

    async def _run(self, use_case: Callable[[Session], T]) -> T:
        def work() -> T:
            with transaction(self.engine) as session:
                return use_case(session)

        result = await asyncio.to_thread(work)
        self._notify()
        return result

    async def sweep_targets(self) -> targets.Swept:
        """Cases whose reply is due soon or overdue: the card says so; overdue ones are escalated."""
        swept = await asyncio.to_thread(targets.sweep, self.engine, self.config)
        if swept.warned or swept.breached or swept.paged:
            self._notify()
        return swept

    async def watch_targets(self, every: float, stopping: asyncio.Event) -> None:
        """The target sweep, every `every` seconds until `stopping` is set (deadlines live in the database, so a
        restart or another copy picks up where this one stopped)."""
        while not stopping.is_set():
            try:
                await self.sweep_targets()
            except Exception:
                log.exception("the response-target sweep failed; trying again")
            try:
                await self.sweep_incidents()
            except Exception:
                log.exception("the incident check-in sweep failed; trying again")
            try:
                await asyncio.wait_for(stopping.wait(), timeout=every)
            except TimeoutError:
                pass

    async def sweep_incidents(self) -> int:
        """Check-ins of incident members resolved together that are due: sent without a prompt each."""
        def work() -> int:
            with transaction(self.engine) as session:
                return incident_actions.send_due_checkins(session, utcnow())

        sent = await asyncio.to_thread(work)
        if sent:
            self._notify()
        return sent

    async def notify_admin(self, text: str) -> None:
        """A message for the admin channel, delivered through the outbox like everything else."""
        await self._run(lambda s: enqueue(s, Effect.NOTICE, None, text=text))

    # inbound
    async def ingest(self, items: list[Item], *, cursor: tuple[str, str] | None = None) -> list[Accepted]:
        """A polled page (and its cursor) in one transaction."""
        result = await asyncio.to_thread(ingest, self.engine, items, config=self.config, cursor=cursor,
                                         storms=self.storms)
        if any(not r.duplicate for r in result):
            self._notify()
        return result

    async def accept(self, item: Item) -> Accepted:
        """One pushed item (a webhook delivery), committed together with those arriving at the same time."""
        result = await self._batcher.submit(item)
        if not result.duplicate:
            self._notify()
        return result

    async def cursor(self, name: str) -> str | None:
        return await asyncio.to_thread(load_cursor, self.engine, name)

    # actions
    async def claim(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: cases.claim(s, case_id, actor))

    async def take_over(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: cases.take_over(s, case_id, actor))

    async def release(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: cases.release(s, case_id, actor))

    def sender_for(self, session: Session, case_id: int) -> Sender | None:
        """The source that answers this case: named by the message (`via`), else the case's platform."""
        case = load_case(session, case_id)
        via = cases.reply_target(session, case_id).reply_to.get("via") or case.platform
        return self.senders.get(str(via))

    async def reply(self, case_id: int, actor: Actor, text: str, mode: str | None = None) -> None:
        """Queue a reply; `mode` is one of the sender's reply modes (e.g. "private"), chosen in the modal."""

        def use_case(session: Session) -> None:
            sender = self.sender_for(session, case_id)
            limit = 3000
            options: dict[str, Any] | None = None
            if sender:  # the platform counts what it shows, e.g. the @acct a Mastodon reply starts with
                target = cases.reply_target(session, case_id)
                reply_to = dict(target.reply_to)
                modes = reply_modes(sender, reply_to)
                if mode is not None and modes and mode not in {value for value, _ in modes}:
                    raise InvalidInput(f"{mode!r} is not a way to reply here.")
                if mode is not None and modes:
                    options = {"mode": mode}
                    reply_to["mode"] = mode
                prefix = sender.compose(reply_to=reply_to, text="")
                limit = _limit(sender, reply_to) - len(prefix)
                problem = _platform_rule(sender, reply_to, target.created_at).refusal
                if problem is None and isinstance(sender, ReplyChecks):
                    problem = sender.check_text(reply_to=reply_to, text=sender.compose(reply_to=reply_to,
                                                                                       text=text.strip()))
                if problem:
                    raise InvalidInput(problem)
            cases.reply(session, case_id, actor, text, max_length=limit, options=options)

        await self._run(use_case)

    async def set_priority(self, case_id: int, actor: Actor, priority: str) -> None:
        rules = targets.policy(self.config)
        await self._run(lambda s: cases.set_priority(s, case_id, actor, priority, rules=rules))

    async def retry(self, reply_id: int, actor: Actor) -> None:
        await self._run(lambda s: cases.retry(s, reply_id, actor))

    async def escalate(self, case_id: int, actor: Actor, reason: str) -> None:
        await self._run(lambda s: cases.escalate(s, case_id, actor, reason, config=self.config))

    async def acknowledge(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: paging.acknowledge(s, case_id, actor.id, actor.name, actor.desk, utcnow()))

    async def resolve(self, case_id: int, actor: Actor, note: str) -> None:
        def use_case(session: Session) -> list[FollowupRow]:
            sender = self.sender_for(session, case_id)
            config = self.config
            if sender is not None and not getattr(sender, "checkins", True):  # e.g. one reply per review
                config = config.model_copy(update={"followups": []})
            return cases.resolve(session, case_id, actor, note, config=config)

        rows = await self._run(use_case)
        if self.scheduler is not None and rows:
            self.scheduler.schedule(rows)

    async def reopen(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: cases.reopen(s, case_id, actor))

    async def send_checkin(self, followup_id: int, actor: Actor) -> None:
        await self._run(lambda s: followups.send_checkin(s, followup_id, actor))

    async def skip_checkin(self, followup_id: int, actor: Actor) -> None:
        await self._run(lambda s: followups.skip(s, followup_id, actor))

    # incidents (storms)
    async def reply_to_all(self, incident_id: int, actor: Actor, template: str, statement: str = "") -> int:
        return await self._run(lambda s: incident_actions.reply_to_all(
            s, incident_id, actor, template, statement, config=self.config, senders=self.senders, now=utcnow()))

    async def split(self, case_id: int, actor: Actor) -> None:
        await self._run(lambda s: incident_actions.split(s, case_id, actor, config=self.config, now=utcnow()))

    async def resolve_all(self, incident_id: int, actor: Actor, note: str = "") -> int:
        return await self._run(lambda s: incident_actions.resolve_all(
            s, incident_id, actor, note, config=self.config, senders=self.senders, now=utcnow()))

    async def incident_view(self, incident_id: int) -> IncidentView:
        announcing = incident_actions.announcers(self.senders)
        return await self.read(lambda s: incidents.incident_view(s, incident_id, self.config, announcing))

    async def members_after(self, incident_id: int, desk: str, limit: int) -> list[MemberView]:
        return await self.read(lambda s: incidents.members_after(s, incident_id, desk, limit))

    # reads for desks
    async def view(self, case_id: int) -> CaseView:
        return await self.read(lambda s: cases.case_view(s, case_id))

    async def stats(self, period: str) -> StatsView:
        return await asyncio.to_thread(stats.stats, self.engine, period)

    async def read(self, query: Callable[[Session], T]) -> T:
        def work() -> T:
            with transaction(self.engine, write=False) as session:
                return query(session)

        return await asyncio.to_thread(work)

    async def reply_context(self, case_id: int) -> ReplyContext:
        """What the reply modal shows: the case, the platform's length limit, what the platform will show
        before the text, what it allows right now (a notice, or a refusal), and the ways to reply."""

        def query(session: Session) -> ReplyContext:
            view = cases.case_view(session, case_id)
            sender = self.sender_for(session, case_id)
            if sender is None:
                return ReplyContext(view, 3000, "", ReplyRule(), [])
            target = cases.reply_target(session, case_id)
            reply_to = dict(target.reply_to)
            return ReplyContext(view, _limit(sender, reply_to), sender.compose(reply_to=reply_to, text=""),
                                _platform_rule(sender, reply_to, target.created_at), reply_modes(sender, reply_to))

        return await self.read(query)

    # chat references kept by desks
    async def chat_ref(self, *, desk: str, purpose: str, key: str) -> ChatRefRow | None:
        def query(session: Session) -> ChatRefRow | None:
            return session.exec(select(ChatRefRow).where(
                ChatRefRow.desk == desk, ChatRefRow.purpose == purpose, ChatRefRow.owner_key == key)).first()

        return await self.read(query)

    async def followup(self, followup_id: int) -> FollowupRow | None:
        return await self.read(lambda s: s.get(FollowupRow, followup_id))


@dataclass(frozen=True)
class ReplyContext:
    view: CaseView
    max_length: int
    prefix: str
    rule: ReplyRule
    modes: list[tuple[str, str]]
    """(value, label) of the ways to reply, the first the default; [] when there is only one."""


def reply_modes(sender: Sender, reply_to: dict[str, Any]) -> list[tuple[str, str]]:
    """A sender may offer several ways to answer (`reply_modes(reply_to)`), e.g. under a comment or privately."""
    modes = getattr(sender, "reply_modes", None)
    return [(str(v), str(label)) for v, label in modes(reply_to)] if callable(modes) else []


def _limit(sender: Sender, reply_to: dict[str, Any]) -> int:
    """The conversation's own limit when the platform has several (Messenger 2,000, a comment 8,000)."""
    limit_for = getattr(sender, "limit_for", None)
    return int(limit_for(reply_to)) if callable(limit_for) else sender.max_length


def _platform_rule(sender: Sender, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
    if not isinstance(sender, ReplyChecks):
        return ReplyRule()
    moment = last_inbound_at.replace(tzinfo=UTC) if last_inbound_at and last_inbound_at.tzinfo is None \
        else last_inbound_at
    return sender.rule(reply_to=reply_to, last_inbound_at=moment)


def save_chat_ref(session: Session, *, case_id: int, desk: str, purpose: str, key: str, conversation: str,
                  message_id: str, replace: bool = False) -> None:
    existing = session.exec(select(ChatRefRow).where(
        ChatRefRow.desk == desk, ChatRefRow.purpose == purpose, ChatRefRow.owner_key == key)).first()
    if existing is None:
        session.add(ChatRefRow(case_id=case_id, desk=desk, purpose=purpose, owner_key=key,
                               conversation=conversation, message_id=message_id))
    elif replace:
        existing.conversation, existing.message_id = conversation, message_id
        session.add(existing)
