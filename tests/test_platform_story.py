"""The whole story of the first loop, once per platform, through each platform's fake: a customer writes
(in several scripts, with emoji and combining marks), the card appears, Alice claims and replies through the
modal, exactly that text reaches the platform once, and the case is resolved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import build
from bot.config import Settings, config_from_mapping
from tests.conftest import ENV, SIGNING_SECRET, Bot
from tests.fakes.slack_api import FakeSlack
from tests.kit.wait import eventually

CUSTOMER_TEXT = "Mein Paket ist kaputt 📦💔 — سفارش من نرسید — Tilaus ei tullut — café (cafe\u0301)"
REPLY_TEXT = "Hei! Grüße 🙂 سلام — we are sending a new one today (cafe\u0301)."


@dataclass(frozen=True)
class Platform:
    name: str
    fake: Callable[[], AbstractContextManager[Any]]
    source: Callable[[Any], dict[str, Any]]
    """The `sources.<name>` mapping pointing at the fake."""
    env: Callable[[Any], dict[str, str]]
    ready: Callable[[Any], bool]
    """True once the bot has polled the fake at least once (its cursor is set), for polled platforms."""
    shown: Callable[[str], str] = lambda text: text
    """What the platform shows for a reply the bot sent (e.g. with an @mention first)."""
    limit: int = 0
    """The reply box's limit for this conversation, as the modal states it."""
    checkins: bool = True
    """False where a check-in would replace the reply (Google reviews): resolving schedules none."""


@contextmanager
def _started(fake: Any) -> Iterator[Any]:
    with fake as running:
        yield running


def google() -> AbstractContextManager[Any]:
    from tests.fakes.google_reviews import FakeGoogleReviews

    return _started(FakeGoogleReviews())


def meta() -> AbstractContextManager[Any]:
    from tests.fakes.meta import FakeMeta

    return _started(FakeMeta())


def x() -> AbstractContextManager[Any]:
    from tests.fakes.x import FakeX

    return _started(FakeX())


def bluesky() -> AbstractContextManager[Any]:
    from tests.fakes.bluesky import FakeBluesky

    return _started(FakeBluesky())


PLATFORMS = [
    Platform(
        name="bluesky", fake=bluesky, source=lambda fake: fake.config(poll_every="0.3s"), env=lambda fake: fake.env(),
        ready=lambda fake: len(fake.requests("app.bsky.notification.listNotifications")) > 0,
        shown=lambda text: f"@sara {text}", limit=294,
    ),
    Platform(name="x", fake=x, source=lambda fake: fake.source(), env=lambda fake: fake.env(),
             ready=lambda fake: fake.polled(), limit=280),
    Platform(
        name="meta", fake=meta,
        source=lambda fake: {"graph_url": fake.graph_url, "page_id": fake.page["id"],
                             "instagram_id": fake.instagram["id"]},
        env=lambda fake: {"META_APP_SECRET": fake.app_secret, "META_VERIFY_TOKEN": fake.verify_token,
                          "META_PAGE_TOKEN": fake.page_token},
        ready=lambda fake: True, limit=2000,
    ),
    Platform(
        name="google_reviews", fake=google,
        source=lambda fake: {"account": fake.account, "locations": ["locations/456"], "base_url": f"{fake.url}/v4",
                             "poll_every": "0.3s"},
        env=lambda fake: {"GOOGLE_TOKEN": fake.token},
        ready=lambda fake: any(r["method"] == "GET" for r in fake.requests()),
        checkins=False, limit=3000,  # Slack's text input holds 3,000 (Google takes 4,096 bytes)
    ),
]


@asynccontextmanager
async def bot_for(platform: Platform, fake: Any, database_url: str, slack: FakeSlack) -> AsyncIterator[Bot]:
    config = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC", "oncall": "U0CAROL"},
              "sources": {platform.name: platform.source(fake)},
              "followups": [{"after": "1s", "text": "Hi {first_name}, is everything sorted now?"}]}
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test", slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=slack.url)
    runtime = build(settings, config_from_mapping(config), {**ENV, **platform.env(fake)}, slack_pace=0.02)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    try:
        yield Bot(runtime, http, slack)
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


