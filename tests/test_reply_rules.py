"""Platform rules beyond a character count (Messenger's 24-hour window, Bluesky's graphemes): the reply
modal says what the platform allows now, refuses what it would refuse, and a closed window opens no modal."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.model import Delivery
from bot.core.ports import ReplyRule
from tests.conftest import Bot
from tests.kit.wait import eventually
from tests.test_actions import new_card


class RuledSender:
    """A platform that allows 10 characters per reply and answers only within an hour of the customer."""

    platform = "generic"
    max_length = 500

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.window = timedelta(hours=1)

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        return None if len(text) <= 10 else f"Ruled allows 10 characters; this reply has {len(text)}."

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        assert last_inbound_at is not None and last_inbound_at.tzinfo is not None
        if datetime.now(UTC) - last_inbound_at > self.window:
            return ReplyRule(refusal="The customer wrote over an hour ago: Ruled allows no reply now.")
        return ReplyRule(notice="Answer within the hour: Ruled closes the conversation after that.")

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        self.sent.append(text)
        return Delivery(platform_id=f"ruled-{len(self.sent)}", url=None)


async def test_the_modal_shows_the_rule_and_submit_enforces_the_platform_count(bot: Bot) -> None:
    sender = RuledSender()
    bot.runtime.services.senders["generic"] = sender
    card = await new_card(bot, "Can you help?")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    assert "Answer within the hour" in json.dumps(view["blocks"])
    block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input")
    refused = await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input",
                                                                   "value": "Hi Jane, on it!"}}})
    assert refused.json() == {"response_action": "errors",
                              "errors": {block: "Ruled allows 10 characters; this reply has 15."}}
    accepted = await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input", "value": "On it!"}}})
    assert accepted.status_code == 200 and not accepted.content
    await eventually(lambda: sender.sent)
    assert sender.sent == ["On it!"]


async def test_a_closed_window_opens_no_modal_and_says_why(bot: Bot) -> None:
    sender = RuledSender()
    sender.window = timedelta(seconds=-1)  # already closed
    bot.runtime.services.senders["generic"] = sender
    card = await new_card(bot, "Anyone there?")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    told = await eventually(lambda: bot.slack.ephemerals("U0ALICE"))
    assert told[0]["text"] == "The customer wrote over an hour ago: Ruled allows no reply now."
    assert bot.slack.views() == {}


class StalledSender(RuledSender):
    """A platform that takes its time: the send hangs until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        return None

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        await self.release.wait()
        return await super().send(reply_to=reply_to, text=text, idempotency_key=idempotency_key)


async def test_a_stalled_platform_never_holds_back_the_cards(bot: Bot) -> None:
    sender = StalledSender()
    bot.runtime.services.senders["generic"] = sender
    card = await new_card(bot, "First customer")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input")
    await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input", "value": "Hi!"}}})
    await asyncio.sleep(0.3)  # the send is in flight, stalled
    started = time.monotonic()
    await new_card(bot, "Second customer, meanwhile")  # its card is posted while the send still hangs
    assert time.monotonic() - started < 5 and sender.sent == []
    sender.release.set()
    await eventually(lambda: sender.sent == ["Hi!"])
