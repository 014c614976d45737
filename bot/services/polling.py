"""Polling a source's feeds: each page and its cursor in one transaction, rate limits honoured, one task per
source so a slow or failing platform never delays another, and credentials that stop working reported
once to the admin channel instead of retried forever."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.core.errors import CredentialsError, SendError
from bot.core.model import Item
from bot.core.ports import Feed
from bot.services.ingest import Accepted

log = logging.getLogger("socialops.polling")

Ingest = Callable[..., Awaitable[list[Accepted]]]
LoadCursor = Callable[[str], Awaitable[str | None]]
MayPoll = Callable[[], Awaitable[bool]]
Report = Callable[[str], Awaitable[None]]

MAX_PAGES = 50
"""Pages per feed per round: a backlog is worked off over a few rounds, never in one endless loop."""
MAX_BACKOFF_S = 600.0


class SourcePoller:
    def __init__(self, *, name: str, feeds: Sequence[Feed], every: float, ingest: Ingest, load_cursor: LoadCursor,
                 spread: float = 0.0, may_poll: MayPoll | None = None, report: Report | None = None) -> None:
        self.name = name
        self._feeds = list(feeds)
        self._every = every
        self._spread = spread
        self._ingest = ingest
        self._load_cursor = load_cursor
        self._may_poll = may_poll
        self._report = report
        self._stopping = asyncio.Event()
        self._blocked_until: dict[str, float] = {}
        self._failures = 0
        self.stopped_because: str | None = None
        """Set when the source gave up (credentials refused): it polls no more until restarted."""

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass

    async def run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            if self._may_poll is None or await self._may_poll():  # several copies: one polls
                try:
                    await self.round()
                except CredentialsError as error:
                    await self._give_up(error)
                    return
            if self._failures:
                delay = min(self._every * (2 ** min(self._failures, 6)), max(self._every, MAX_BACKOFF_S))
            else:  # rounds start every `every` seconds, however long a round took
                delay = self._every - (time.monotonic() - started)
            await self._sleep(delay)

    async def round(self) -> int:
        """Every feed once (those not waiting out a rate limit). Returns the items newly accepted."""
        accepted = 0
        failed = False
        for index, feed in enumerate(self._feeds):
            if self._stopping.is_set():
                break
            if index and self._spread:
                await self._sleep(self._spread)
            if self._blocked_until.get(feed.key, 0.0) > time.monotonic():
                continue
            try:
                accepted += await self.poll(feed)
            except CredentialsError:
                raise
            except SendError as error:
                failed = True
                if error.retry_after:
                    self._blocked_until[feed.key] = time.monotonic() + error.retry_after
                    log.warning("%s: %s; waiting %.0fs before polling it again", feed.key, error.message,
                                error.retry_after)
                else:
                    log.warning("%s: poll failed: %s", feed.key, error.message)
            except Exception:
                failed = True
                log.exception("%s: poll failed", feed.key)
        self._failures = self._failures + 1 if failed and not accepted else 0
        return accepted

    async def poll(self, feed: Feed) -> int:
        """Fetch `feed` from its stored cursor until it has nothing more right now."""
        cursor = await self._load_cursor(feed.key)
        accepted = 0
        for _ in range(MAX_PAGES):
            page = await feed.fetch(cursor)
            moved = page.cursor is not None and page.cursor != cursor
            if page.items or moved:
                items: list[Item] = list(page.items)
                results = await self._ingest(items, cursor=(feed.key, page.cursor) if moved and page.cursor else None)
                accepted += sum(1 for r in results if not r.duplicate)
            if page.cursor is not None:
                cursor = page.cursor
            if not page.more or self._stopping.is_set():
                break
        return accepted

    async def _give_up(self, error: CredentialsError) -> None:
        self.stopped_because = error.message
        log.error("%s stopped polling: %s", self.name, error.message)
        if self._report is not None:
            try:
                await self._report(f"{self.name} stopped: {error.message}. Fix it, then restart the bot; "
                                   "the other sources keep running.")
            except Exception:
                log.exception("%s: could not tell the admin channel", self.name)
