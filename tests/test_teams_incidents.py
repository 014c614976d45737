"""Storms in Teams: many alike mentions become one incident card whose thread lists the members; the team splits a
member off, replies to all of them at once and resolves them together, from the card.

The real bot, a generic webhook source, the fake Bot Connector (what Teams would show) and the fake receiver (what
each customer would get). Local development mode (no App ID), as in test_teams.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from app import Runtime, build
from bot.chat.names import REPLY_ALL, RESOLVE_ALL, SPLIT
from bot.chat.teams.cards import incident_card, members_card
from bot.config import Settings, config_from_mapping
from bot.core.view import IncidentView, MemberView
from storage.db import transaction
from storage.tables import EventRow
from tests.conftest import ENV, bot_config
from tests.fakes.receiver import FakeReceiver
from tests.fakes.teams_connector import FakeBotConnector
from tests.kit.teams import (
    CHANNEL,
    TeamsUser,
    button,
    case_cards,
    field,
    invoked_card,
    opened,
    teams_config,
    text_of,
    thread,
    told,
)
from tests.kit.wait import eventually
from tests.kit.webhook import event, signed

STORM = ("@Acme the app has been down for two hours and I cannot check my order or reach support, third time "
         "this week")
ALIKE = [STORM, "same here " + STORM, STORM + " please", STORM.upper(), STORM + " any update?"]
PEOPLE = [("Jane Doe", "@jane"), ("Mark Smith", "@mark"), ("Olga Berg", "@olga"), ("Pierre Dupont", "@pierre"),
          ("Aiko Tanaka", "@aiko")]
UNRELATED = "Love the new winter jackets, do you ship to Finland as well or only within the EU"
TEMPLATE = "Hi {first_name}, we know the app is down; a fix is rolling out and should be live by 14:00."
STATEMENT = "Our app is down for everyone. A fix is rolling out, everything should work again by 14:00."


@dataclass
class Desk:
    runtime: Runtime
    http: httpx.AsyncClient
    connector: FakeBotConnector
    receiver: FakeReceiver
    dan: TeamsUser

    async def post(self, number: int, text: str, name: str, handle: str) -> None:
        raw, headers = signed(event(f"evt-{number}", text, name=name, handle=handle, author_id=f"cust-{number}",
                                    reply_url=self.receiver.url + "/reply"))
        answer = await self.http.post("/webhooks/generic", content=raw, headers=headers)
        assert answer.status_code == 202, answer.text

    async def card(self, *texts: str) -> dict[str, Any]:
        """A case card in the channel once it shows every one of `texts`: {id, card, updated}."""
        def find() -> dict[str, Any] | None:
            return next((c for c in case_cards(self.connector) if all(t in text_of(c["card"]) for t in texts)),
                        None)

        found = await eventually(find, what=f"a case card showing {texts}")
        assert found is not None
        return found

    def incidents(self) -> list[dict[str, Any]]:
        """Root posts in the channel carrying an incident card: {id, card, updated}."""
        found = []
        for stored in self.connector.activities(CHANNEL):
            for attachment in stored["activity"].get("attachments") or []:
                content = attachment.get("content") or {}
                if not stored.get("reply_to") and text_of(content).startswith("🌀 Incident #"):
                    found.append({"id": stored["id"], "card": content, "updated": stored["updated"]})
        return found

    async def incident(self, *texts: str, **facts: str) -> dict[str, Any]:
        """The incident card once it shows every one of `texts` and `facts` (title: value)."""
        def find() -> dict[str, Any] | None:
            return next((c for c in self.incidents() if all(t in text_of(c["card"]) for t in texts)
                         and all(fact(c["card"], k) == v for k, v in facts.items())), None)

        found = await eventually(find, what=f"an incident card showing {texts} {facts}")
        assert found is not None
        return found

    def digests(self, incident_id: str) -> list[dict[str, Any]]:
        """The members digests in the incident card's thread (the posts offering Split), oldest first."""
        return [{"id": s["id"], "card": s["activity"]["attachments"][0]["content"]}
                for s in thread(self.connector, incident_id)
                if split_action(s["activity"]["attachments"][0]["content"]) is not None]

    def replies(self) -> list[tuple[str, str]]:
        """(event answered, text) of every reply the customers got, sorted; statements are not replies."""
        return sorted((m["in_reply_to"], m["text"]) for m in self.receiver.messages() if m["in_reply_to"])

    def events(self, action: str) -> list[EventRow]:
        with transaction(self.runtime.engine, write=False) as session:
            return list(session.exec(select(EventRow).where(EventRow.action == action).order_by(col(EventRow.id))))


