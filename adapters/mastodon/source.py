"""Mastodon as a source: a poller with a stored cursor, and a sender for replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.mastodon.client import MastodonClient
from adapters.mastodon.parse import id_key, parse_notification
from bot.core.errors import SendError
from bot.core.model import Delivery, Item
from bot.services.ingest import Accepted

log = logging.getLogger("socialops.mastodon")
CURSOR = "mastodon:notifications"

Ingest = Callable[..., Awaitable[list[Accepted]]]
LoadCursor = Callable[[str], Awaitable[str | None]]
MayPoll = Callable[[], Awaitable[bool]]


class MastodonSender:
    platform = "mastodon"

    def __init__(self, *, client: MastodonClient, max_length: int) -> None:
        self._client = client
        self.max_length = max_length

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        """A reply must name the customer itself, or Mastodon does not thread or notify it."""
        acct = str(reply_to.get("acct") or "")
        prefix = f"@{acct} " if acct and not text.startswith(f"@{acct}") else ""
        return prefix + text

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        status_id = reply_to.get("status_id")
        if not status_id:
            raise SendError("the customer's status id is unknown", permanent=True)
        visibility = str(reply_to.get("visibility") or "public")
        status = await self._client.post_status(
            status=self.compose(reply_to=reply_to, text=text), in_reply_to_id=str(status_id),
            visibility="direct" if visibility == "direct" else visibility, idempotency_key=idempotency_key)
        return Delivery(platform_id=str(status.get("id")), url=status.get("url") or status.get("uri"))


class MastodonPoller:
    def __init__(self, *, client: MastodonClient, ingest: Ingest, load_cursor: LoadCursor, every: float,
                 brand_acct: str = "", may_poll: MayPoll | None = None) -> None:
        self._client = client
        self._ingest = ingest
        self._load_cursor = load_cursor
        self._every = every
        self._brand = brand_acct
        self._stopping = asyncio.Event()
        self._may_poll = may_poll

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._may_poll is None or await self._may_poll():  # several copies: one polls
                    await self.poll_once()
            except SendError as error:
                log.warning("Mastodon poll failed: %s", error.message)
            except Exception:
                log.exception("Mastodon poll failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._every)
            except TimeoutError:
                pass

    async def poll_once(self) -> int:
        """Fetch everything newer than the stored cursor, oldest page first. Returns the items accepted."""
        cursor = await self._load_cursor(CURSOR)
        accepted = 0
        for _ in range(50):
            page = await self._client.notifications(min_id=cursor)
            if not page:
                break
            page.sort(key=lambda n: id_key(str(n.get("id", ""))))
            newest = str(page[-1]["id"])
            items: list[Item] = [i for n in page if (i := parse_notification(n, brand_acct=self._brand))]
            results = await self._ingest(items, cursor=(CURSOR, newest))
            accepted += sum(1 for r in results if not r.duplicate)
            if cursor is None:
                break  # first run: start from the newest page, do not replay the account's history
            cursor = newest
        return accepted
