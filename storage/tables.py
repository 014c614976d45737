"""SQLModel tables. Timestamps are timezone-aware UTC.

Platform and chat ids live in their own tables (items, chat_refs), not as platform-named columns on cases.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored or received timestamp as aware UTC (SQLite hands them back naive; they were written as UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class CaseRow(SQLModel, table=True):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("platform", "conversation", name="uq_case_conversation"),
        Index("ix_cases_opened", "opened_at", "platform", "kind", "status"),
        Index("ix_cases_status", "status"),
        Index("ix_cases_customer", "platform", "customer_id", "opened_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=40)
    conversation: str = Field(max_length=400)
    kind: str = Field(max_length=20)
    status: str = Field(default="open", max_length=20)
    channel: str = Field(max_length=40)
    customer_id: str = Field(max_length=200)
    customer_name: str = Field(default="", max_length=200)
    customer_handle: str = Field(default="", max_length=200)
    customer_followers: int | None = None
    owner: str | None = Field(default=None, max_length=40)
    owner_name: str | None = Field(default=None, max_length=200)
    escalated: bool = False
    escalation_reason: str | None = None
    escalated_by: str | None = Field(default=None, max_length=40)
    resolution_note: str | None = None
    resolved_by: str | None = Field(default=None, max_length=40)
    reopened: int = 0
    cycle: int = 0
    """Bumped on every resolve and reopen: timers carry it and drop themselves when it moved."""
    first_responder: str | None = Field(default=None, max_length=40)
    opened_at: datetime = Field(default_factory=utcnow)
    last_message_at: datetime = Field(default_factory=utcnow)
    first_response_at: datetime | None = None
    first_response_s: float | None = None
    resolved_at: datetime | None = None
    resolution_s: float | None = None
    escalated_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    priority: str = Field(default="normal", max_length=10)
    priority_reasons: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    priority_by: str | None = Field(default=None, max_length=200)
    """Who set the priority by hand (then new messages no longer change it)."""
    due_from: datetime | None = None
    """When the response target running now started (the case opened, or the customer wrote after a reply)."""
    warn_at: datetime | None = Field(default=None, index=True)
    """80% of the target gone (in business time): the card says the reply is due soon."""
    due_at: datetime | None = Field(default=None, index=True)
    """The target: a reply sent after this missed it. None: nothing is owed (answered, or resolved)."""
    sla_state: str = Field(default="", max_length=10)
    """"" (on time), "warning" (80% gone), "breached" (target missed: escalated automatically)."""
    page_level: int = 0
    """The escalation policy's level paged last (0: none yet)."""
    page_next_at: datetime | None = Field(default=None, index=True)
    """When the policy acts next on this escalation (the next level, or a reminder); None: nothing pending."""
    acked_by: str | None = Field(default=None, max_length=200)
    acked_name: str | None = Field(default=None, max_length=200)
    acked_at: datetime | None = None
    incident_id: int | None = Field(default=None, index=True)
    """The storm this case was grouped into (bot.services.incidents); None: a case of its own (or split off)."""
    incident_seq: int | None = None
    """Its place among the incident's members, in the order they joined (given while the incident row is locked,
    so a later number is never committed before an earlier one is listed)."""


