"""The neutral case view: what any desk shows for a case, before it is rendered as Block Kit or a card."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ReplyView:
    id: int
    kind: str
    status: str
    text: str
    author_name: str | None
    url: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class CaseView:
    id: int
    platform: str
    kind: str
    status: str
    channel: str
    customer_name: str
    customer_handle: str
    customer_followers: int | None
    text: str
    url: str | None
    rating: int | None
    opened_at: datetime
    messages: int
    owner: str | None
    owner_name: str | None
    escalated: bool
    escalation_reason: str | None
    escalated_by: str | None
    reopened: int
    resolved_by: str | None
    resolution_note: str | None
    last_reply: ReplyView | None
    actions: tuple[str, ...] = field(default=())
    """Buttons that fit the state, in order: claim, release, reply, escalate, resolve, reopen, retry."""


@dataclass(frozen=True, slots=True)
class StatsView:
    period: str
    since: datetime
    new: int
    open_now: int
    claimed_now: int
    resolved: int
    escalated: int
    by_platform_kind: list[tuple[str, str, int]]
    first_response_median_s: float | None
    first_response_p90_s: float | None
    resolution_median_s: float | None
    response_rate: float | None
    per_person: list[tuple[str, str, int, int, int]]
    """(user id, name, claims, replies, resolves)"""
