"""The Teams desk end to end: Bot Framework activities posted to /api/messages, cards sent to and updated at a
local fake Bot Connector (Teams' serviceUrl), replies reaching the customer exactly once.

Local development mode here (no App ID); authentication has its own tests in test_teams_auth.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import Runtime, build
from bot.config import Settings, config_from_mapping
from tests.conftest import ENV, bot_config
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_connector import FakeBotConnector
from tests.kit.slack import SIGNING_SECRET, SlackUser, find_action
from tests.kit.teams import (
    CHANNEL,
    ESCALATIONS,
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


@dataclass
class Desk:
    runtime: Runtime
    http: httpx.AsyncClient
    connector: FakeBotConnector
    dan: TeamsUser
    erin: TeamsUser

    async def post_event(self, body: dict[str, Any]) -> httpx.Response:
        raw, headers = signed(body)
        return await self.http.post("/webhooks/generic", content=raw, headers=headers)

    async def card(self, *texts: str) -> dict[str, Any]:
        """The case card in the Teams channel once it shows every one of `texts`: {id, card, updated}."""
        def find() -> dict[str, Any] | None:
            for found in case_cards(self.connector):
                shown = text_of(found["card"])
                if all(text in shown for text in texts):
                    return found
            return None

        return await eventually(find, what=f"a Teams card showing {texts}")


async def start(database_url: str, config: dict[str, Any], connector: FakeBotConnector,
                slack: FakeSlack | None = None, env: dict[str, str] | None = None) -> tuple[Runtime, httpx.AsyncClient]:
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test" if slack else None,
                        slack_signing_secret=SIGNING_SECRET if slack else None,
                        slack_api_url=slack.url if slack else None)
    runtime = build(settings, config_from_mapping(config), {**ENV, **(env or {})}, slack_pace=0.02,
                    scheduler_look_every=0.5, target_sweep_every=0.1)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    return runtime, http


def teams_only(connector: FakeBotConnector) -> dict[str, Any]:
    config = bot_config()
    del config["slack"], config["routes"]
    config["teams"] = teams_config(connector.url)
    return config


@pytest.fixture
async def desk(database_url: str, connector: FakeBotConnector) -> AsyncIterator[Desk]:
    runtime, http = await start(database_url, teams_only(connector), connector)
    try:
        yield Desk(runtime, http, connector, TeamsUser(http, "29:dan", "Dan Teams", service_url=connector.url),
                   TeamsUser(http, "29:erin", "Erin Teams", service_url=connector.url))
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


@dataclass
class Both:
    runtime: Runtime
    http: httpx.AsyncClient


@pytest.fixture
async def both(database_url: str, connector: FakeBotConnector, fake_slack: FakeSlack) -> AsyncIterator[Both]:
    """A bot with both desks: Slack (the fake Web API) and Teams (the fake Bot Connector)."""
    config = bot_config()
    config["teams"] = teams_config(connector.url)
    runtime, http = await start(database_url, config, connector, fake_slack)
    try:
        yield Both(runtime, http)
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


async def test_a_case_is_worked_end_to_end_from_teams(desk: Desk, receiver: FakeReceiver) -> None:
    answer = await desk.post_event(event("evt-1", "My order #123 never arrived", reply_url=receiver.url + "/reply"))
    assert answer.status_code == 202

    posted = await desk.card("My order #123 never arrived", "Jane Doe", "120 followers")
    creates = [c for c in desk.connector.calls() if c["method"] == "POST"]
    assert creates[0]["path"] == "/v3/conversations/19%3Acases%40thread.tacv2/activities"  # a new channel thread
    card = posted["card"]
    assert [a["title"] for a in card["actions"]] == ["Claim", "Reply", "Escalate", "Resolve", "Priority"]
    assert "Priority\n⚪ Normal" in text_of(card) and "Reply due" in text_of(card)

    # Dan claims: his answer is the refreshed card at once, and the posted card is updated in place.
    claimed = invoked_card(await desk.dan.click(card, "Claim", posted["id"]))
    assert "Dan Teams" in text_of(claimed) and "Claimed" in text_of(claimed)
    updated = await desk.card("My order #123 never arrived", "Dan Teams")
    assert updated["id"] == posted["id"] and updated["updated"] >= 1
    assert len(case_cards(desk.connector)) == 1

    # Erin clicks Claim too (her card was not updated yet): only she is told who owns it; nothing changes.
    assert "already claimed by Dan Teams" in told(await desk.erin.click(card, "Claim", posted["id"]))
    assert button(claimed, "Take over") is not None and button(claimed, "Claim") is None
    assert "Dan Teams" in text_of((await desk.card("Dan Teams"))["card"])

    # Dan replies: the form opens inside the card, pre-filled with a greeting, offering the saved reply.
    form = opened(claimed, "Reply")
    assert field(form, "text")["value"] == "Hi Jane, " and field(form, "text")["maxLength"] == 2000
    assert "Sorry: Hi Jane, sorry about that." in text_of(field(form, "saved"))
    # Erin cannot send a reply on Dan's case.
    assert "claimed by Dan Teams" in told(await desk.erin.click(form, "Send", posted["id"], text="Hi!"))
    sent = invoked_card(await desk.dan.click(form, "Send", posted["id"],
                                             text="Hi Jane, so sorry! A new parcel is on its way."))
    assert "Reply by Dan Teams" in text_of(sent)

    delivered = await eventually(receiver.messages)
    assert [m["text"] for m in delivered] == ["Hi Jane, so sorry! A new parcel is on its way."]
    await desk.card("Reply by Dan Teams sent")

    # The case's history is in the card's thread.
    lines = "\n".join(text_of(s["activity"]) for s in thread(desk.connector, posted["id"]))
    assert "Dan Teams claimed" in lines

    # Escalate: the escalation channel gets the case with Carol (on call) mentioned.
    form = opened(sent, "Escalate")
    assert "Why does this need escalating?" in text_of(form)
    assert "Say why" in told(await desk.dan.click(form, "Escalate now", posted["id"], reason=" "))
    invoked_card(await desk.dan.click(form, "Escalate now", posted["id"], reason="Third lost parcel this month"))
    escalation = await eventually(lambda: desk.connector.activities(ESCALATIONS))
    activity = escalation[0]["activity"]
    shown = text_of(activity)
    assert "<at>Carol</at>" in shown and "Third lost parcel this month" in shown and "Case #1 escalated" in shown
    mentions = activity["attachments"][0]["content"]["msteams"]["entities"]
    assert mentions == [{"type": "mention", "text": "<at>Carol</at>", "mentioned": {"id": "29:carol", "name": "Carol"}}]

    # Resolve with a note; the check-in prompt appears in the thread; sending it reaches the customer.
    resolved_form = opened((await desk.card("Escalated"))["card"], "Resolve")
    resolved = invoked_card(await desk.dan.click(resolved_form, "Mark resolved", posted["id"], note="Reshipped"))
    assert "Resolved" in text_of(resolved) and button(resolved, "Reopen") is not None
    assert button(resolved, "Claim") is None

    def prompt() -> dict[str, Any] | None:
        for stored in thread(desk.connector, posted["id"]):
            content = stored["activity"]["attachments"][0]["content"]
            if button(content, "Send check-in"):
                return {"id": stored["id"], "card": content}
        return None

    shown_prompt = await eventually(prompt, timeout=15)
    assert "Hi Jane, checking in: is everything sorted now?" in text_of(shown_prompt["card"])
    done = invoked_card(await desk.dan.click(shown_prompt["card"], "Send check-in", shown_prompt["id"]))
    assert "Check-in sent by Dan Teams" in text_of(done)
    checkins = await eventually(lambda: [m for m in receiver.messages() if "checking in" in m["text"]])
    assert len(checkins) == 1
    await eventually(lambda: "Check-in sent by Dan Teams" in text_of(
        desk.connector.activity(shown_prompt["id"])["activity"]), what="the prompt in the thread says it was sent")
    # Double click: still one check-in.
    await desk.dan.click(shown_prompt["card"], "Send check-in", shown_prompt["id"])
    await desk.runtime.outbox.deliver_once()
    assert len([m for m in receiver.messages() if "checking in" in m["text"]]) == 1
    assert len(receiver.messages()) == 2


async def test_stats_answer_in_the_conversation(desk: Desk) -> None:
    for n in range(3):
        await desk.post_event(event(f"evt-{n}", f"Problem {n}", author_id=f"cust-{n}"))
    await desk.card("Problem 2")
    answer = await desk.dan.say("stats 7d")
    assert answer.status_code == 200
    replies = await eventually(lambda: [s for s in desk.connector.activities(CHANNEL)
                                        if "SocialOps stats" in text_of(s["activity"])])
    shown = text_of(replies[0]["activity"])
    assert "Last 7 days" in shown and "3 new" in shown and "Now: 3 open" in shown
    assert (await desk.dan.say("stats 1y")).status_code == 200
    await eventually(lambda: [s for s in desk.connector.activities(CHANNEL) if "Unknown period" in str(s)])
    await desk.dan.say("whoami")
    await eventually(lambda: [s for s in desk.connector.activities(CHANNEL) if "29:dan" in str(s["activity"])])


async def test_hostile_customer_text_stays_literal_in_teams(desk: Desk) -> None:
    hostile = "<at>everyone</at> [click here](https://evil.example) **bold** @channel"
    await desk.post_event(event("evt-h", hostile, name="<at>Boss</at>"))
    posted = await desk.card("[click here](https://evil.example)")
    card = posted["card"]
    for block in card["body"]:
        if block.get("type") == "TextBlock":  # markdown-capable: never customer text
            assert "evil" not in block["text"] and "<at>" not in block["text"]
    assert "msteams" not in card or "entities" not in card["msteams"]
    activity = desk.connector.activity(posted["id"])
    assert activity is not None and not activity["activity"].get("entities")


async def test_bad_requests_change_nothing(desk: Desk) -> None:
    await desk.post_event(event("evt-b", "Where is my refund?"))
    posted = await desk.card("Where is my refund?")
    http = desk.http
    assert (await http.post("/api/messages", content=b"{not json", headers={"Content-Type": "application/json"})
            ).status_code == 400
    assert (await http.post("/api/messages", content=b"x" * 300_000, headers={"Content-Type": "application/json"})
            ).status_code == 413
    assert (await http.post("/api/messages", content=b"type=message", headers={
        "Content-Type": "application/x-www-form-urlencoded"})).status_code == 415
    assert (await http.post("/api/messages", json={"text": "no type"})).status_code == 400
    # An unknown case, an unknown verb, a click without a case: a clear answer to the clicker only.
    unknown = (await desk.dan.execute("case.claim", {"case": 999})).json()
    assert unknown["type"] == "application/vnd.microsoft.activity.message" and "999" in unknown["value"]
    assert "Unknown action" in (await desk.dan.execute("case.explode", {"case": 1})).json()["value"]
    assert "no case" in (await desk.dan.execute("case.claim", {})).json()["value"]
    # Not Action.Execute: a 400 in the invoke response.
    activity = {**desk.dan._envelope(), "type": "invoke", "name": "adaptiveCard/action",
                "value": {"action": {"type": "Action.Http", "verb": "case.claim"}}}
    assert (await desk.dan.send(activity)).json()["statusCode"] == 400
    # Release by someone who does not own it: refused, to them only; nothing changed.
    claimed = invoked_card(await desk.erin.click(posted["card"], "Claim", posted["id"]))
    assert "Erin Teams" in text_of(claimed)
    assert "Only the owner (Erin Teams)" in told((await desk.dan.execute("case.release", {"case": 1})).json())
    card = (await desk.card("Where is my refund?", "Erin Teams"))["card"]
    assert button(card, "Release") is not None


async def test_action_submit_and_dialogs_work_too(desk: Desk, receiver: FakeReceiver) -> None:
    await desk.post_event(event("evt-s", "Broken zipper", reply_url=receiver.url + "/reply"))
    posted = await desk.card("Broken zipper")
    # Action.Submit (a message with a value): claims like Action.Execute.
    assert (await desk.dan.submit({"verb": "case.claim", "case": 1}, posted["id"])).status_code == 200
    await desk.card("Broken zipper", "Dan Teams")
    # A dialog: task/fetch opens the reply form with Action.Submit buttons; task/submit sends.
    dialog = (await desk.dan.task("task/fetch", {"verb": "case.reply", "case": 1})).json()
    form = dialog["task"]["value"]["card"]["content"]
    assert dialog["task"]["type"] == "continue" and "Hi Jane, " in text_of(form)
    send = button(form, "Send")
    assert send is not None and send["type"] == "Action.Submit"
    done = (await desk.dan.task("task/submit", {**send["data"], "text": "Hi Jane, a new zipper is on its way."})
            ).json()
    assert done == {"task": {"type": "message", "value": "Done."}}
    delivered = await eventually(receiver.messages)
    assert [m["text"] for m in delivered] == ["Hi Jane, a new zipper is on its way."]
    # A saved reply, sent as it is from the card's form.
    card = (await desk.card("Broken zipper", "Reply by Dan Teams sent"))["card"]
    assert "Choose a saved reply" in told(await desk.dan.click(opened(card, "Reply"), "Send saved reply",
                                                                posted["id"]))
    invoked_card(await desk.dan.click(opened(card, "Reply"), "Send saved reply", posted["id"], saved="0"))
    await eventually(lambda: len(receiver.messages()) == 2)
    assert receiver.messages()[1]["text"] == "Hi Jane, sorry about that. Could you DM us your order number?"


async def test_slack_and_teams_show_the_same_case_in_sync(both: Both, connector: FakeBotConnector,
                                                          fake_slack: FakeSlack) -> None:
    http = both.http
    dan = TeamsUser(http, "29:dan", "Dan Teams", service_url=connector.url)
    alice = SlackUser(http, "U0ALICE", "Alice")
    raw, headers = signed(event("evt-both", "Both desks see me"))
    assert (await http.post("/webhooks/generic", content=raw, headers=headers)).status_code == 202

    def slack_card(*texts: str) -> dict[str, Any] | None:
        return next((m for m in fake_slack.messages("C0CASES")
                     if all(t in str(m.get("blocks")) for t in texts)), None)

    def teams_card(*texts: str) -> dict[str, Any] | None:
        return next((c for c in case_cards(connector) if all(t in text_of(c["card"]) for t in texts)), None)

    slack_message = await eventually(lambda: slack_card("Both desks see me"))
    posted = await eventually(lambda: teams_card("Both desks see me"))

    # Claimed in Slack: the Teams card shows it.
    await alice.click(slack_message, "case.claim", channel="C0CASES")
    await eventually(lambda: teams_card("Both desks see me", "Alice"), what="Teams card shows Alice")
    # Dan in Teams is told Alice has it.
    assert "already claimed by Alice" in told(await dan.click(posted["card"], "Claim", posted["id"]))
    # Dan takes it over in Teams: Slack's card follows, and Alice (in Slack) is told privately.
    now = await eventually(lambda: teams_card("Both desks see me", "Alice"))
    invoked_card(await dan.click(now["card"], "Take over", posted["id"]))
    await eventually(lambda: slack_card("Both desks see me", "Dan Teams"), what="Slack card shows Dan")
    await eventually(lambda: [e for e in fake_slack.ephemerals("U0ALICE") if "took over" in e["text"]])
    # Resolved in Teams: resolved in Slack too, with Reopen there.
    form = opened((await eventually(lambda: teams_card("Dan Teams")))["card"], "Resolve")
    invoked_card(await dan.click(form, "Mark resolved", posted["id"], note="Done"))
    message = await eventually(lambda: slack_card("Both desks see me", "Resolved"))
    assert find_action(message, "case.reopen") is not None
    assert len(case_cards(connector)) == 1 and len([m for m in fake_slack.messages("C0CASES")
                                                    if "Both desks see me" in str(m.get("blocks"))]) == 1


async def test_teams_is_paced_and_a_429_holds_everything_back_then_nothing_is_lost(desk: Desk) -> None:
    desk.connector.fail_next(429, retry_after=1)
    for n in range(12):
        await desk.post_event(event(f"evt-p{n}", f"Storm message {n}", author_id=f"storm-{n}"))
    await eventually(lambda: len(case_cards(desk.connector)) == 12, timeout=20)
    calls = [c for c in desk.connector.calls(with_times=True) if c["method"] in ("POST", "PUT")]
    refused = [c for c in calls if c["status"] == 429]
    assert len(refused) == 1
    after = [c["at"] - refused[0]["at"] for c in calls if c["at"] > refused[0]["at"]]
    # Nothing new during the Retry-After pause (a call already on the wire when the 429 came may land just after).
    assert [a for a in after if 0.1 < a < 0.95] == [] and max(after) >= 0.95
    # Teams' limit per conversation: never more than 7 messages in any second.
    stamps = sorted(c["at"] for c in calls if c["status"] < 400)
    assert all(stamps[i + 7] - stamps[i] >= 0.9 for i in range(len(stamps) - 7))  # (arrival jitter)
    # Each case exactly once.
    shown = [text_of(c["card"]) for c in case_cards(desk.connector)]
    assert sorted(int(t.split("Storm message ")[1].split("\n")[0]) for t in shown) == list(range(12))


async def test_a_transient_teams_failure_is_retried_and_a_deleted_card_is_posted_again(desk: Desk) -> None:
    desk.connector.fail_next(502)
    await desk.post_event(event("evt-r", "Retry me"))
    posted = await desk.card("Retry me")
    assert [c["status"] for c in desk.connector.calls()][:2] == [502, 201]
    async with httpx.AsyncClient(base_url=desk.connector.url.rstrip("/")) as http:  # someone deleted it in Teams
        await http.delete(f"/v3/conversations/{CHANNEL}/activities/{posted['id']}")
    await desk.dan.execute("case.claim", {"case": 1})
    again = await desk.card("Retry me", "Dan Teams")
    assert again["id"] != posted["id"] and len(case_cards(desk.connector)) == 1


async def test_simultaneous_claims_from_slack_and_teams_have_one_winner(both: Both, connector: FakeBotConnector,
                                                                       fake_slack: FakeSlack) -> None:
    http, runtime = both.http, both.runtime
    dan = TeamsUser(http, "29:dan", "Dan Teams", service_url=connector.url)
    alice = SlackUser(http, "U0ALICE", "Alice")
    raw, headers = signed(event("evt-race", "Who gets me?"))
    await http.post("/webhooks/generic", content=raw, headers=headers)
    message = await eventually(lambda: next((m for m in fake_slack.messages("C0CASES")
                                             if "Who gets me?" in str(m.get("blocks"))), None))
    posted = await eventually(lambda: next(iter(case_cards(connector)), None))
    slack_click, teams_answer = await asyncio.gather(
        alice.click(message, "case.claim", channel="C0CASES"),
        dan.click(posted["card"], "Claim", posted["id"]))
    assert slack_click.status_code == 200
    view = await runtime.services.view(1)
    assert view.owner in ("U0ALICE", "29:dan")
    if view.owner == "U0ALICE":  # Dan lost: told privately in Teams
        assert "already claimed by Alice" in told(teams_answer)
    else:  # Alice lost: told privately in Slack
        assert "Dan Teams" in text_of(invoked_card(teams_answer))
        await eventually(lambda: [e for e in fake_slack.ephemerals("U0ALICE") if "already claimed" in e["text"]])
    owner_name = "Alice" if view.owner == "U0ALICE" else "Dan Teams"
    await eventually(lambda: owner_name in text_of(case_cards(connector)[0]["card"]))
    await eventually(lambda: owner_name in str(next(m for m in fake_slack.messages("C0CASES")
                                                    if "Who gets me?" in str(m.get("blocks")))["blocks"]))


async def test_the_owner_sets_the_priority_in_teams(desk: Desk) -> None:
    await desk.post_event(event("evt-prio", "Size question"))
    posted = await desk.card("Size question", "⚪ Normal")
    form = opened(posted["card"], "Priority")
    assert field(form, "priority")["value"] == "normal"
    assert "Claim case #1 first" in told(await desk.dan.click(form, "Set priority", posted["id"], priority="urgent"))
    claimed = invoked_card(await desk.dan.click(posted["card"], "Claim", posted["id"]))
    urgent = invoked_card(await desk.dan.click(opened(claimed, "Priority"), "Set priority", posted["id"],
                                               priority="urgent"))
    assert "🔴 Urgent" in text_of(urgent) and "set by Dan Teams" in text_of(urgent)
    assert "not a priority" in told(await desk.dan.click(opened(urgent, "Priority"), "Set priority", posted["id"],
                                                         priority="whenever"))
    await desk.card("Size question", "🔴 Urgent")


async def test_escalation_policy_pages_in_teams_until_acknowledged(database_url: str,
                                                                   connector: FakeBotConnector) -> None:
    config = teams_only(connector)
    config["escalation"] = [{"after": "0s", "notify": "oncall"}, {"after": "1s", "notify": ["29:lead"]}]
    runtime, http = await start(database_url, config, connector)
    try:
        dan = TeamsUser(http, "29:dan", "Dan Teams", service_url=connector.url)
        raw, headers = signed(event("evt-page", "Lawyers are involved"))
        await http.post("/webhooks/generic", content=raw, headers=headers)
        posted = await eventually(lambda: next(iter(case_cards(connector)), None))
        invoked_card(await dan.click(opened(posted["card"], "Escalate"), "Escalate now", posted["id"],
                                     reason="Legal threat"))

        def paged(level: str) -> list[dict[str, Any]]:
            return [a for a in connector.activities(ESCALATIONS) if f"Level {level}" in text_of(a["activity"])]

        first = (await eventually(lambda: paged("1")))[0]["activity"]["attachments"][0]["content"]
        assert first["msteams"]["entities"][0]["mentioned"] == {"id": "29:carol", "name": "Carol"}
        assert button(first, "Acknowledge") is not None
        second = (await eventually(lambda: paged("2")))[0]["activity"]["attachments"][0]["content"]
        assert second["msteams"]["entities"][0]["mentioned"]["id"] == "29:lead"
        card = (await eventually(lambda: next((c for c in case_cards(connector) if "Paged (level 2)" in
                                               text_of(c["card"])), None)))["card"]
        acked = invoked_card(await dan.click(card, "Acknowledge", posted["id"]))
        assert "acknowledged by Dan Teams" in text_of(acked) and button(acked, "Acknowledge") is None
        assert "already acknowledged" in told(await dan.click(first, "Acknowledge", posted["id"]))
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()
