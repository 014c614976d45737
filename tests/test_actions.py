"""Working cases from Slack: who may do what, what everyone sees, and what a refusal leaves unchanged."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import Bot
from tests.fakes.receiver import FakeReceiver
from tests.kit.slack import block_action, find_action, signed_headers
from tests.kit.wait import eventually
from tests.kit.webhook import event


async def new_card(bot: Bot, text: str = "Where is my parcel?", **extra: Any) -> dict[str, Any]:
    answer = await bot.post_event(event(f"evt-{time.monotonic_ns()}", text, **extra))
    assert answer.status_code == 202, answer.text
    return await bot.card(text)


def thread_texts(bot: Bot, card: dict[str, Any]) -> list[str]:
    return [str(m.get("text")) for m in bot.slack.replies("C0CASES", card["ts"])]


async def test_take_over_moves_the_case_and_tells_the_previous_owner(bot: Bot) -> None:
    card = await new_card(bot)
    await bot.alice.click(card, "case.claim", channel="C0CASES")
    card = await bot.card("Where is my parcel?", owner="<@U0ALICE>")
    await bot.bob.click(card, "case.claim", channel="C0CASES")
    told = await eventually(lambda: bot.slack.ephemerals("U0BOB"))
    await bot.bob.click(told[0], "case.take_over", channel="C0CASES", ephemeral=True)

    card = await bot.card("Where is my parcel?", owner="<@U0BOB>")
    assert "<@U0ALICE>" not in json.dumps(card["blocks"])
    alice_told = await eventually(lambda: bot.slack.ephemerals("U0ALICE"))
    assert "Bob took over case" in alice_told[-1]["text"]
    await eventually(lambda: any("Bob took the case over from Alice" in t for t in thread_texts(bot, card)))


async def test_only_the_owner_may_release_and_others_are_told_privately(bot: Bot) -> None:
    card = await new_card(bot)
    await bot.alice.click(card, "case.claim", channel="C0CASES")
    card = await bot.card("Where is my parcel?", owner="<@U0ALICE>")
    updates_before = bot.slack.message("C0CASES", card["ts"])["updates"]  # type: ignore[index]

    await bot.bob.click(card, "case.release", channel="C0CASES")
    refusal = await eventually(lambda: bot.slack.ephemerals("U0BOB"))
    assert "Only the owner (Alice) can release" in refusal[0]["text"]
    await bot.runtime.outbox.deliver_once()
    assert bot.slack.message("C0CASES", card["ts"])["updates"] == updates_before  # type: ignore[index]

    await bot.alice.click(card, "case.release", channel="C0CASES")
    card = await bot.card("Where is my parcel?", owner="nobody")
    assert ":large_blue_circle: Open" in json.dumps(card["blocks"])
    assert find_action(card, "case.release") is None


async def test_reply_on_someone_elses_case_offers_a_take_over_instead_of_a_modal(bot: Bot) -> None:
    card = await new_card(bot)
    await bot.alice.click(card, "case.claim", channel="C0CASES")
    card = await bot.card("Where is my parcel?", owner="<@U0ALICE>")
    await bot.bob.click(card, "case.reply", channel="C0CASES")
    told = await eventually(lambda: bot.slack.ephemerals("U0BOB"))
    assert find_action(told[0], "case.take_over") is not None
    assert bot.slack.calls("views.open") == []


@pytest.mark.parametrize(("value", "message"), [
    ("99999", "Case #99999 does not exist"),
    ("not-a-case", "does not belong to a case I know"),
])
async def test_a_click_on_an_unknown_case_gets_a_private_error(bot: Bot, value: str, message: str) -> None:
    card = await new_card(bot)
    payload = block_action(user_id="U0BOB", name="Bob", action_id="case.claim", value=value, channel="C0CASES",
                           message=card)
    assert (await bot.bob.post(payload)).status_code == 200
    told = await eventually(lambda: bot.slack.ephemerals("U0BOB"))
    assert message in told[0]["text"]
    await bot.runtime.outbox.deliver_once()
    assert "Claimed" not in json.dumps(bot.slack.message("C0CASES", card["ts"])["blocks"])  # type: ignore[index]


async def test_a_stale_card_cannot_claim_a_resolved_case(bot: Bot) -> None:
    stale = await new_card(bot)
    await bot.alice.click(stale, "case.resolve", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": None}}})
    await bot.card("Where is my parcel?", status="Resolved")
    await bot.bob.click(stale, "case.claim", channel="C0CASES")  # the old buttons, before the update
    told = await eventually(lambda: bot.slack.ephemerals("U0BOB"))
    assert "is resolved; reopen it first" in told[0]["text"]
    card = await bot.card("Where is my parcel?", status="Resolved")
    assert "<@U0BOB>" not in json.dumps(card["blocks"])


async def test_escalation_pings_on_call_in_the_escalation_channel(bot: Bot) -> None:
    card = await new_card(bot, "You charged me twice!!")
    await bot.alice.click(card, "case.escalate", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    assert view["callback_id"] == "modal.escalate"

    empty = await bot.alice.submit(view, {"reason": {"reason": {"type": "plain_text_input", "value": "  "}}})
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "Say why the case needs escalating."}}

    ok = await bot.alice.submit(view, {"reason": {"reason": {"type": "plain_text_input", "value": "Billing <!here>"}}})
    assert ok.status_code == 200 and not ok.content.strip(b"{}")
    posted = await eventually(lambda: bot.slack.messages("C0ESC"))
    text = json.dumps(posted[0]["blocks"])
    assert "<@U0CAROL>" in text and "Case #" in text and "escalated* by Alice" in text
    assert "Billing &lt;!here&gt;" in text and "<!here>" not in text
    assert "Open the case" in text  # links to the card
    card = await bot.card("You charged me twice!!", badge="Escalated")
    assert "Escalated by Alice" in json.dumps(card["blocks"])


async def test_forged_or_stale_slack_requests_are_refused_and_change_nothing(bot: Bot) -> None:
    card = await new_card(bot)
    payload = block_action(user_id="U0BOB", name="Bob", action_id="case.claim", value=card["blocks"][-1]["elements"][0]["value"],
                           channel="C0CASES", message=card)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    forged = signed_headers(body, secret="not-the-secret")
    assert (await bot.http.post("/slack/events", content=body, headers=forged)).status_code == 401
    stale = signed_headers(body, timestamp=int(time.time()) - 600)
    assert (await bot.http.post("/slack/events", content=body, headers=stale)).status_code == 401
    await bot.runtime.outbox.deliver_once()
    assert "Claimed" not in json.dumps(bot.slack.message("C0CASES", card["ts"])["blocks"])  # type: ignore[index]
    assert bot.slack.ephemerals() == []


async def test_social_stats_answers_with_the_teams_numbers(bot: Bot, receiver: FakeReceiver) -> None:
    card = await new_card(bot, reply_url=receiver.url + "/r")
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    block = next(b["block_id"] for b in view["blocks"] if b["type"] == "input")
    await bot.alice.submit(view, {block: {"reply_text": {"type": "plain_text_input", "value": "Hi Jane, on it!"}}})
    await eventually(receiver.messages)
    await bot.card("Where is my parcel?", sent="sent")
    await new_card(bot, "Second one", kind="dm", author_id="cust-2")

    answer = await bot.alice.command("stats 7d")
    assert answer.status_code == 200
    body = answer.json()
    text = json.dumps(body["blocks"], ensure_ascii=False)
    assert "Last 7 days" in text and "2 new" in text and "Response rate*\\n50%" in text
    assert "Webhook mention: 1" in text and "Webhook DM: 1" in text
    assert "<@U0ALICE>: 1 claimed · 1 replies · 0 resolved" in text

    bad = await bot.alice.command("stats 1y")
    assert "Unknown period `1y`" in bad.text


async def test_social_oncall_names_who_escalations_ping(bot: Bot) -> None:
    answer = (await bot.bob.command("oncall")).json()
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "On call: <@U0CAROL>. Escalations ping them in <#C0ESC>."
    unknown = (await bot.bob.command("deploy")).text
    assert unknown == "Unknown command `deploy`. Try `/social stats [today|7d|30d]` or `/social oncall`."


async def test_slack_rate_limit_is_honoured_and_the_card_still_updates(bot: Bot) -> None:
    card = await new_card(bot)
    bot.slack.fail_next("chat.update", status=429, retry_after=1)
    await bot.alice.click(card, "case.claim", channel="C0CASES")
    await bot.card("Where is my parcel?", owner="<@U0ALICE>")
    updates = [c for c in bot.slack.calls("chat.update")]
    assert updates[0]["status"] == 429
    assert updates[1]["time"] - updates[0]["time"] >= 0.9  # waited for Retry-After


async def test_resolving_schedules_a_check_in_that_survives_a_restart(bot: Bot, receiver: FakeReceiver) -> None:
    from tests.conftest import bot_config, start_bot

    card = await new_card(bot, reply_url=receiver.url + "/r")
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": "done"}}})
    await bot.card("Where is my parcel?", status="Resolved")
    url = str(bot.runtime.engine.url.render_as_string(hide_password=False))
    await bot.runtime.stop()  # down before the check-in is due (1s)
    bot.runtime.engine.dispose()
    await asyncio.sleep(1.2)
    runtime, http = await start_bot(url, bot.slack, bot_config())
    try:
        def prompt() -> dict[str, Any] | None:
            return next((m for m in bot.slack.replies("C0CASES", card["ts"]) if find_action(m, "followup.send")), None)

        shown = await eventually(prompt, timeout=15)
        bot.http = http
        bot.alice.http = http
        await bot.alice.click(shown, "followup.send", channel="C0CASES")
        sent = await eventually(receiver.messages)
        assert [m["text"] for m in sent] == ["Hi Jane, checking in: is everything sorted now?"]
        await eventually(lambda: "Check-in sent by Alice" in json.dumps(bot.slack.message("C0CASES", shown["ts"])))
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


async def test_a_customer_writing_again_reopens_the_case_and_cancels_the_check_in(bot: Bot) -> None:
    card = await new_card(bot, "First message", conversation="conv-7")
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})
    await bot.card("First message", status="Resolved")
    again = await bot.post_event(event("evt-again", "Actually it broke again", conversation="conv-7"))
    assert again.status_code == 202
    card = await bot.card("First message", badge="Reopened")
    assert "Messages*\\n2" in json.dumps(card["blocks"]) and find_action(card, "case.resolve") is not None
    await eventually(lambda: any("Reopened: the customer wrote again" in t for t in thread_texts(bot, card)))
    await asyncio.sleep(1.5)
    await bot.runtime.outbox.deliver_once()
    assert not any(find_action(m, "followup.send") for m in bot.slack.replies("C0CASES", card["ts"]))


async def test_healthz_and_metrics(bot: Bot) -> None:
    assert (await bot.http.get("/healthz")).text == "ok"
    await new_card(bot)  # the card is in Slack; the worker records that just after
    for _ in range(100):
        metrics = (await bot.http.get("/metrics")).text
        if "socialops_outbox_pending 0" in metrics:
            break
        await asyncio.sleep(0.05)
    assert 'socialops_cases{status="open"} 1' in metrics
    assert "socialops_outbox_pending 0" in metrics and "socialops_outbox_dead 0" in metrics


async def test_simultaneous_claims_have_one_winner_and_everyone_else_is_told(bot: Bot) -> None:
    from tests.kit.slack import SlackUser

    card = await new_card(bot)
    people = [SlackUser(bot.http, f"U0P{i:02d}", f"Person{i}") for i in range(10)]
    answers = await asyncio.gather(*(p.click(card, "case.claim", channel="C0CASES") for p in people))
    assert all(a.status_code == 200 for a in answers)
    told = await eventually(lambda: len(bot.slack.ephemerals()) == 9 and bot.slack.ephemerals())
    owners = {p.id for p in people} - {e["user"] for e in told}
    assert len(owners) == 1
    (owner,) = owners
    await bot.card("Where is my parcel?", owner=f"<@{owner}>")
    assert all(f"already claimed by <@{owner}>" in e["text"] for e in told)


async def test_a_double_clicked_check_in_is_sent_once(bot: Bot, receiver: FakeReceiver) -> None:
    card = await new_card(bot, reply_url=receiver.url + "/r")
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    view = await eventually(lambda: next(iter(bot.slack.views().values())))
    await bot.alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})

    def prompt() -> dict[str, Any] | None:
        return next((m for m in bot.slack.replies("C0CASES", card["ts"]) if find_action(m, "followup.send")), None)

    shown = await eventually(prompt, timeout=15)
    await asyncio.gather(bot.alice.click(shown, "followup.send", channel="C0CASES"),
                         bot.bob.click(shown, "followup.send", channel="C0CASES"))
    await eventually(receiver.messages)
    await eventually(lambda: bot.slack.ephemerals())
    await asyncio.sleep(0.5)
    assert len(receiver.messages()) == 1
    assert "already sent" in bot.slack.ephemerals()[0]["text"]


async def test_slack_server_errors_are_retried_and_the_card_is_posted_once(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", status=500, times=2)
    await bot.post_event(event("evt-5xx", "Slack is having a moment"))
    await bot.card("Slack is having a moment")
    await asyncio.sleep(0.5)
    assert len([m for m in bot.slack.messages("C0CASES") if "Slack is having a moment" in json.dumps(m["blocks"])]) == 1
    assert [c["status"] for c in bot.slack.calls("chat.postMessage")][:2] == [500, 500]
