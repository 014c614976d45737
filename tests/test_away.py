"""Away messages: outside business hours a new customer gets one automatic reply saying when the team is back,
never twice within the configured time; the card shows it; inside hours nobody gets one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import ConfigError, config_from_mapping
from tests.conftest import bot_config, running_bot
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.wait import eventually
from tests.kit.webhook import event

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TEXT = "Thanks {first_name}! We're offline right now and back at {next_open}."


def policy(open_now: bool) -> dict[str, Any]:
    today = datetime.now(UTC)
    day = today if open_now else today + timedelta(days=2)
    weekly = {DAYS[day.weekday()]: "00:00-24:00" if open_now else "09:00-10:00"}
    return {"business_hours": {"timezone": "UTC", "weekly": weekly},
            "away_message": {"text": TEXT, "at_most_every": "1h"}}


async def test_outside_hours_a_new_customer_gets_one_away_message(database_url: str, fake_slack: FakeSlack,
                                                                  receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, bot_config(**policy(open_now=False))) as bot:
        await bot.post_event(event("a-1", "Hello?", reply_url=receiver.url + "/reply"))
        delivered = await eventually(receiver.messages)
        back = datetime.now(UTC) + timedelta(days=2)
        assert delivered[0]["text"] == (f"Thanks Jane! We're offline right now and back at "
                                        f"{back:%a %d %b}, 09:00 (UTC).")
        card = await bot.card("Hello?", away="Away message sent")
        assert "*Reply due*" in str(card["blocks"])  # an away message is not an answer
        # The same customer again (another conversation) within the hour: no second away message.
        await bot.post_event(event("a-2", "Still there?", reply_url=receiver.url + "/reply", conversation="other"))
        await bot.card("Still there?")
        await asyncio.sleep(0.5)
        assert len(receiver.messages()) == 1
        # Someone else gets theirs.
        await bot.post_event(event("a-3", "Hi", author_id="cust-9", name="Mo", reply_url=receiver.url + "/reply"))
        await eventually(lambda: len(receiver.messages()) == 2)
        assert receiver.messages()[1]["text"].startswith("Thanks Mo!")


async def test_inside_hours_nobody_gets_an_away_message(database_url: str, fake_slack: FakeSlack,
                                                        receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, bot_config(**policy(open_now=True))) as bot:
        await bot.post_event(event("b-1", "Hello?", reply_url=receiver.url + "/reply"))
        card = await bot.card("Hello?")
        await asyncio.sleep(0.5)
        assert receiver.messages() == [] and "Away message" not in str(card["blocks"])


def test_an_away_message_needs_business_hours() -> None:
    with pytest.raises(ConfigError, match="away_message needs business_hours"):
        config_from_mapping({"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
                             "away_message": {"text": "Back soon"}})
