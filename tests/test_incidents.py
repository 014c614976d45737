"""Storms in Slack: alike new mentions become one incident card with the members in its thread; Split, Reply to all
(each member answered once, paced, progress on the card) and Resolve all (check-ins sent when due)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from typing import Any

from sqlmodel import col, select

from bot.config import ConfigError, config_from_mapping
from storage.db import transaction
from storage.tables import CaseRow, FollowupRow, IncidentRow
from tests.conftest import Bot, bot_config, running_bot
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import find_action, shown
from tests.kit.wait import eventually
from tests.kit.webhook import event

STORM = {"threshold": 3, "window": "15m", "update_every": "1s", "reply_pace": {"generic": 600}}
NAMES = ["Ana Silva", "Ben Okafor", "Chen Wei", "Dana Cruz", "Eli Novak", "Fay Lund"]


def storm_config(**overrides: Any) -> dict[str, Any]:
    return bot_config(storms={**STORM, **overrides.pop("storms", {})}, **overrides)


def complaint(number: int, reply_url: str) -> dict[str, Any]:
    """Near-duplicate copies of one complaint from different customers (order numbers and wording differ a bit)."""
    name = NAMES[number % len(NAMES)]
    return event(f"storm-{number}", f"@acme your app crashes at checkout again, order {1000 + number} is stuck "
                                    "and I cannot pay", author_id=f"cust-{number}", name=name,
                 handle=f"@{name.split()[0].lower()}{number}", conversation=f"conv-{number}", reply_url=reply_url)


def incident_cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages("C0CASES") if ":cyclone: *Incident #" in str(m.get("blocks"))]


def case_cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages("C0CASES") if ":cyclone: *Incident #" not in str(m.get("blocks"))]


async def incident_card(bot: Bot, **match: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        cards = incident_cards(bot.slack)
        if cards and all(v in shown(cards[0]) for v in match.values()):
            return cards[0]
        return None

    return await bot.slack.wait_for_async(find)


def members_listed(slack: FakeSlack, card: dict[str, Any]) -> list[str]:
    """Case numbers of the members listed in the incident card's thread."""
    listed = []
    for reply in slack.replies("C0CASES", card["ts"]):
        for block in reply.get("blocks") or []:
            if str(block.get("block_id", "")).startswith("member."):
                listed.append(block["block_id"].removeprefix("member."))
    return listed


def cases(bot: Bot) -> list[CaseRow]:
    with transaction(bot.runtime.engine, write=False) as session:
        return list(session.exec(select(CaseRow).order_by(col(CaseRow.id))))


