"""Ports the services call; desks and sources implement them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from bot.core.model import Delivery, Item


class Sender(Protocol):
    """Sends a message to the customer on one platform, exactly once per idempotency key.

    A sender may set `checkins = False` when a further message would replace the reply (Google reviews keep
    one owner reply): resolving such a case schedules no check-ins; and may have `limit_for(reply_to) -> int`
    when its limit depends on the conversation (Messenger 2,000 characters, a Facebook comment 8,000)."""

    platform: str
    max_length: int

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery: ...

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        """The text as it will appear on the platform (e.g. with the @acct prefix)."""
        ...


@dataclass(frozen=True)
class ReplyRule:
    """What a platform allows for a reply right now (shown in the reply modal, enforced on submit)."""

    notice: str | None = None
    """Said in the modal above the text box (e.g. Messenger's 24-hour window and the allowed alternative)."""
    refusal: str | None = None
    """Set when no reply is possible at all: the modal explains, submit is refused."""


@runtime_checkable
class ReplyChecks(Protocol):
    """Optional on a Sender: platform rules beyond a character count."""

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        """None when the platform accepts `text`, else why not (e.g. over 300 graphemes)."""
        ...

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule: ...


@runtime_checkable
class Announces(Protocol):
    """Optional on a Sender: the platform lets the brand post a public statement (a post of its own, not a reply).

    Used when a team answers a storm of complaints once, for everyone ("We know the app is down, fix by
    14:00"). Exactly once per idempotency key, like `send`."""

    announce_limit: int
    """Characters the statement may have on this platform."""

    async def announce(self, *, text: str, idempotency_key: str) -> Delivery: ...


@dataclass(frozen=True)
class Page:
    """One fetch of a polled feed: the new items (oldest first) and the position to store with them."""

    items: list[Item]
    cursor: str | None
    """Stored in the same transaction as the items; None keeps the stored one."""
    more: bool = False
    """Another page is waiting right now: fetch again before sleeping."""


class Feed(Protocol):
    """One polled stream of a source (mentions, DMs, one keyword search), with its own stored cursor."""

    key: str
    """The cursor's name in the database, e.g. "x:mentions"; unique across sources."""

    async def fetch(self, cursor: str | None) -> Page:
        """Items newer than `cursor`. A first run (cursor None) starts at the newest page without replaying
        history. Raises SendError (retry_after on rate limits) or CredentialsError."""
        ...


@dataclass(frozen=True)
class Check:
    """One line of `python app.py check`."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


class TokenStore(Protocol):
    """Where a source keeps OAuth tokens it renewed (shared by every running copy)."""

    async def load(self, name: str) -> dict[str, Any] | None: ...

    async def save(self, name: str, value: dict[str, Any]) -> None: ...
