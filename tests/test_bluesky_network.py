"""Bluesky against the real thing: Bluesky's reference network (PLC, PDS, AppView from @atproto/dev-env) on
loopback. A customer account mentions the brand; the bot, polling every second, posts the card in Slack; a
reply typed in Slack appears in the customer's thread and notifications, threaded and with a mention facet.

Needs `bash tests/bluesky_net/install.sh` (the test command runs it) and PostgreSQL; skipped otherwise, and
failed instead when SOCIALOPS_REQUIRE_BLUESKY=1 (CI).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app import build
from bot.config import Settings, config_from_mapping
from tests.conftest import ENV, SIGNING_SECRET, Bot
from tests.fakes.slack_api import FakeSlack
from tests.kit.bluesky_net import Json, Network, Session, StrongRef, local_bluesky, require_bluesky
from tests.kit.wait import eventually

BRAND_PASSWORD = "brand-app-password"
COMPLAINT = "@acme.test my order never arrived 📦 — سفارش من نرسید — cafe\u0301"
REPLY = "So sorry! 🙏 A new parcel ships today — سلام"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Session, Session]]:
    require_bluesky()
    with local_bluesky(tmp_path_factory.mktemp("bluesky")) as net:
        brand = net.create_account("acme.test", BRAND_PASSWORD)
        customer = net.create_account("customer.test", "customer-password")
        yield net, brand, customer


async def bluesky_bot(net: Network, database_url: str, slack: FakeSlack) -> tuple[Bot, Any]:
    config = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
              "sources": {"bluesky": {"service": net.pds_url, "handle": "acme.test", "poll_every": "1s"}}}
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test", slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=slack.url)
    runtime = build(settings, config_from_mapping(config), {**ENV, "BLUESKY_APP_PASSWORD": BRAND_PASSWORD},
                    slack_pace=0.02)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    return Bot(runtime, http, slack), runtime


async def polled_once(bot: Bot) -> None:
    keys = [feed.key for parts in bot.runtime.sources for feed in parts.feeds]

    async def all_set() -> bool:
        return all([await bot.runtime.services.cursor(key) is not None for key in keys])

    for _ in range(200):
        if await all_set():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bot never polled Bluesky (cursors {keys})")


@pytest.fixture
async def bot_on_bluesky(network: tuple[Network, Session, Session], database_url: str,
                         fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    bot, runtime = await bluesky_bot(network[0], database_url, fake_slack)
    try:
        await polled_once(bot)
        yield bot
    finally:
        await bot.http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


def reply_from(net: Network, customer: Session, brand_did: str, parent: StrongRef) -> Json | None:
    for note in net.notifications(customer):
        record = note.get("record") or {}
        if note["reason"] in ("reply", "mention") and note["author"]["did"] == brand_did \
                and record.get("reply", {}).get("parent", {}).get("uri") == parent.uri:
            return note
    return None


async def test_a_mention_becomes_a_card_and_the_slack_reply_reaches_the_customer(
        network: tuple[Network, Session, Session], bot_on_bluesky: Bot) -> None:
    net, brand, customer = network
    bot = bot_on_bluesky
    complaint = await asyncio.to_thread(net.post, customer, COMPLAINT, mention_did=brand.did)

    card = await bot.slack.wait_for_async(
        lambda: next((m for m in bot.slack.messages("C0CASES") if "sinun" not in str(m) and
                      "سفارش من نرسید" in json.dumps(m["blocks"], ensure_ascii=False)), None), timeout=20)
    shown = json.dumps(card["blocks"], ensure_ascii=False)
    assert "Bluesky" in shown and "customer.test" in shown and "cafe\u0301" in shown

    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input")
    answer = await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input", "value": REPLY}}})
    assert answer.status_code == 200 and not answer.content, answer.text

    seen: Json | None = None
    for _ in range(200):
        seen = await asyncio.to_thread(reply_from, net, customer, brand.did, complaint)
        if seen:
            break
        await asyncio.sleep(0.1)
    assert seen is not None, "the reply never reached the customer's notifications"
    record = seen["record"]
    assert record["text"].endswith(REPLY) and record["text"].startswith("@customer.test")
    assert record["reply"] == {"root": complaint.json(), "parent": complaint.json()}
    mention = next(f for f in record["facets"]
                   if f["features"][0]["$type"] == "app.bsky.richtext.facet#mention")
    start, end = mention["index"]["byteStart"], mention["index"]["byteEnd"]
    assert record["text"].encode()[start:end] == b"@customer.test" and mention["features"][0]["did"] == customer.did
    await bot.card("سفارش من نرسید", sent="sent")

    # The brand's own reply, now in the brand's notifications and searches, never becomes a case.
    await asyncio.sleep(2.5)
    assert len(bot.slack.messages("C0CASES")) == 1


async def test_a_reply_to_the_reply_joins_the_case_and_keeps_the_thread_root(
        network: tuple[Network, Session, Session], bot_on_bluesky: Bot) -> None:
    net, brand, customer = network
    bot = bot_on_bluesky
    first = await asyncio.to_thread(net.post, customer, "@acme.test where is my refund? ref 77", mention_did=brand.did)
    card = await bot.slack.wait_for_async(
        lambda: next((m for m in bot.slack.messages("C0CASES") if "ref 77" in str(m["blocks"])), None), timeout=20)
    brand_answer = await asyncio.to_thread(net.post, brand, "Checking, one moment", reply_to=first)
    for _ in range(100):  # the customer reads the answer before writing again (the AppView has indexed it)
        thread = await asyncio.to_thread(net.get_post_thread, first.uri)
        if any(r["post"]["uri"] == brand_answer.uri for r in thread["thread"].get("replies") or []):
            break
        await asyncio.sleep(0.1)
    again = await asyncio.to_thread(net.post, customer, "Any news? ref 77 again", reply_to=brand_answer)
    await bot.slack.wait_for_async(lambda: any("ref 77 again" in str(m.get("blocks"))
                                               for m in bot.slack.replies("C0CASES", card["ts"])), timeout=20)
    assert len([m for m in bot.slack.messages("C0CASES") if "ref 77" in str(m["blocks"])]) == 1
    assert again.uri != first.uri

