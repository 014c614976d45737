"""Mastodon end to end: mentions polled from the instance become cards, replies written in Slack go back
as statuses, exactly once, and the polling position survives a restart.

The `bot` fixture polls the fake instance every second; its first poll (no stored cursor) takes the
newest page of mentions.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import httpx
from sqlmodel import Session, func, select

from adapters.mastodon.source import CURSOR
from storage.db import make_engine
from storage.tables import CaseRow, CursorRow
from tests.conftest import Bot, start_bot
from tests.conftest import bot_config as bot_config
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import SlackUser, find_action, shown

Json = dict[str, Any]
JANE = "jane@social.example"
LIMIT = 500 - len(f"@{JANE} ")  # the @acct a reply starts with counts in Mastodon's 500 characters


# ------------------------------------------------------------------------------------------ helpers

async def card_showing(slack: FakeSlack, *texts: str, channel: str = "C0CASES", timeout: float = 10.0) -> Json:
    def find() -> Json | None:
        for message in slack.messages(channel):
            if all(text in shown(message) for text in texts):
                return message
        return None

    return await slack.wait_for_async(find, timeout=timeout)


def cards_showing(slack: FakeSlack, text: str, channel: str = "C0CASES") -> list[Json]:
    return [m for m in slack.messages(channel) if text in shown(m)]


async def thread_showing(slack: FakeSlack, card: Json, text: str, channel: str = "C0CASES") -> Json:
    def find() -> Json | None:
        return next((r for r in slack.replies(channel, card["ts"]) if text in shown(r)), None)

    return await slack.wait_for_async(find)


async def open_reply_modal(bot: Bot, user: SlackUser, card: Json, channel: str) -> Json:
    opened = len(bot.slack.calls("views.open"))
    assert (await user.click(card, "case.reply", channel=channel)).status_code == 200
    await bot.slack.wait_for_async(lambda: len(bot.slack.calls("views.open")) > opened)
    return [v for v in bot.slack.views().values() if v.get("callback_id") == "modal.reply"][-1]


async def submit_reply(bot: Bot, user: SlackUser, view: Json, text: str) -> httpx.Response:
    block = next(b for b in view["blocks"] if b["type"] == "input")
    return await user.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input", "value": text}}})


async def reply_through_modal(bot: Bot, user: SlackUser, card: Json, text: str,
                              channel: str = "C0CASES") -> httpx.Response:
    view = await open_reply_modal(bot, user, card, channel)
    return await submit_reply(bot, user, view, text)


async def resolve_through_modal(bot: Bot, user: SlackUser, card: Json, channel: str = "C0CASES") -> None:
    opened = len(bot.slack.calls("views.open"))
    await user.click(card, "case.resolve", channel=channel)
    await bot.slack.wait_for_async(lambda: len(bot.slack.calls("views.open")) > opened)
    view = [v for v in bot.slack.views().values() if v.get("callback_id") == "modal.resolve"][-1]
    answer = await user.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})
    assert answer.status_code == 200 and answer.content in (b"", b"{}")


def status_posts(mastodon: FakeMastodon) -> list[Json]:
    return [p for p in mastodon.post_requests() if p["path"] == "/api/v1/statuses"]


async def case_count(bot: Bot) -> int:
    def count() -> int:
        with Session(bot.runtime.engine) as session:
            return int(session.exec(select(func.count()).select_from(CaseRow)).one())

    return await asyncio.to_thread(count)


def mrkdwn_lines(message: Json, block_id: str) -> list[str]:
    """A block's mrkdwn as the reader sees it: quote markers dropped, Slack's three entities decoded."""
    block = next(b for b in message["blocks"] if b.get("block_id") == block_id)
    text = block["text"]["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return [line.removeprefix(">").strip() for line in text.splitlines()]


# ------------------------------------------------------------------------------------------ inbound

async def test_a_mention_becomes_a_card_in_plain_text(bot: Bot, mastodon: FakeMastodon) -> None:
    n = mastodon.add_mention(acct=JANE, display_name="Jane Doe", followers=42,
                             content_html="<p>@acme my order <br>never arrived &amp; I&#39;m upset</p>")

    card = await card_showing(bot.slack, "never arrived &amp; I'm upset")
    text = shown(card)
    assert "Mastodon mention" in text
    assert f"*Jane Doe* (@{JANE} · 42 followers)" in text
    lines = mrkdwn_lines(card, "message")
    assert len(lines) == 2 and lines[0].endswith("my order") and lines[1] == "never arrived & I'm upset"
    for markup in ("<p>", "</p>", "<br", "&#39;", "&amp;amp;"):
        assert markup not in str(card["blocks"])
    assert f"<{n['status']['url']}|View on Mastodon>" in text
    assert find_action(card, "case.claim") is not None and find_action(card, "case.reply") is not None


async def test_favourites_and_follows_are_not_cases(bot: Bot, mastodon: FakeMastodon) -> None:
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", content_html="<p>@acme where is my parcel</p>")
    await card_showing(bot.slack, "where is my parcel")

    async with httpx.AsyncClient(base_url=mastodon.url,
                                 headers={"Authorization": f"Bearer {mastodon.token}"}) as api:
        announcement = (await api.post("/api/v1/statuses", data={"status": "Big sale today!"})).json()
    mastodon.add_notification("favourite", acct="fan@other.example", display_name="Fan", status_id=announcement["id"])
    mastodon.add_notification("reblog", acct="fan@other.example", display_name="Fan", status_id=announcement["id"])
    mastodon.add_notification("follow", acct="fan@other.example", display_name="Fan")
    mastodon.add_mention(acct="sam@other.example", display_name="Sam Roe", content_html="<p>@acme is the sale on?</p>")

    await card_showing(bot.slack, "is the sale on?")
    await asyncio.sleep(1.5)  # at least one more poll
    assert len(bot.slack.messages("C0CASES")) == 2
    assert bot.slack.messages("C0DMS") == []
    assert await case_count(bot) == 2
    assert not any("Fan" in shown(m) or "Big sale" in shown(m) for m in bot.slack.messages())


async def test_a_direct_mention_is_a_dm_case_in_the_dm_channel(bot: Bot, mastodon: FakeMastodon) -> None:
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", visibility="direct",
                         content_html="<p>@acme privately: my card was charged twice</p>")

    card = await card_showing(bot.slack, "my card was charged twice", channel="C0DMS")
    assert "Mastodon DM" in shown(card)
    assert cards_showing(bot.slack, "charged twice", channel="C0CASES") == []

    # One case per customer: her next DM joins it.
    second = mastodon.add_mention(acct=JANE, display_name="Jane Doe", visibility="direct",
                                  content_html="<p>@acme order 4711</p>")
    card = await card_showing(bot.slack, "charged twice", "*Messages*\n2", channel="C0DMS")
    await thread_showing(bot.slack, card, "order 4711", channel="C0DMS")
    assert len(bot.slack.messages("C0DMS")) == 1

    submitted = await reply_through_modal(bot, bot.alice, card, "Hi Jane, refunded, sorry!", channel="C0DMS")
    assert submitted.status_code == 200

    await card_showing(bot.slack, "charged twice", "Reply by Alice sent", channel="C0DMS")
    (post,) = status_posts(mastodon)
    assert post["params"]["visibility"] == "direct"
    assert post["params"]["in_reply_to_id"] == second["status"]["id"]  # her latest message
    assert post["params"]["status"] == f"@{JANE} Hi Jane, refunded, sorry!"
    (status,) = mastodon.statuses_by_brand()
    assert status["visibility"] == "direct"


# ------------------------------------------------------------------------------------------ replies

async def test_a_reply_from_slack_reaches_mastodon_once_and_the_card_links_to_it(
        bot: Bot, mastodon: FakeMastodon) -> None:
    n = mastodon.add_mention(acct=JANE, display_name="Jane Doe", content_html="<p>@acme my order never arrived</p>")
    card = await card_showing(bot.slack, "my order never arrived")

    view = await open_reply_modal(bot, bot.alice, card, "C0CASES")
    reply_input = next(b for b in view["blocks"] if b["type"] == "input")
    assert reply_input["element"]["initial_value"] == "Hi Jane, "
    assert reply_input["element"]["max_length"] == LIMIT
    assert f"starting with @{JANE}" in reply_input["hint"]["text"] and f"Up to {LIMIT} characters" in \
        reply_input["hint"]["text"]
    submitted = await submit_reply(bot, bot.alice, view, "Hi Jane, a new parcel is on its way.")
    assert submitted.status_code == 200 and submitted.content in (b"", b"{}")

    card = await card_showing(bot.slack, "my order never arrived", "Reply by Alice sent")
    (post,) = status_posts(mastodon)
    assert post["status"] == 200
    assert post["params"]["in_reply_to_id"] == n["status"]["id"]
    assert post["params"]["status"] == f"@{JANE} Hi Jane, a new parcel is on its way."
    assert post["params"]["visibility"] == "public"
    assert post["idempotency_key"]
    (status,) = mastodon.statuses_by_brand()
    assert status["in_reply_to_id"] == n["status"]["id"]
    assert f"<{status['url']}|view>" in shown(card)
    line = await thread_showing(bot.slack, card, "Reply sent.")
    assert status["url"] in shown(line)

    await asyncio.sleep(1.0)
    assert len(status_posts(mastodon)) == 1 and len(mastodon.statuses_by_brand()) == 1


async def test_a_rate_limited_reply_is_still_delivered_exactly_once(bot: Bot, mastodon: FakeMastodon) -> None:
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", content_html="<p>@acme hello? anyone?</p>")
    card = await card_showing(bot.slack, "hello? anyone?")
    mastodon.fail_next("/api/v1/statuses", status=429, times=1, reset_in=1.0)

    await reply_through_modal(bot, bot.alice, card, "Hi Jane, yes, we are here.")

    card = await card_showing(bot.slack, "hello? anyone?", "Reply by Alice sent", timeout=15)
    posts = status_posts(mastodon)
    assert [p["status"] for p in posts] == [429, 200]
    assert posts[0]["idempotency_key"] == posts[1]["idempotency_key"]
    (status,) = mastodon.statuses_by_brand()
    assert f"<{status['url']}|view>" in shown(card)
    await asyncio.sleep(1.0)
    assert len(mastodon.statuses_by_brand()) == 1


async def test_a_reply_over_the_limit_is_refused_in_the_modal_and_nothing_is_sent(
        bot: Bot, mastodon: FakeMastodon) -> None:
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", content_html="<p>@acme tell me everything</p>")
    card = await card_showing(bot.slack, "tell me everything")

    view = await open_reply_modal(bot, bot.alice, card, "C0CASES")
    too_long = "Hi Jane, " + "x" * (LIMIT - len("Hi Jane, ") + 1)
    assert len(too_long) == LIMIT + 1
    answer = await submit_reply(bot, bot.alice, view, too_long)
    assert answer.status_code == 200
    refusal = answer.json()
    assert refusal["response_action"] == "errors"
    (message,) = refusal["errors"].values()
    assert str(LIMIT) in message

    await asyncio.sleep(1.5)
    assert status_posts(mastodon) == []
    assert "sending" not in shown(bot.slack.message("C0CASES", card["ts"]) or {})

    # Right at the limit it goes, and Mastodon accepts it.
    at_limit = too_long[:-1]
    answer = await submit_reply(bot, bot.alice, view, at_limit)
    assert answer.status_code == 200 and answer.content in (b"", b"{}")
    await card_showing(bot.slack, "tell me everything", "Reply by Alice sent")
    (post,) = status_posts(mastodon)
    assert post["status"] == 200 and post["params"]["status"] == f"@{JANE} {at_limit}"


# ------------------------------------------------------------------------------------------ conversations

async def test_a_customer_answering_our_reply_continues_the_case_and_reopens_it(
        bot: Bot, mastodon: FakeMastodon) -> None:
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", content_html="<p>@acme parcel lost again</p>")
    card = await card_showing(bot.slack, "parcel lost again")
    await reply_through_modal(bot, bot.alice, card, "Hi Jane, we sent a new one.")
    await card_showing(bot.slack, "parcel lost again", "Reply by Alice sent")
    (ours,) = mastodon.statuses_by_brand()

    # She answers our status: same case, two messages, no second card.
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", in_reply_to_id=ours["id"],
                         content_html="<p>@acme thanks, which carrier?</p>")
    card = await card_showing(bot.slack, "parcel lost again", "*Messages*\n2")
    line = await thread_showing(bot.slack, card, "which carrier?")
    assert "New message from the customer" in shown(line)
    assert "Reopened" not in shown(card)
    assert cards_showing(bot.slack, "which carrier?") == []

    # Resolved; she writes again under our status: the case reopens, the card says so.
    await resolve_through_modal(bot, bot.alice, card)
    card = await card_showing(bot.slack, "parcel lost again", "Resolved")
    mastodon.add_mention(acct=JANE, display_name="Jane Doe", in_reply_to_id=ours["id"],
                         content_html="<p>@acme still nothing arrived</p>")
    card = await card_showing(bot.slack, "parcel lost again", "*Messages*\n3", "Reopened")
    assert "Resolved" not in shown(card)
    assert find_action(card, "case.reopen") is None and find_action(card, "case.resolve") is not None
    line = await thread_showing(bot.slack, card, "still nothing arrived")
    assert "Reopened: the customer wrote again" in shown(line)
    assert len(bot.slack.messages("C0CASES")) == 1
    assert await case_count(bot) == 1


# ------------------------------------------------------------------------------------------ restart

async def test_a_restart_neither_misses_nor_repeats_a_mention(
        database_url: str, fake_slack: FakeSlack, mastodon: FakeMastodon) -> None:
    def mention(n: int, words: str) -> Json:
        return mastodon.add_mention(acct=f"user{n}@social.example", display_name=f"User {n}",
                                    content_html=f"<p>@acme {html.escape(words)}</p>")

    mention(1, "one: before the first start")
    runtime, http = await start_bot(database_url, fake_slack, bot_config(mastodon.url))
    try:
        await card_showing(fake_slack, "one: before the first start")
        last_seen = mention(2, "two: while running")
        await card_showing(fake_slack, "two: while running")
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()

    def stored_cursor() -> str | None:
        engine = make_engine(database_url)
        try:
            with Session(engine) as session:
                row = session.get(CursorRow, CURSOR)
                return row.value if row else None
        finally:
            engine.dispose()

    assert await asyncio.to_thread(stored_cursor) == last_seen["id"]

    mention(3, "three: while stopped")
    mention(4, "four: while stopped")
    requests_before = len(mastodon.requests())
    runtime, http = await start_bot(database_url, fake_slack, bot_config(mastodon.url))
    try:
        await card_showing(fake_slack, "three: while stopped")
        await card_showing(fake_slack, "four: while stopped")
        mention(5, "five: after the restart")
        await card_showing(fake_slack, "five: after the restart")
        await asyncio.sleep(1.5)  # more polls: nothing comes twice

        for words in ("one:", "two:", "three:", "four:", "five:"):
            assert len(cards_showing(fake_slack, words)) == 1, words
        assert len(fake_slack.messages("C0CASES")) == 5
        first_poll = next(r for r in mastodon.requests()[requests_before:] if r["path"] == "/api/v1/notifications")
        assert first_poll["query"]["min_id"] == [last_seen["id"]]
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()