def storm_config(connector: FakeBotConnector, receiver: FakeReceiver) -> dict[str, Any]:
    config = bot_config()
    del config["slack"], config["routes"]
    config["teams"] = teams_config(connector.url)
    config["storms"] = {"threshold": 3, "window": "15m", "update_every": "1s"}
    config["followups"] = []
    config["sources"]["generic"]["default_reply_url"] = receiver.url + "/statements"
    return config


@pytest.fixture
async def desk(database_url: str, connector: FakeBotConnector, receiver: FakeReceiver) -> AsyncIterator[Desk]:
    settings = Settings(database_url=database_url)
    runtime = build(settings, config_from_mapping(storm_config(connector, receiver)), ENV, slack_pace=0.02,
                    scheduler_look_every=0.5, target_sweep_every=0.1)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    try:
        yield Desk(runtime, http, connector, receiver, TeamsUser(http, "29:dan", "Dan Teams",
                                                                 service_url=connector.url))
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


def fact(card: dict[str, Any], title: str) -> str | None:
    for block in card.get("body", []):
        if block.get("type") == "FactSet":
            for item in block["facts"]:
                if item["title"] == title:
                    return str(item["value"])
    return None


def split_action(card: dict[str, Any], case_id: int | None = None) -> dict[str, Any] | None:
    """A Split button anywhere in a card (a digest has one per member), for `case_id` if given."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("verb") == SPLIT and (case_id is None or node.get("data", {}).get("case") == case_id):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return found[0] if found else None


async def storm_of_five(desk: Desk) -> dict[str, Any]:
    """Two alike mentions get their cards; three more make a storm of five; one unrelated mention arrives too."""
    for number in (1, 2):
        await desk.post(number, ALIKE[number - 1], *PEOPLE[number - 1])
        await desk.card(PEOPLE[number - 1][0])
    for number in (3, 4, 5):
        await desk.post(number, ALIKE[number - 1], *PEOPLE[number - 1])
    await desk.post(6, UNRELATED, "Ville Virtanen", "@ville")
    return await desk.incident(Members="5")


async def test_a_storm_is_one_incident_card_listing_its_members_in_its_thread(desk: Desk) -> None:
    shown = await storm_of_five(desk)
    assert len(desk.incidents()) == 1
    card = shown["card"]
    assert "Incident #1: " in text_of(card) and fact(card, "Status") == "🔵 Open"
    assert fact(card, "Platforms") == "Webhook 5"
    assert (fact(card, "Trend (15 min)") or "").endswith("· 5 in the last 5 min")
    assert "third time this week" in text_of(card)  # a sample
    assert [a["title"] for a in card["actions"]] == ["Reply to all", "Resolve all"]

    # The two members whose cards were posted before the storm was recognised say where the case went.
    for name in ("Jane Doe", "Mark Smith"):
        member = await desk.card(name, "Part of incident #1")
        assert button(member["card"], "Split") is not None
    # The unrelated mention is a case of its own; the later members got no card of their own.
    unrelated = await desk.card(UNRELATED)
    assert "Part of incident" not in text_of(unrelated["card"])
    assert len(case_cards(desk.connector)) == 3

    # The thread lists every member exactly once, each with Split.
    def listed() -> str | None:
        text = "\n".join(text_of(d["card"]) for d in desk.digests(shown["id"]))
        return text if all(name in text for name, _ in PEOPLE) else None

    text = await eventually(listed, what="every member listed in the incident's thread")
    assert text is not None
    assert [text.count(name) for name, _ in PEOPLE] == [1] * 5
    assert "Ville Virtanen" not in text
    assert all(split_action(d["card"], case_id) is not None for d in desk.digests(shown["id"])
               for case_id in range(1, 6) if f"#{case_id} ·" in text_of(d["card"]))

    # Jane (the first member, whose case routes the incident) is split off from her own card: her card says it is
    # hers again at once, and the incident card, still updated in place, counts one member less.
    jane = await desk.card("Jane Doe", "Part of incident #1")
    mine = invoked_card(await desk.dan.click(jane["card"], "Split", jane["id"]))
    assert "Part of incident" not in text_of(mine) and button(mine, "Split") is None
    assert button(mine, "Claim") is not None
    await eventually(lambda: [s for s in thread(desk.connector, jane["id"])
                              if "Dan Teams split this case off incident #1" in text_of(s["activity"])])
    after = await desk.incident(Members="4")
    assert after["id"] == shown["id"] and len(desk.incidents()) == 1


async def test_split_reply_to_all_and_resolve_all_from_teams(desk: Desk) -> None:
    shown = await storm_of_five(desk)
    await eventually(lambda: "Pierre Dupont" in "\n".join(text_of(d["card"]) for d in desk.digests(shown["id"])))

    # Pierre's message is about something else after all: split off in the thread, it gets its own card.
    digest = next(d for d in desk.digests(shown["id"]) if "Pierre Dupont" in text_of(d["card"]))
    split = split_action(digest["card"], 4)
    assert split is not None
    answer = (await desk.dan.execute(split["verb"], split["data"], digest["id"])).json()
    assert "Case #4 is a case of its own again" in told(answer)
    own = await desk.card("Pierre Dupont")
    assert "Part of incident" not in text_of(own["card"]) and button(own["card"], "Claim") is not None
    card = (await desk.incident(Members="4"))["card"]
    assert fact(card, "Platforms") == "Webhook 4"
    assert "Dan Teams split case #4" in "\n".join(text_of(s["activity"]) for s in thread(desk.connector,
                                                                                        shown["id"]))
    assert "not part of an incident" in told((await desk.dan.execute(split["verb"], split["data"])).json())

    # Reply to all: the form opens inside the card with the statement (the generic source can post one).
    form = opened(card, "Reply to all")
    assert field(form, "template")["value"] == "Hi {first_name}, " and field(form, "template")["isRequired"]
    assert field(form, "statement")["label"] == "Public statement on Webhook (optional)"
    send = button(form, "Send to all")
    assert send is not None and send["verb"] == REPLY_ALL and send["data"] == {"incident": 1}
    assert "Write the reply" in told(await desk.dan.click(form, "Send to all", shown["id"], template=" "))
    answered = invoked_card(await desk.dan.click(form, "Send to all", shown["id"], template=TEMPLATE,
                                                 statement=STATEMENT))
    assert "Replies: " in text_of(answered) and "replied to all by Dan Teams" in text_of(answered)
    assert button(answered, "Reply to all") is None and button(answered, "Resolve all") is not None

    # Each member still in the incident gets exactly one personal reply; the statement is posted once.
    expected = [(f"evt-{n}", TEMPLATE.replace("{first_name}", PEOPLE[n - 1][0].split()[0])) for n in (1, 2, 3, 5)]
    await eventually(lambda: desk.replies() == expected, what="a personal reply for each member")
    statements = await eventually(lambda: [m for m in desk.receiver.messages() if not m["in_reply_to"]])
    assert [m["text"] for m in statements] == [STATEMENT]
    card = (await desk.incident("Replies: 4 sent · 0 failed · 0 queued",
                                "Public statement on Webhook: ✅ posted"))["card"]
    assert "Hi {first_name}, we know the app is down" in text_of(card)

    # A second Reply to all (from the form Dan still has open) is refused, to him only, and sends nothing.
    requests = len(desk.receiver.requests())
    refused = told(await desk.dan.click(form, "Send to all", shown["id"], template="Hi {first_name}, again"))
    assert "Dan Teams already replied to all members of incident #1" in refused
    await asyncio.sleep(0.3)
    await desk.runtime.outbox.deliver_once()
    assert len(desk.receiver.requests()) == requests and desk.replies() == expected
    assert len(desk.events("reply_all")) == 1

    # Resolve all: every member is resolved, the card says so and offers nothing more.
    resolved = invoked_card(await desk.dan.click(opened(card, "Resolve all"), "Resolve all", shown["id"],
                                                 note="Fixed at 14:00"))
    assert (fact(resolved, "Status") or "").startswith("✅ Resolved by Dan Teams")
    assert "Fixed at 14:00" in text_of(resolved) and not resolved.get("actions")
    await desk.incident("Fixed at 14:00", Members="4")
    for case_id in (1, 2, 3, 5):
        assert (await desk.runtime.services.view(case_id)).status == "resolved"
    assert (await desk.runtime.services.view(4)).status == "open"  # split off: not part of it any more
    for name in ("Jane Doe", "Mark Smith"):
        await desk.card(name, "✅ Resolved")
    assert "already resolved" in told(await desk.dan.click(opened(card, "Resolve all"), "Resolve all",
                                                           shown["id"]))
    assert len(case_cards(desk.connector)) == 4 and len(desk.incidents()) == 1


async def test_a_long_reply_to_all_is_answered_as_under_way_and_still_reaches_everyone(desk: Desk) -> None:
    """Teams retries an invoke it has no answer to within 5 s: the desk answers first and finishes anyway."""
    for number in (1, 2, 3):
        await desk.post(number, ALIKE[number - 1], *PEOPLE[number - 1])
    shown = await desk.incident(Members="3")
    assert desk.runtime.teams is not None
    desk.runtime.teams.desk.answer_within = 0.0
    answer = told(await desk.dan.click(opened(shown["card"], "Reply to all"), "Send to all", shown["id"],
                                       template=TEMPLATE))
    assert "Replying to all members of incident #1" in answer
    expected = [(f"evt-{n}", TEMPLATE.replace("{first_name}", PEOPLE[n - 1][0].split()[0])) for n in (1, 2, 3)]
    await eventually(lambda: desk.replies() == expected, what="a personal reply for each member")
    await desk.incident("Replies: 3 sent · 0 failed · 0 queued")
    assert not [m for m in desk.receiver.messages() if not m["in_reply_to"]]  # no statement was written


# ---- the cards on their own -----------------------------------------------------------------------------------------

HOSTILE = "**bold** [click](https://evil.example) <at>Carol</at> @channel {{DATE(2020-01-01T00:00:00Z)}}"


def incident_view(**changes: Any) -> IncidentView:
    base: dict[str, Any] = dict(
        id=7, label=HOSTILE, status="open", channel="C0CASES", teams_channel=CHANNEL, lead_case_id=42, count=1234,
        platforms=[("x", 1000), ("mastodon", 234)], per_minute=[0] * 10 + [1, 5, 40, 100, 20],
        first_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), last_at=datetime(2026, 12, 1, 9, 14, tzinfo=UTC),
        samples=[HOSTILE, "ä" * 5000, "third"], reply_text=None, statement=None, reply_name=None, replies_sent=0,
        replies_failed=0, replies_queued=0, statements=[], resolved_name=None, resolved_at=None, note=None,
        actions=("reply_all", "resolve_all"), can_announce=("x", "mastodon"))
    base.update(changes)
    return IncidentView(**base)


def test_the_incident_card_keeps_customer_text_literal_and_shows_the_storm() -> None:
    card = incident_card(incident_view())
    for block in json.loads(json.dumps(card))["body"]:
        if block.get("type") == "TextBlock":  # markdown-capable: never customer text
            assert "evil" not in block["text"] and "<at>" not in block["text"]
    assert "entities" not in json.dumps(card)
    assert text_of(card).startswith(f"🌀 Incident #7: \n{HOSTILE}")
    assert fact(card, "Members") == "1,234" and fact(card, "Platforms") == "X 1,000 · Mastodon 234"
    assert fact(card, "Trend (15 min)") == "▁▁▁▁▁▁▁▁▁▁▂▂▄█▃ · 166 in the last 5 min"
    assert "ä" * 299 + "…" in text_of(card) and "ä" * 300 not in text_of(card)
    form = opened(card, "Reply to all")
    assert field(form, "statement")["label"] == "Public statement on X, Mastodon (optional)"
    assert [(a["title"], a["verb"], a["data"]) for a in form["actions"]] == [("Send to all", REPLY_ALL,
                                                                               {"incident": 7})]
    resolve = opened(card, "Resolve all")
    assert [(a["verb"], a["data"]) for a in resolve["actions"]] == [(RESOLVE_ALL, {"incident": 7})]
    # No platform can take a statement: no statement input.
    quiet = opened(incident_card(incident_view(can_announce=())), "Reply to all")
    assert [item["id"] for item in quiet["body"] if "id" in item] == ["template"]


def test_the_incident_card_shows_progress_statements_and_who_resolved() -> None:
    card = incident_card(incident_view(
        status="resolved", reply_text="Hi {first_name}, sorry!", reply_name="Dan", replies_sent=120,
        replies_failed=3, replies_queued=277, statement="We are on it.",
        statements=[("x", "sent", "https://x.example/s/1"), ("mastodon", "failed", None)], resolved_name="Erin",
        resolved_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), note="Fixed", actions=()))
    shown = text_of(card)
    assert "📤 Replies: 120 sent · 3 failed · 277 queued" in shown and " · replied to all by Dan" in shown
    assert "📣 Public statement on X: ✅ posted" in shown and "📣 Public statement on Mastodon: ❌ failed" in shown
    assert fact(card, "Status") == "✅ Resolved by Erin on {{DATE(2026-12-01T10:00:00Z, SHORT)}} " \
                                   "{{TIME(2026-12-01T10:00:00Z)}}"
    assert [(a["type"], a["title"]) for a in card["actions"]] == [("Action.OpenUrl", "Statement on X")]


def test_a_members_digest_of_long_texts_stays_under_teams_card_size() -> None:
    members = [MemberView(case_id=n, platform="x", customer_name=f"{'😡' * 80} {n}", customer_handle="@h" * 50,
                          text="🙂" * 3000 + HOSTILE, url="https://x.example/s/" + str(n), status="open")
               for n in range(100, 125)]
    card = members_card(members)
    assert len(json.dumps(card).encode()) < 28_000
    assert [split_action(card, n) is not None for n in range(100, 125)] == [True] * 25
    assert all(f"#{n} ·" in text_of(card) for n in range(100, 125))
    for block in card["body"]:
        assert block.get("type") != "TextBlock" or "😡" not in block["text"]
    short = members_card([MemberView(case_id=1, platform="generic", customer_name="Jane Doe",
                                     customer_handle="@jane", text=HOSTILE, url=None, status="resolved")])
    assert HOSTILE in text_of(short) and "Jane Doe" in text_of(short) and "✅ resolved" in text_of(short)
    assert split_action(short, 1) == {"type": "Action.Execute", "title": "Split", "verb": SPLIT,
                                      "data": {"case": 1, "digest": True}}


def test_an_incident_card_of_long_emoji_texts_stays_under_teams_card_size() -> None:
    huge = "😡" * 3000
    card = incident_card(incident_view(label=huge, samples=[huge] * 3, reply_text=huge, reply_name="Dan",
                                       statement=huge, statements=[("x", "sent", None)], note=huge))
    assert len(json.dumps(card).encode()) < 28_000
    assert "Personal reply: " in text_of(card) and "😡" * 20 in text_of(card)
    assert fact(card, "Members") == "1,234" and button(card, "Reply to all") is not None


def test_the_stats_card_lists_incidents_with_their_size() -> None:
    from bot.chat.teams.cards import stats_card
    from bot.core.view import StatsView

    view = StatsView(period="today", since=datetime(2026, 12, 2, tzinfo=UTC), new=12, open_now=3, claimed_now=0,
                     resolved=9, escalated=0, by_platform_kind=[], first_response_median_s=None,
                     first_response_p90_s=None, resolution_median_s=None, response_rate=None, per_person=[],
                     incidents=[("#appdown", 9813, "open"), ("near-duplicates of: “<at>x</at> down”", 40, "resolved")])
    card = stats_card(view)
    shown = text_of(card)
    assert "Incidents (storms)" in shown and "#appdown\n: 9,813 members (open)" in shown
    assert "40 members (resolved)" in shown
    runs = [r for block in card["body"] if block["type"] == "RichTextBlock" for r in block["inlines"]]
    label = next(r for r in runs if "<at>x</at>" in r["text"])
    assert label["type"] == "TextRun", "a customer-derived label is a TextRun: literal text, never markup"
