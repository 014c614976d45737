"""Response-time targets through the whole bot: the priority and when the reply is due on the card, the card
changing at 80% (due soon) and 100% (missed, escalated automatically, once), a reply meeting the target, the
next-response target when the customer writes again, resolve stopping the clock, and a restart in between.

Short targets (seconds) and a fast sweep keep it quick; business-hour arithmetic has its own tests
(test_hours.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select

from storage.db import transaction
from tests.conftest import Bot, bot_config, running_bot
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.wait import eventually
from tests.kit.webhook import event

POLICY = {"targets": {"urgent": "1s", "high": "2s", "normal": "3s", "low": "1h"},
          "complaint_words": {"en": ["refund", "never arrived"], "de": ["kaputt"]},
          "vip": {"handles": ["@bigcustomer"], "followers_at_least": 50_000}}


@pytest.fixture
async def bot(database_url: str, fake_slack: FakeSlack) -> Any:
    async with running_bot(database_url, fake_slack, bot_config(**POLICY), target_sweep_every=0.1) as running:
        yield running


def fields(message: dict[str, Any]) -> str:
    return str(message["blocks"])


async def test_priority_and_its_reasons_are_on_the_card(bot: Bot) -> None:
    await bot.post_event(event("p-1", "Love it!", name="Ann Fan", author_id="a1"))
    await bot.post_event(event("p-2", "I want a refund", name="Ben Angry", author_id="b1"))
    await bot.post_event(event("p-3", "Der Deckel ist kaputt", name="Big Co", handle="@BigCustomer",
                               author_id="c1", kind="dm"))
    normal = await bot.card("Love it!")
    assert ":white_circle: Normal" in fields(normal) and "*Reply due*" in fields(normal)
    high = await bot.card("I want a refund")
    assert ":large_orange_circle: High" in fields(high) and "complaint (en: “refund”)" in fields(high)
    urgent = await bot.card("Der Deckel ist kaputt")
    assert ":red_circle: Urgent" in fields(urgent)
    assert "VIP (@BigCustomer), complaint (de: “kaputt”), direct message" in fields(urgent)


async def test_an_unanswered_case_goes_due_soon_then_missed_and_is_escalated_once(bot: Bot) -> None:
    await bot.post_event(event("t-1", "Hello? Anyone?"))
    await bot.card("Hello? Anyone?", sent=":white_circle: Normal")
    soon = await bot.card("Hello? Anyone?", warn=":warning: due soon")  # after 80% of 3 s
    assert "target missed" not in fields(soon)
    missed = await bot.card("Hello? Anyone?", missed=":red_circle: target missed")
    assert ":rotating_light: Escalated" in fields(missed)
    escalations = await bot.slack.wait_for_async(lambda: bot.slack.messages("C0ESC"))
    assert "<@U0CAROL>" in escalations[0]["text"] + str(escalations[0]["blocks"])
    assert "the 3s target for Normal priority is missed" in str(escalations[0]["blocks"])
    await asyncio.sleep(0.5)  # more sweeps change nothing
    assert len(bot.slack.messages("C0ESC")) == 1
    assert len(bot.events("target_missed")) == 1 and len(bot.events("escalate")) == 1
    thread = " ".join(str(m.get("blocks")) for m in bot.slack.replies("C0CASES", missed["ts"]))
    assert "Reply due soon" in thread and "SocialOps escalated the case" in thread


async def test_a_reply_in_time_meets_the_target_and_a_new_message_starts_the_next(bot: Bot,
                                                                                receiver: FakeReceiver) -> None:
    await bot.post_event(event("r-1", "Where is my parcel?", reply_url=receiver.url + "/reply", conversation="c-r"))
    card = await bot.card("Where is my parcel?")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await bot.slack.wait_for_async(lambda: next(iter(bot.slack.views().values()), None))
    block = next(b for b in view["blocks"] if b["type"] == "input")
    await bot.alice.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input",
                                                                     "value": "Hi Jane, on its way!"}}})
    card = await bot.card("Where is my parcel?", sent="Reply by Alice sent")
    assert "*Reply due*" not in fields(card)
    assert len(bot.events("target_met")) == 1
    await asyncio.sleep(3.2)  # the old deadline passes: nothing happens
    assert bot.slack.messages("C0ESC") == [] and bot.events("target_missed") == []
    # The customer writes again: a reply is owed again, with a new deadline.
    await bot.post_event(event("r-2", "Thanks, and when exactly?", reply_url=receiver.url + "/reply",
                               conversation="c-r"))
    card = await bot.card("Where is my parcel?", due="*Reply due*")
    assert "*Messages*\\n2" in fields(card) and len(bot.slack.messages("C0CASES")) == 1


async def test_resolving_stops_the_clock(bot: Bot) -> None:
    await bot.post_event(event("s-1", "Never mind, found it"))
    card = await bot.card("Never mind, found it")
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    view = await bot.slack.wait_for_async(lambda: next(iter(bot.slack.views().values()), None))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})
    card = await bot.card("Never mind, found it", status="Resolved")
    assert "*Reply due*" not in fields(card)
    await asyncio.sleep(3.3)
    assert bot.slack.messages("C0ESC") == [] and bot.events("target_missed") == []


async def test_a_restart_in_between_keeps_the_deadline(database_url: str, fake_slack: FakeSlack) -> None:
    config = bot_config(**POLICY)
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.1) as bot:
        await bot.post_event(event("x-1", "Refund please, it never arrived"))  # high: 2 s
        await bot.card("Refund please", priority=":large_orange_circle: High")
    await asyncio.sleep(2.2)  # the target passes while nothing runs
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.1) as bot:
        await bot.card("Refund please", missed=":red_circle: target missed")
        await eventually(lambda: fake_slack.messages("C0ESC"))
        await asyncio.sleep(0.4)
        assert len(fake_slack.messages("C0ESC")) == 1


async def test_the_owner_changes_the_priority_from_the_card(bot: Bot) -> None:
    await bot.post_event(event("c-1", "Question about sizes"))
    card = await bot.card("Question about sizes", priority=":white_circle: Normal")
    # Not the owner: refused privately, nothing changes.
    await bot.bob.choose(card, "case.priority", "1:urgent", channel="C0CASES")
    told = await bot.slack.wait_for_async(lambda: bot.slack.ephemerals("U0BOB"))
    assert "Claim case #1 first" in told[0]["text"]
    await bot.alice.click(card, "case.claim", channel="C0CASES")
    card = await bot.card("Question about sizes", owner="<@U0ALICE>")
    await bot.alice.choose(card, "case.priority", "1:low", channel="C0CASES")
    card = await bot.card("Question about sizes", priority=":large_blue_circle: Low", by="set by Alice")
    assert "missed" not in fields(card)
    await asyncio.sleep(3.3)  # the normal target (3 s) would have passed; low is an hour
    assert bot.slack.messages("C0ESC") == [] and bot.events("target_missed") == []
    thread = " ".join(str(m.get("blocks")) for m in bot.slack.replies("C0CASES", card["ts"]))
    assert "Alice set the priority to Low (was Normal)" in thread
    assert [e.detail for e in bot.events("priority")] == [{"before": "normal", "after": "low"}]


async def test_stats_show_targets_met_and_missed_and_a_rebuild_agrees(bot: Bot, receiver: FakeReceiver) -> None:
    from bot.services import rollups
    from storage.tables import DailyCountRow

    await bot.post_event(event("m-1", "Quick one", reply_url=receiver.url + "/reply"))
    await bot.post_event(event("m-2", "I want a refund", author_id="cust-2"))  # high, 2 s: missed
    card = await bot.card("Quick one")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await bot.slack.wait_for_async(lambda: next(iter(bot.slack.views().values()), None))
    block = next(b for b in view["blocks"] if b["type"] == "input")
    await bot.alice.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input", "value": "Hi!"}}})
    await bot.card("Quick one", sent="Reply by Alice sent")
    await bot.card("I want a refund", missed="target missed")
    await eventually(lambda: len(bot.events("target_met")) == 1 and len(bot.events("target_missed")) == 1)
    answer = await bot.alice.command("stats")
    shown = str(answer.json())
    assert "*Within target*\\n50%" in shown and "*Targets missed*\\n1 high" in shown

    def counts() -> set[tuple[str, str, str, int]]:
        with transaction(bot.runtime.engine, write=False) as session:
            return {(r.metric, r.dim1, r.dim2, r.value) for r in session.exec(select(DailyCountRow))}

    before = counts()
    assert ("target_met", "normal", "", 1) in before and ("target_missed", "high", "", 1) in before
    rollups.rebuild(bot.runtime.engine)
    assert counts() == before
