"""X end to end through the real bot: a mention, a keyword hit and a DM polled from the fake become cards;
the reply modal refuses what X would count over 280 and warns where X may refuse; replies and DMs reach X
once; a refused token is reported to the admin channel and stops only X."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.x.source import SUMMONED_ONLY
from app import build
from bot.config import Settings, config_from_mapping
from tests.conftest import ENV, Bot
from tests.fakes.slack_api import FakeSlack
from tests.fakes.x import FakeX
from tests.kit.slack import SIGNING_SECRET, shown
from tests.kit.wait import eventually

Json = dict[str, Any]


@pytest.fixture
async def xbot(database_url: str, fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, FakeX]]:
    with FakeX() as fake:
        config = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC", "admin_channel": "C0ADMIN"},
                  "routes": [{"when": {"platform": "x", "kind": "dm"}, "channel": "C0DMS"}],
                  "sources": {"x": fake.source(keywords=["acme"])}}
        settings = Settings(database_url=database_url, slack_bot_token="xoxb-test",
                            slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.url)
        runtime = build(settings, config_from_mapping(config), {**ENV, **fake.env()}, slack_pace=0.02)
        await runtime.start()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
        try:
            await eventually(fake.polled, what="the first poll of X")
            await eventually(lambda: len(fake.requests("/2/tweets/search")) > 0 and len(fake.requests("/2/dm_events")))
            yield Bot(runtime, http, fake_slack), fake
        finally:
            await http.aclose()
            await runtime.stop()
            runtime.engine.dispose()


async def card_showing(bot: Bot, text: str, channel: str = "C0CASES") -> Json:
    def find() -> Json | None:
        return next((m for m in bot.slack.messages(channel) if text in shown(m)), None)

    card = await eventually(find, what=f"a card showing {text!r}")
    assert card is not None
    return card


async def reply_modal(bot: Bot, card: Json, channel: str = "C0CASES") -> Json:
    opened = len(bot.slack.calls("views.open"))
    await bot.alice.click(card, "case.reply", channel=channel)
    await bot.slack.wait_for_async(lambda: len(bot.slack.calls("views.open")) > opened)
    return [v for v in bot.slack.views().values() if v.get("callback_id") == "modal.reply"][-1]


async def submit(bot: Bot, view: Json, text: str) -> httpx.Response:
    block = next(b for b in view["blocks"] if b["type"] == "input")
    return await bot.alice.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input",
                                                                            "value": text}}})


async def test_a_mention_becomes_a_card_and_the_reply_reaches_x_once(xbot: tuple[Bot, FakeX]) -> None:
    bot, x = xbot
    mention = x.mention("jane", "my order never arrived & I'm upset", name="Jane Doe", followers=120)
    card = await card_showing(bot, "my order never arrived")
    text = shown(card)
    assert "Jane Doe" in text and "@jane" in text and "120 followers" in text
    assert f"https://x.com/jane/status/{mention['id']}" in text

    view = await reply_modal(bot, card)
    assert not any(b.get("block_id") == "rule" for b in view["blocks"])  # she mentioned us: no warning
    answer = await submit(bot, view, "Hi Jane, a new parcel is on its way 📦")
    assert answer.status_code == 200 and answer.content in (b"", b"{}")

    await eventually(x.sent, what="the reply on X")
    await asyncio.sleep(1.0)  # more polls and outbox passes: nothing twice, our reply is no new case
    assert x.sent() == ["Hi Jane, a new parcel is on its way 📦"]
    (posted,) = x.posts_by_brand()
    assert posted["referenced_tweets"] == [{"type": "replied_to", "id": mention["id"]}]
    assert len(bot.slack.messages("C0CASES")) == 1


async def test_the_modal_refuses_what_x_counts_over_280_and_nothing_is_sent(xbot: tuple[Bot, FakeX]) -> None:
    bot, x = xbot
    x.mention("jane", "こんにちは、注文が届きません")
    card = await card_showing(bot, "注文が届きません")
    view = await reply_modal(bot, card)

    too_long = "ありがとうございます" * 14 + "!"  # 141 characters, 281 by X's count
    assert len(too_long) < 280
    refusal = await submit(bot, view, too_long)
    assert refusal.status_code == 200 and refusal.json()["response_action"] == "errors"
    (message,) = refusal.json()["errors"].values()
    assert "281" in message and "280" in message
    await asyncio.sleep(1.0)
    assert [r for r in x.requests("/2/tweets") if r["method"] == "POST"] == []

    accepted = await submit(bot, view, too_long[:-1])
    assert accepted.status_code == 200 and accepted.content in (b"", b"{}")
    await eventually(x.sent)
    assert x.sent() == [too_long[:-1]]


async def test_a_keyword_hit_warns_in_the_modal(xbot: tuple[Bot, FakeX]) -> None:
    bot, x = xbot
    x.add_post("sam", "acme lost my parcel again", name="Sam Roe")
    card = await card_showing(bot, "lost my parcel again")
    view = await reply_modal(bot, card)
    (rule,) = [b for b in view["blocks"] if b.get("block_id") == "rule"]
    assert SUMMONED_ONLY.split(".")[0] in str(rule)


async def test_a_dm_is_answered_by_dm(xbot: tuple[Bot, FakeX]) -> None:
    bot, x = xbot
    x.add_dm("sara", "سلام، کارت من دو بار شارژ شد", name="Sara")
    card = await card_showing(bot, "کارت من دو بار شارژ شد", channel="C0DMS")
    view = await reply_modal(bot, card, channel="C0DMS")
    long_dm = "Hi Sara," + " we have refunded the second charge." * 20
    assert len(long_dm) > 280  # DMs are not posts: X takes 10,000 characters
    assert (await submit(bot, view, long_dm)).content in (b"", b"{}")
    await eventually(x.sent)
    assert len(x.dms_by_brand()) == 1 and x.posts_by_brand() == []
    assert x.sent() == [long_dm]
    await asyncio.sleep(1.0)
    assert len(bot.slack.messages("C0DMS")) == 1


async def test_a_refused_token_is_reported_once_and_stops_only_x(xbot: tuple[Bot, FakeX]) -> None:
    bot, x = xbot
    x.revoke_user_token()
    told = await eventually(lambda: bot.slack.messages("C0ADMIN"), what="the admin told")
    await asyncio.sleep(1.0)
    (message,) = bot.slack.messages("C0ADMIN")
    assert "X: the user token was refused (401)" in shown(message) and "X_USER_TOKEN" in shown(message)
    assert x.user_token not in str(told)
    calls = len(x.requests())
    await asyncio.sleep(1.0)
    assert len(x.requests()) == calls  # stopped polling
