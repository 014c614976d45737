"""The whole loop, as a support team lives it: mention → card → claim → reply → resolve → check-in."""

from __future__ import annotations

from tests.conftest import Bot
from tests.fakes.receiver import FakeReceiver
from tests.kit.slack import find_action
from tests.kit.wait import eventually
from tests.kit.webhook import event


async def test_a_mention_is_worked_from_slack_to_the_customer_and_back(bot: Bot, receiver: FakeReceiver) -> None:
    answer = await bot.post_event(event("evt-1", "My order #123 never arrived", reply_url=receiver.url + "/reply"))
    assert answer.status_code == 202

    card = await bot.card("My order #123 never arrived")
    assert "Jane Doe" in str(card["blocks"]) and "120 followers" in str(card["blocks"])
    assert find_action(card, "case.claim") is not None

    # Alice claims: the card shows her as owner.
    assert (await bot.alice.click(card, "case.claim", channel="C0CASES")).status_code == 200
    card = await bot.card("My order #123 never arrived", owner="<@U0ALICE>")
    assert ":large_yellow_circle: Claimed" in str(card["blocks"])

    # Bob clicks Claim too: only he is told who owns it, with a Take over button; nothing changes.
    await bot.bob.click(card, "case.claim", channel="C0CASES")
    told = await bot.slack.wait_for_async(lambda: bot.slack.ephemerals("U0BOB"))
    assert "already claimed by <@U0ALICE>" in told[0]["text"]
    assert find_action(told[0], "case.take_over") is not None
    assert "<@U0ALICE>" in str(bot.slack.message("C0CASES", card["ts"])["blocks"])  # type: ignore[index]

    # Alice replies through the modal, pre-filled with a greeting.
    await bot.alice.click(card, "case.reply", channel="C0CASES")
    opened = await bot.slack.wait_for_async(lambda: bot.slack.calls("views.open"))
    modal = opened[-1]["params"]["view"]
    reply_input = next(b for b in modal["blocks"] if b["type"] == "input")
    assert reply_input["element"]["initial_value"] == "Hi Jane, "
    view = next(iter(bot.slack.views().values()))
    submitted = await bot.alice.submit(view, {reply_input["block_id"]: {"reply_text": {
        "type": "plain_text_input", "value": "Hi Jane, so sorry! A new parcel is on its way."}}})
    assert submitted.status_code == 200 and submitted.content in (b"", b"{}")

    delivered = await eventually(receiver.messages)
    assert [m["text"] for m in delivered] == ["Hi Jane, so sorry! A new parcel is on its way."]
    assert delivered[0]["in_reply_to"] == "evt-1"
    card = await bot.card("My order #123 never arrived", sent="Reply by Alice sent")

    # Resolve: the check-in prompt appears in the card's thread after the configured delay.
    await bot.alice.click(card, "case.resolve", channel="C0CASES")
    await bot.slack.wait_for_async(lambda: len(bot.slack.calls("views.open")) >= 2)
    resolve_view = next(v for v in bot.slack.views().values() if v.get("callback_id") == "modal.resolve")
    await bot.alice.submit(resolve_view, {"note": {"note": {"type": "plain_text_input", "value": "Reshipped"}}})
    card = await bot.card("My order #123 never arrived", status="Resolved")
    assert find_action(card, "case.reopen") is not None and find_action(card, "case.claim") is None

    def prompt() -> dict[str, object] | None:
        for reply in bot.slack.replies("C0CASES", card["ts"]):
            if find_action(reply, "followup.send"):
                return reply
        return None

    shown = await bot.slack.wait_for_async(prompt, timeout=15)
    assert "is everything sorted now?" in str(shown["blocks"])
    await bot.alice.click(shown, "followup.send", channel="C0CASES")  # type: ignore[arg-type]
    delivered = await eventually(lambda: len(receiver.messages()) == 2 and receiver.messages())
    assert delivered[1]["text"] == "Hi Jane, checking in: is everything sorted now?"
    assert len(receiver.messages()) == 2  # exactly one reply and one check-in