@pytest.mark.parametrize("platform", PLATFORMS, ids=[p.name for p in PLATFORMS])
async def test_the_whole_story_on_each_platform(platform: Platform, database_url: str, fake_slack: FakeSlack) -> None:
    with platform.fake() as fake:
        async with bot_for(platform, fake, database_url, fake_slack) as bot:
            await eventually(lambda: platform.ready(fake), what="the first poll")
            delivery = fake.customer_says(CUSTOMER_TEXT, name="Sara Ahmadi", handle="@sara")
            if delivery is not None:  # the platform pushes: post its signed webhook delivery
                path, body, headers = delivery
                answer = await bot.http.post(path, content=body, headers=headers)
                assert answer.status_code == 200, answer.text

            card = await bot.card("Tilaus ei tullut")
            shown = json.dumps(card["blocks"], ensure_ascii=False)
            assert "Mein Paket ist kaputt 📦💔" in shown and "سفارش من نرسید" in shown and "cafe\u0301" in shown

            await bot.alice.click(card, "case.claim", channel="C0CASES")
            await bot.card("Tilaus ei tullut", owner="<@U0ALICE>")
            await bot.alice.click(card, "case.reply", channel="C0CASES")
            view = await eventually(lambda: next(iter(bot.slack.views().values())))
            block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input")
            box = next(b for b in view["blocks"] if b["type"] == "input")
            assert f"Up to {platform.limit} characters." in box["hint"]["text"], box["hint"]["text"]
            assert box["element"]["max_length"] == platform.limit
            submitted = await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input",
                                                                             "value": REPLY_TEXT}}})
            assert submitted.status_code == 200 and not submitted.content, submitted.text

            await eventually(lambda: fake.sent(), what="the reply on the platform")
            await bot.card("Tilaus ei tullut", sent=":white_check_mark: Reply by Alice sent")
            await asyncio.sleep(1.0)  # more polls and outbox passes: nothing is sent twice, no echo case
            assert fake.sent() == [platform.shown(REPLY_TEXT)]
            assert len(bot.slack.messages("C0CASES")) == 1

            bot.slack.close_view(view["id"])  # Slack closes a modal whose submission was accepted
            await bot.alice.click(card, "case.resolve", channel="C0CASES")
            view = await eventually(lambda: next(iter(bot.slack.views().values())))
            await bot.alice.submit(view, {})
            await bot.card("Tilaus ei tullut", status=":white_check_mark: Resolved")

            def prompts() -> list[dict[str, Any]]:
                return [m for m in bot.slack.replies("C0CASES", card["ts"]) if "Check-in due" in str(m["blocks"])]

            if platform.checkins:
                await eventually(prompts, what="the check-in prompt")
            else:
                await asyncio.sleep(2.5)
                assert prompts() == []


@pytest.mark.parametrize(("mode", "kind"), [("public", "comment_reply"), ("private", "private_reply")])
async def test_a_facebook_comment_is_answered_under_it_or_privately(mode: str, kind: str, database_url: str,
                                                                    fake_slack: FakeSlack) -> None:
    platform = next(p for p in PLATFORMS if p.name == "meta")
    with platform.fake() as fake:
        async with bot_for(platform, fake, database_url, fake_slack) as bot:
            path, body, headers = fake.deliver("page", fake.comment_entry("Wo bleibt meine Bestellung? 📦",
                                                                          name="Lena Müller"))
            assert (await bot.http.post(path, content=body, headers=headers)).status_code == 200
            card = await bot.card("Wo bleibt meine Bestellung")
            await bot.alice.click(card, "case.reply", channel="C0CASES")
            view = await eventually(lambda: next(iter(bot.slack.views().values())))
            how = next(b for b in view["blocks"] if b.get("block_id") == "reply_mode")
            assert [o["value"] for o in how["element"]["options"]] == ["public", "private"]
            text_block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input"
                              and b["block_id"] != "reply_mode")
            chosen = next(o for o in how["element"]["options"] if o["value"] == mode)
            answer = await bot.alice.submit(view, {
                text_block: {"reply_text": {"type": "plain_text_input", "value": "Hallo Lena, wir kümmern uns!"}},
                "reply_mode": {"reply_mode": {"type": "radio_buttons", "selected_option": chosen}}})
            assert answer.status_code == 200 and not answer.content, answer.text
            await eventually(lambda: fake.sent_records(), what="the reply at Meta")
            await asyncio.sleep(0.5)
            assert [(r["kind"], r["text"]) for r in fake.sent_records()] == [(kind, "Hallo Lena, wir kümmern uns!")]
