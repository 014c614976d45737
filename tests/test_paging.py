"""The escalation policy through the whole bot: level 1 pages the on-call person at once (escalation channel and
a direct message, with Acknowledge), level 2 after its delay with reminders, Acknowledge stops the climb and is
recorded, Resolve stops everything, and a restart in between neither loses nor repeats a page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Bot, bot_config, running_bot
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import find_action
from tests.kit.webhook import event

POLICY = {"escalation": [{"after": "0s", "notify": "oncall"},
                         {"after": "2s", "notify": ["U0LEAD"], "repeat_every": "1s"}]}


@pytest.fixture
async def bot(database_url: str, fake_slack: FakeSlack) -> Any:
    async with running_bot(database_url, fake_slack, bot_config(**POLICY), target_sweep_every=0.1) as running:
        yield running


def pages(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages("C0ESC") if "not acknowledged yet" in str(m.get("blocks"))]


async def escalate(bot: Bot, text: str) -> dict[str, Any]:
    await bot.post_event(event(f"e-{text}", text, conversation=f"c-{text}"))
    card = await bot.card(text)
    await bot.alice.click(card, "case.escalate", channel="C0CASES")
    view = await bot.slack.wait_for_async(lambda: next(
        (v for v in bot.slack.views().values() if v.get("callback_id") == "modal.escalate"), None))
    await bot.alice.submit(view, {"reason": {"reason": {"type": "plain_text_input", "value": "Legal threat"}}})
    return await bot.card(text, paged="Paged (level 1)")


async def test_the_policy_climbs_until_someone_acknowledges(bot: Bot) -> None:
    card = await escalate(bot, "See you in court")
    assert find_action(card, "case.acknowledge") is not None
    first = await bot.slack.wait_for_async(lambda: pages(bot.slack))
    assert "<@U0CAROL>" in str(first[0]["blocks"]) and "*Level 1*" in str(first[0]["blocks"])
    assert "<@U0CAROL>" not in str(bot.slack.messages("C0ESC")[0]["blocks"])  # the announcement does not ping too
    assert find_action(first[0], "case.acknowledge") is not None
    assert await bot.slack.wait_for_async(lambda: bot.slack.messages("U0CAROL"))  # a direct message as well
    # Nobody acknowledges: level 2 after 2 s, then reminders every second.
    await bot.slack.wait_for_async(lambda: [p for p in pages(bot.slack) if "*Level 2*" in str(p["blocks"])])
    assert "<@U0LEAD>" in str(pages(bot.slack)[-1]["blocks"])
    await bot.slack.wait_for_async(lambda: bot.slack.messages("U0LEAD"))  # and a direct message
    await bot.slack.wait_for_async(lambda: [p for p in pages(bot.slack) if "Level 2 (reminder)" in str(p["blocks"])])
    # Carol acknowledges from her page: the climb stops; the card says who.
    assert (await bot.carol.click(first[0], "case.acknowledge", channel="C0ESC")).status_code == 200
    card = await bot.card("See you in court", acked="acknowledged by Carol")
    assert find_action(card, "case.acknowledge") is None
    count = len(pages(bot.slack))
    await asyncio.sleep(1.5)
    assert len(pages(bot.slack)) == count
    acks = bot.events("acknowledge")
    assert len(acks) == 1 and acks[0].actor == "U0CAROL" and acks[0].detail["seconds"] >= 2
    # Acknowledging again is refused, privately.
    await bot.bob.click(first[0], "case.acknowledge", channel="C0ESC")
    told = await bot.slack.wait_for_async(lambda: bot.slack.ephemerals("U0BOB"))
    assert "Carol already acknowledged" in told[0]["text"]
    stats = str((await bot.alice.command("stats")).json())
    assert "*Escalations acknowledged*\\n1 · median" in stats


async def test_resolve_stops_the_climb(bot: Bot) -> None:
    card = await escalate(bot, "Stop it")
    await bot.slack.wait_for_async(lambda: pages(bot.slack))
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    view = await bot.slack.wait_for_async(lambda: next(
        (v for v in bot.slack.views().values() if v.get("callback_id") == "modal.resolve"), None))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})
    await bot.card("Stop it", status="Resolved")
    await asyncio.sleep(2.5)
    assert [p for p in pages(bot.slack) if "*Level 2" in str(p["blocks"])] == []


async def test_a_restart_in_the_middle_of_the_policy_pages_level_2_once(database_url: str,
                                                                         fake_slack: FakeSlack) -> None:
    config = bot_config(**{"escalation": [{"after": "0s", "notify": "oncall"},
                                          {"after": "2s", "notify": ["U0LEAD"]}]})
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.1) as bot:
        await escalate(bot, "Restart me")
        await fake_slack.wait_for_async(lambda: pages(fake_slack))
    await asyncio.sleep(2.3)  # level 2 falls due while nothing runs
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.1) as bot:
        await fake_slack.wait_for_async(lambda: [p for p in pages(fake_slack) if "*Level 2*" in str(p["blocks"])])
        await asyncio.sleep(0.5)
        assert len([p for p in pages(fake_slack) if "*Level 2*" in str(p["blocks"])]) == 1
        assert len(fake_slack.messages("U0LEAD")) == 1


async def test_oncall_pages_whoever_the_rotation_has_now_and_says_who_is_next(database_url: str,
                                                                               fake_slack: FakeSlack) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=1)
    config = bot_config(
        oncall={"rotations": [{"name": "primary", "people": ["U0BOB", "U0DAN"], "start": start.isoformat(),
                               "length": "1d", "timezone": "UTC"}]},
        escalation=[{"after": "0s", "notify": "oncall"}])
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.1) as bot:
        text = (await bot.alice.command("oncall")).json()["text"]
        assert "*primary*: <@U0BOB> until" in text and "next: <@U0DAN> from" in text
        assert f"<!date^{int((start + timedelta(days=1)).timestamp())}^" in text
        await escalate(bot, "Who is on call?")
        page = (await fake_slack.wait_for_async(lambda: pages(fake_slack)))[0]
        assert "<@U0BOB>" in str(page["blocks"]) and "<@U0CAROL>" not in str(page["blocks"])
        await fake_slack.wait_for_async(lambda: fake_slack.messages("U0BOB"))
        assert not fake_slack.messages("U0CAROL")


async def test_a_hand_off_is_announced_once_with_the_new_person_pinged(database_url: str,
                                                                       fake_slack: FakeSlack) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    config = bot_config(oncall={"rotations": [{"name": "primary", "people": ["U0BOB", "U0DAN"],
                                               "start": start.isoformat(), "length": "1d", "timezone": "UTC"}]})
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.2):
        def announced() -> list[dict[str, Any]]:
            return [m for m in fake_slack.messages("C0ESC") if "is now on call" in str(m.get("blocks"))]

        assert announced() == []
        first = await fake_slack.wait_for_async(announced, timeout=10)
        assert "<@U0BOB> is now on call for *primary* until" in str(first[0]["blocks"])
        await asyncio.sleep(1)
        assert len(announced()) == 1


async def test_the_oncall_user_group_follows_the_rotation(database_url: str, fake_slack: FakeSlack) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    config = bot_config(oncall={
        "rotations": [{"name": "primary", "people": ["U0BOB", "U0DAN"], "start": start.isoformat(), "length": "1d",
                       "timezone": "UTC"}],
        "overrides": [{"who": "U0ERIN", "from": (start + timedelta(hours=1, seconds=6)).isoformat(),
                       "to": (start + timedelta(hours=3)).isoformat()}],
        "usergroup": "S0ONCALL"})
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.2):
        await fake_slack.wait_for_async(lambda: fake_slack.usergroup("S0ONCALL") == ["U0BOB"])
        await fake_slack.wait_for_async(lambda: fake_slack.usergroup("S0ONCALL") == ["U0ERIN"], timeout=15)
        updates = fake_slack.calls("usergroups.users.update")
        assert [c["params"]["users"] for c in updates] == ["U0BOB", "U0ERIN"]  # once per change, not per sweep
