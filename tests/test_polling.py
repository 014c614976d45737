"""Polling any source: cursors stored with their items, rate limits waited out per feed, one failing feed
never holds back another, and credentials that stop working stop that source with one admin message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.core.errors import CredentialsError, SendError
from bot.core.model import Author, Item, Kind
from bot.core.ports import Page
from bot.services.polling import SourcePoller
from tests.conftest import Bot
from tests.kit.wait import eventually


def item(n: int, platform: str = "x") -> Item:
    return Item(platform=platform, platform_id=f"{platform}-{n}", kind=Kind.MENTION,
                author=Author(id=f"a{n}", name=f"Customer {n}", handle=f"@c{n}"), text=f"Hello number {n} ✨",
                conversation=f"t{n}", created_at=datetime.now(UTC), reply_to={"via": platform})


class ScriptedFeed:
    """Answers from a script: each entry is a Page or an exception; records the cursors it was asked for."""

    def __init__(self, key: str, script: list[Page | Exception]) -> None:
        self.key = key
        self.script = script
        self.asked: list[str | None] = []

    async def fetch(self, cursor: str | None) -> Page:
        self.asked.append(cursor)
        step = self.script.pop(0) if self.script else Page(items=[], cursor=None)
        if isinstance(step, Exception):
            raise step
        return step


def poller(bot: Bot, *feeds: ScriptedFeed, every: float = 0.05) -> SourcePoller:
    services = bot.runtime.services
    return SourcePoller(name="testsource", feeds=list(feeds), every=every, ingest=services.ingest,
                        load_cursor=services.cursor, report=services.notify_admin)


async def test_pages_and_their_cursor_are_stored_together_and_the_next_round_starts_there(bot: Bot) -> None:
    feed = ScriptedFeed("test:mentions", [Page([item(1), item(2)], "c2", more=True), Page([item(3)], "c3"),
                                          Page([], None)])
    source = poller(bot, feed)
    assert await source.round() == 3
    assert await bot.runtime.services.cursor("test:mentions") == "c3"
    assert await source.round() == 0
    assert feed.asked == [None, "c2", "c3"]
    for n in (1, 2, 3):
        await bot.card(f"Hello number {n} ✨")


async def test_a_rate_limited_feed_waits_while_the_others_go_on(bot: Bot) -> None:
    limited = ScriptedFeed("test:limited", [SendError("429", permanent=False, retry_after=30)])
    healthy = ScriptedFeed("test:healthy", [Page([item(7)], "h1"), Page([item(8)], "h2")])
    source = poller(bot, limited, healthy)
    assert await source.round() == 1
    assert await source.round() == 1
    assert limited.asked == [None]  # not asked again within its Retry-After
    assert healthy.asked == [None, "h1"]


async def test_an_unexpected_failure_in_one_feed_does_not_stop_the_others(bot: Bot) -> None:
    broken = ScriptedFeed("test:broken", [RuntimeError("bug"), RuntimeError("bug again")])
    healthy = ScriptedFeed("test:fine", [Page([item(9)], "f1")])
    assert await poller(bot, broken, healthy).round() == 1


async def test_refused_credentials_stop_the_source_and_tell_the_admin_channel_once(bot: Bot) -> None:
    feed = ScriptedFeed("test:revoked", [CredentialsError("X: the user token was refused (401): create a new one"),
                                         Page([item(4)], "r1")])
    source = poller(bot, feed)
    task = asyncio.create_task(source.run())
    await asyncio.wait_for(task, timeout=5)  # it ends by itself
    assert source.stopped_because and "401" in source.stopped_because
    notice = await bot.slack.wait_for_async(lambda: bot.slack.messages("C0ESC"))
    assert len(notice) == 1
    assert "testsource stopped: X: the user token was refused (401)" in notice[0]["text"]
    assert "the other sources keep running" in notice[0]["blocks"][0]["text"]["text"]
    assert feed.asked == [None]


async def test_stop_ends_the_loop_between_rounds(bot: Bot) -> None:
    feed = ScriptedFeed("test:idle", [])
    source = poller(bot, feed, every=30)
    task = asyncio.create_task(source.run())
    await eventually(lambda: feed.asked)
    source.stop()
    await asyncio.wait_for(task, timeout=2)