async def storm(bot: Bot, receiver: FakeReceiver, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        response = await bot.post_event(complaint(number, receiver.url + "/reply"))
        assert response.status_code == 202, response.text


async def test_alike_mentions_become_one_incident_and_unrelated_ones_keep_their_own_cards(
        database_url: str, fake_slack: FakeSlack, receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, storm_config()) as bot:
        await storm(bot, receiver, 2)
        await bot.card("order 1000", **{"a": "Claim"})
        await bot.card("order 1001")
        await bot.post_event(event("other-1", "Do you ship to Iceland? Asking for a friend with a big family",
                                   author_id="cust-x", name="Ola Nord", conversation="other"))
        await storm(bot, receiver, 3, start=2)
        card = await incident_card(bot, count="*5* alike messages")
        # The unrelated question keeps its own card (posted after the incident card, which goes first).
        iceland = await bot.card("Iceland")
        assert ":cyclone:" not in str(iceland["blocks"])
        # One incident card; the three members after the first two got no card of their own.
        assert len(incident_cards(fake_slack)) == 1
        texts = [str(m["blocks"]) for m in case_cards(fake_slack)]
        assert sum("order 100" in t for t in texts) == 2
        # The first two members' cards now say where the case went.
        first = await bot.card("order 1000", part="Part of incident #")
        assert find_action(first, "incident.split") is not None
        assert ("near-duplicates of" in shown(card) and "Generic" in shown(card)) or "Webhook" in shown(card)
        # Every member is listed in the thread, once.
        member_ids = [str(c.id) for c in cases(bot) if c.incident_id is not None]
        assert len(member_ids) == 5
        listed = await eventually(lambda: members_listed(fake_slack, card) if
                                  len(members_listed(fake_slack, card)) == 5 else None)
        assert sorted(listed) == sorted(member_ids)
        # A sixth joins: the card's count follows, and it is listed too.
        await storm(bot, receiver, 1, start=5)
        await incident_card(bot, count="*6* alike messages")
        await eventually(lambda: len(members_listed(fake_slack, card)) == 6)
        assert len(incident_cards(fake_slack)) == 1
        assert [e.case_id for e in bot.events("grouped")] == [int(i) for i in sorted(member_ids, key=int)] + [
            max(c.id or 0 for c in cases(bot))]


async def test_split_makes_a_member_its_own_case_again(database_url: str, fake_slack: FakeSlack,
                                                       receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, storm_config()) as bot:
        await storm(bot, receiver, 4)
        card = await incident_card(bot, count="*4* alike messages")
        await eventually(lambda: len(members_listed(fake_slack, card)) == 4)
        digest = next(r for r in fake_slack.replies("C0CASES", card["ts"]) if "member." in str(r.get("blocks")))
        last = max(c.id or 0 for c in cases(bot))
        block = next(b for b in digest["blocks"] if b.get("block_id") == f"member.{last}")
        assert block["accessory"]["action_id"] == "incident.split"
        await bot.bob.post(_click(digest, block["accessory"], "U0BOB", "Bob"))
        own = await bot.card("order 1003", claim="Claim")
        assert ":cyclone:" not in str(own["blocks"]) and "Reply due" in str(own["blocks"])
        await incident_card(bot, count="*3* alike messages")
        assert [c.incident_id for c in cases(bot) if c.id == last] == [None]
        # A second click on the same member line changes nothing and says why.
        await bot.alice.post(_click(digest, block["accessory"], "U0ALICE", "Alice"))
        told = await eventually(lambda: fake_slack.ephemerals("U0ALICE"))
        assert "not part of an incident" in told[0]["text"]


def _click(message: dict[str, Any], element: dict[str, Any], user_id: str, name: str) -> dict[str, Any]:
    from tests.kit.slack import block_action

    payload = block_action(user_id=user_id, name=name, action_id=element["action_id"], value=element["value"],
                           channel="C0CASES", message=message)
    return payload


async def test_reply_to_all_answers_each_member_once_and_later_members_too(database_url: str, fake_slack: FakeSlack,
                                                                          receiver: FakeReceiver) -> None:
    config = storm_config()
    config["sources"]["generic"]["default_reply_url"] = receiver.url + "/reply"
    async with running_bot(database_url, fake_slack, config) as bot:
        await storm(bot, receiver, 4)
        card = await incident_card(bot, count="*4* alike messages")
        await bot.alice.click(card, "incident.reply_all", channel="C0CASES")
        view = await eventually(lambda: next(iter(fake_slack.views().values())))
        assert "Public statement (optional)" in json.dumps(view["blocks"])
        template = "Hi {first_name}, we know checkout is failing and are on it. Sorry!"
        response = await bot.alice.submit(view, {"template": {"template": {"type": "plain_text_input",
                                                                           "value": template}},
                                                 "statement": {"statement": {"type": "plain_text_input",
                                                                             "value": "Checkout is down, fix soon."}}})
        assert response.status_code == 200 and response.text in ("", "null"), response.text
        await eventually(lambda: len(receiver.messages()) >= 4)
        # The card shows progress, then everything sent; the Reply to all button is gone.
        done = await incident_card(bot, progress="4 of 4 sent")
        assert find_action(done, "incident.reply_all") is None
        # A fifth member joins afterwards and gets the same reply; nobody gets two.
        await storm(bot, receiver, 1, start=4)
        await eventually(lambda: len([m for m in receiver.messages() if "checkout is failing" in m["text"]]) == 5)
        await asyncio.sleep(0.5)
        replies = [m for m in receiver.messages() if m.get("in_reply_to")]
        per_member = Counter(m["in_reply_to"] for m in replies)
        assert sorted(per_member.values()) == [1] * 5
        firsts = sorted(m["text"].split(",")[0] for m in replies)
        assert firsts == sorted(f"Hi {NAMES[n].split()[0]}" for n in range(5))
        # The statement went once to the platform (the generic receiver takes one).
        statements = [m for m in receiver.messages() if m.get("statement")]
        assert [m["text"] for m in statements] == ["Checkout is down, fix soon."]
        await incident_card(bot, progress="5 of 5 sent")
        # Reply to all again (a stale card): refused, nothing sent.
        await bot.bob.click(card, "incident.reply_all", channel="C0CASES")
        told = await eventually(lambda: fake_slack.ephemerals("U0BOB"))
        assert "already replied to all" in told[0]["text"]
        assert len(receiver.messages()) == 6


async def test_resolve_all_resolves_every_member_and_sends_check_ins_when_due(
        database_url: str, fake_slack: FakeSlack, receiver: FakeReceiver) -> None:
    config = storm_config(followups=[{"after": "1s", "text": "Hi {first_name}, is checkout working for you now?"}])
    async with running_bot(database_url, fake_slack, config, target_sweep_every=0.2) as bot:
        await storm(bot, receiver, 4)
        card = await incident_card(bot, count="*4* alike messages")
        await bot.alice.click(card, "incident.resolve_all", channel="C0CASES")
        view = await eventually(lambda: next(iter(fake_slack.views().values())))
        assert "check-in" in json.dumps(view["blocks"])
        await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": "Fixed in 2.3.1"}}})
        resolved = await incident_card(bot, resolved="Resolved by Alice")
        assert find_action(resolved, "incident.resolve_all") is None
        assert {c.status for c in cases(bot)} == {"resolved"}
        checkins = await eventually(lambda: [m for m in receiver.messages() if "is checkout working" in m["text"]]
                                    if len(receiver.messages()) >= 4 else None, timeout=15)
        assert sorted(Counter(m["in_reply_to"] for m in checkins).values()) == [1, 1, 1, 1]
        with transaction(bot.runtime.engine, write=False) as session:
            assert {f.status for f in session.exec(select(FollowupRow))} == {"sent"}
            incident = session.exec(select(IncidentRow)).one()
            assert incident.status == "resolved" and incident.note == "Fixed in 2.3.1"
        # No prompt per member in any thread: the check-ins went out by themselves.
        assert not [m for m in fake_slack.calls("chat.postMessage") if "Send check-in" in json.dumps(m)]


async def test_without_storms_configured_alike_mentions_keep_their_own_cards(
        database_url: str, fake_slack: FakeSlack, receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, bot_config()) as bot:
        await storm(bot, receiver, 4)
        await eventually(lambda: len(case_cards(fake_slack)) == 4)
        await asyncio.sleep(0.3)
        assert incident_cards(fake_slack) == []


def test_storm_settings_are_checked() -> None:
    try:
        config_from_mapping(bot_config(storms={"threshold": 1}))
    except ConfigError as error:
        assert "storms.threshold" in str(error)
    else:
        raise AssertionError("a threshold of 1 was accepted")
    config = config_from_mapping(bot_config(storms={"ignore": ["#Acme", "https://www.acme.com/", "outage"]}))
    assert config.storms is not None
    assert config.storms.ignored_features() == ["tag:acme", "link:acme.com", "kw:outage"]


async def test_during_a_storm_every_call_to_the_channel_keeps_slacks_pace(database_url: str, fake_slack: FakeSlack,
                                                                          receiver: FakeReceiver) -> None:
    """Posts and updates alike count against a channel's pace; the incident card goes first, member lists last,
    and nothing is dropped."""
    async with running_bot(database_url, fake_slack, storm_config(storms={"update_every": "0.5s"}),
                           slack_pace=0.25) as bot:
        await bot.post_event(event("q-1", "Do you ship to Iceland? Asking for a big family order",
                                   author_id="cust-q", conversation="q"))
        await storm(bot, receiver, 60)
        card = await incident_card(bot, count="*60* alike messages")
        await eventually(lambda: len(members_listed(fake_slack, card)) == 60, timeout=30)
        await bot.card("Iceland")
        calls = sorted(c["time"] for c in fake_slack.calls() if c["method"] in ("chat.postMessage", "chat.update")
                       and c["params"].get("channel") == "C0CASES" and c["status"] == 200)
        gaps = [b - a for a, b in itertools.pairwise(calls)]
        assert min(gaps) >= 0.2, f"two calls to the channel came {min(gaps):.3f}s apart"
        assert len(incident_cards(fake_slack)) == 1
        listed = members_listed(fake_slack, card)
        assert len(listed) == len(set(listed)) == 60


async def test_a_restart_in_the_middle_of_a_storm_keeps_one_incident(database_url: str, fake_slack: FakeSlack,
                                                                     receiver: FakeReceiver) -> None:
    """The detector lives in memory; at start it replays the last window, so the storm goes on in the same card."""
    async with running_bot(database_url, fake_slack, storm_config()) as bot:
        await storm(bot, receiver, 4)
        await incident_card(bot, count="*4* alike messages")
    async with running_bot(database_url, fake_slack, storm_config()) as bot:
        await storm(bot, receiver, 2, start=4)
        card = await incident_card(bot, count="*6* alike messages")
        await eventually(lambda: len(members_listed(fake_slack, card)) == 6)
        assert len(incident_cards(fake_slack)) == 1
        # At most the two before the threshold have cards of their own (if posted before the storm was seen).
        assert all("order 100" in str(m["blocks"]) and ("order 1000" in str(m["blocks"]) or "order 1001" in
                                                         str(m["blocks"])) for m in case_cards(fake_slack))


async def test_stats_list_the_incidents_with_their_size(database_url: str, fake_slack: FakeSlack,
                                                        receiver: FakeReceiver) -> None:
    async with running_bot(database_url, fake_slack, storm_config()) as bot:
        await storm(bot, receiver, 5)
        await incident_card(bot, count="*5* alike messages")
        response = await bot.alice.command("stats today")
        answer = response.json()
        text = shown(answer)
        assert "*Incidents (storms)*" in text
        assert "5 members (open)" in text and "near-duplicates of" in text
