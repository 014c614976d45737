"""Domain vocabulary: items, cases, statuses and the case state machine.

Standard library only: every other layer depends on this module, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    MENTION = "mention"
    DM = "dm"
    COMMENT = "comment"
    REVIEW = "review"
    TAG = "tag"
    REPLY = "reply"


INBOUND_KINDS = frozenset({Kind.MENTION, Kind.DM, Kind.COMMENT, Kind.REVIEW, Kind.TAG})


class Status(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class Action(StrEnum):
    OPEN = "open"
    MESSAGE = "message"
    CLAIM = "claim"
    TAKE_OVER = "take_over"
    RELEASE = "release"
    REPLY = "reply"
    REPLY_SENT = "reply_sent"
    REPLY_FAILED = "reply_failed"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    FOLLOWUP_DUE = "followup_due"
    FOLLOWUP_SENT = "followup_sent"
    FOLLOWUP_SKIPPED = "followup_skipped"
    PRIORITY = "priority"
    TARGET_MET = "target_met"
    TARGET_MISSED = "target_missed"
    PAGE = "page"
    ACKNOWLEDGE = "acknowledge"
    AWAY = "away"
    GROUPED = "grouped"
    SPLIT = "split"
    REPLY_ALL = "reply_all"
    RESOLVE_ALL = "resolve_all"


class ReplyStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    name: str = ""
    handle: str = ""
    followers: int | None = None

    @property
    def first_name(self) -> str:
        """The greeting name: first word of the display name, else the handle without '@'."""
        words = self.name.split()
        if words:
            return words[0]
        return self.handle.lstrip("@") or "there"


@dataclass(frozen=True, slots=True)
class Item:
    """One inbound social message, as a source parsed it."""

    platform: str
    platform_id: str
    kind: Kind
    author: Author
    text: str
    conversation: str
    created_at: datetime
    url: str | None = None
    rating: int | None = None
    reply_to: dict[str, Any] = field(default_factory=dict)
    """What the source needs to answer on the platform (reply_url, status id, visibility...)."""
    raw: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    """The platform id this message answers; a known parent attaches it to the parent's case."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a platform said about a message we sent."""

    platform_id: str | None
    url: str | None


def first_name_of(name: str, handle: str) -> str:
    return Author(id="", name=name, handle=handle).first_name


def personalise(template: str, *, name: str, handle: str) -> str:
    """Fill {first_name} only: customer-controlled names never reach str.format."""
    return template.replace("{first_name}", first_name_of(name, handle))
