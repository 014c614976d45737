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
    priority: str = "normal"
    priority_reasons: tuple[str, ...] = ()
    priority_by: str | None = None
    due_at: datetime | None = None
    """When a reply is due (the response target running now); None when nothing is owed."""
    sla_state: str = ""
    """"" on time, "warning" due soon (80% of the target gone), "breached" missed."""
    page_level: int = 0
    acked_name: str | None = None
    awaiting_ack: bool = False
    """Escalated under the escalation policy and nobody has acknowledged yet (the card offers Acknowledge)."""
    incident_id: int | None = None
    """Grouped into this incident (a storm): the card points to the incident card and offers Split."""
    incident_label: str | None = None


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member of an incident, as its thread lists it."""

    case_id: int
    platform: str
    customer_name: str
    customer_handle: str
    text: str
    url: str | None
    status: str
    seq: int = 0
    """Its place among the members in the order they joined (where the next digest starts)."""


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What any desk shows for an incident (a storm of alike cases)."""

    id: int
    label: str
    status: str
    channel: str
    teams_channel: str
    lead_case_id: int
    count: int
    platforms: list[tuple[str, int]]
    """Members per platform, most first."""
    per_minute: list[int]
    """New members per minute, the last 15 minutes up to now (last: the current minute)."""
    first_at: datetime
    last_at: datetime
    samples: list[str]
    reply_text: str | None
    statement: str | None
    reply_name: str | None
    replies_sent: int
    replies_failed: int
    replies_queued: int
    statements: list[tuple[str, str, str | None]]
    """(platform, status, url) of the public statement per platform."""
    resolved_name: str | None
    resolved_at: datetime | None
    note: str | None
    actions: tuple[str, ...]
    """reply_all (until a reply to all was sent), resolve_all (while open)."""
    can_announce: tuple[str, ...] = ()
    """Platforms of the members where a public statement is possible."""
    version: int = 0
    """The incident's version this view shows (see `incidents.shown`)."""


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
    within_target: float | None = None
    """Share of response targets met in the period (met / (met + missed)); None when none ended."""
    missed_by_priority: list[tuple[str, int]] = field(default_factory=list)
    """Targets missed in the period, per priority (urgent first), only those with any."""
    ack_median_s: float | None = None
    """Median time from an escalation to its acknowledgement (those acknowledged in the period)."""
    acks: int = 0
    incidents: list[tuple[str, int, str]] = field(default_factory=list)
    """Incidents (storms) that began in the period, largest first: (label, members, status)."""