class IncidentRow(SQLModel, table=True):
    """A storm: many new cases that look alike (a hashtag, a link, keywords, near-duplicate text), shown as one
    incident card with the members in its thread. Counters are kept here (bumped as members join) so the card
    never counts thousands of rows."""

    __tablename__ = "incidents"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True)
    """The detector's key (`<feature>@<opening time>`): the same storm seen again after a restart finds its row."""
    feature: str = Field(max_length=300, index=True)
    label: str = Field(max_length=300)
    status: str = Field(default="open", max_length=20)
    """open → resolved (Resolve all)."""
    lead_case_id: int = Field(index=True)
    """The first member: its platform and kind route the incident card, and the incident's chat effects queue
    behind that case's (so they go out in order and never concurrently)."""
    channel: str = Field(max_length=40)
    count: int = 0
    """Members now (split-off cases no longer count)."""
    platforms: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    minutes: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """New members per UTC minute (epoch minute → count), the last `TREND_MINUTES` minutes."""
    samples: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    first_at: datetime = Field(default_factory=utcnow)
    last_at: datetime = Field(default_factory=utcnow)
    card_at: datetime | None = None
    """When the incident card was last posted or updated: updates come at most every `storms.update_every`."""
    version: int = 0
    """Bumped by every change the card should show; a delivery that showed an older one owes another update."""
    members_seq: int = 0
    """The last `cases.incident_seq` given to a member."""
    reply_text: str | None = None
    """Reply to all: the personal reply template ({first_name}); set once, and members who join later get it too."""
    statement: str | None = None
    """Reply to all: the public statement, posted once per platform that allows one."""
    reply_by: str | None = Field(default=None, max_length=40)
    reply_name: str | None = Field(default=None, max_length=200)
    reply_at: datetime | None = None
    paced: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Reply to all: per platform, the next free sending slot (ISO time), so replies to members who join later
    queue behind the others at the platform's pace."""
    resolved_by: str | None = Field(default=None, max_length=40)
    resolved_name: str | None = Field(default=None, max_length=200)
    resolved_at: datetime | None = None
    note: str | None = None


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("platform", "platform_id", name="uq_item_platform_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    platform: str = Field(max_length=40)
    platform_id: str = Field(max_length=400)
    direction: str = Field(default="in", max_length=3)
    kind: str = Field(max_length=20)
    author_id: str = Field(max_length=200)
    author_name: str = Field(default="", max_length=200)
    author_handle: str = Field(default="", max_length=200)
    author_followers: int | None = None
    text: str
    url: str | None = None
    rating: int | None = None
    reply_to: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    received_at: datetime = Field(default_factory=utcnow)


class ChatRefRow(SQLModel, table=True):
    """Where something was posted in chat: the case card, a follow-up prompt."""

    __tablename__ = "chat_refs"
    __table_args__ = (UniqueConstraint("desk", "purpose", "owner_key", name="uq_chat_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    desk: str = Field(default="slack", max_length=20)
    purpose: str = Field(max_length=20)
    owner_key: str = Field(max_length=100)
    conversation: str = Field(max_length=100)
    message_id: str = Field(max_length=100)


class EventRow(SQLModel, table=True):
    """The audit log: who did what to which case, when, from which chat."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_at_action", "at", "action"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    action: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=40)
    actor_name: str | None = Field(default=None, max_length=200)
    desk: str | None = Field(default=None, max_length=20)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow)


class ReplyRow(SQLModel, table=True):
    """A message to the customer (a reply or a check-in), from queued to sent or failed."""

    __tablename__ = "replies"
    __table_args__ = (Index("ix_replies_created", "created_at", "author"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    kind: str = Field(default="reply", max_length=20)
    text: str
    author: str | None = Field(default=None, max_length=40)
    author_name: str | None = Field(default=None, max_length=200)
    status: str = Field(default="queued", max_length=20)
    idempotency_key: str = Field(max_length=100, unique=True)
    platform_id: str | None = Field(default=None, max_length=400)
    url: str | None = None
    error: str | None = None
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """How to send it, chosen in the reply modal (e.g. {"mode": "private"}: a private reply to a comment)."""


class FollowupRow(SQLModel, table=True):
    __tablename__ = "followups"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    cycle: int
    position: int
    text: str
    due_at: datetime
    status: str = Field(default="scheduled", max_length=20)
    """scheduled → prompted → sent | skipped; cancelled when the case reopens."""
    acted_by: str | None = Field(default=None, max_length=40)
    reply_id: int | None = None


class OutboxRow(SQLModel, table=True):
    """A side effect owed to the outside world, written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "done", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    effect: str = Field(max_length=40)
    desk: str = Field(default="", max_length=20)
    """The chat desk a chat effect goes to ("slack", "teams"); "" for a send to a platform. A case's rows go
    out in order per desk, so one desk being down never holds back the other."""
    case_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    done: bool = False
    dead: bool = False
    """Given up (permanent error or too many attempts): done, but never delivered."""
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    locked_until: datetime | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None


class CursorRow(SQLModel, table=True):
    """Polling position per source, so a restart neither misses nor repeats."""

    __tablename__ = "cursors"

    name: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=400)
    updated_at: datetime = Field(default_factory=utcnow)


class CredentialRow(SQLModel, table=True):
    """OAuth tokens a source renewed itself (access token, rotated refresh token), shared by every copy.

    The first refresh token comes from the environment; a platform that rotates refresh tokens (X) makes the
    environment's stale after one use, so the current one lives here."""

    __tablename__ = "credentials"

    name: str = Field(primary_key=True, max_length=100)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class DailyCountRow(SQLModel, table=True):
    """Daily rollups for `/social stats`: one counter per UTC day, metric and up to two dimensions.

    Bumped (bot.services.rollups.bump) in the transaction of the change it counts, so stats read a few
    hundred rows instead of scanning cases and events; `rollups.rebuild` recomputes them from the raw tables.
    """

    __tablename__ = "daily_counts"
    __table_args__ = (UniqueConstraint("day", "metric", "dim1", "dim2", name="uq_daily_count"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date
    metric: str = Field(max_length=30)
    dim1: str = Field(default="", max_length=100)
    """Platform, bucket index or Slack user id, depending on the metric ("" when unused)."""
    dim2: str = Field(default="", max_length=100)
    value: int = 0
    label: str | None = Field(default=None, max_length=200)
    """A display name for dim1 (a person's name), overwritten by each bump that carries one."""
