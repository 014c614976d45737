"""Two copies of the bot on one database: a check-in scheduled by a copy that stops is sent by the other."""

from __future__ import annotations

from typing import Any

from tests.conftest import bot_config, start_bot
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import SlackUser, find_action
from tests.kit.wait import eventually
from tests.kit.webhook import event, signed


async def test_a_check_in_scheduled_by_a_stopped_copy_is_run_by_the_other(
    database_url: str, fake_slack: FakeSlack, receiver: FakeReceiver
) -> None:
    first, first_http = await start_bot(database_url, fake_slack, bot_config(), scheduler_look_every=0.5)
    second, second_http = await start_bot(database_url, fake_slack, bot_config(), scheduler_look_every=0.5)
    try:
        body, headers = signed(event("copies-1", "Two copies, one case", reply_url=receiver.url + "/r"))
        assert (await first_http.post("/webhooks/generic", content=body, headers=headers)).status_code == 202
        card = await eventually(lambda: next(m for m in fake_slack.messages("C0CASES")
                                             if "Two copies, one case" in str(m["blocks"])))
        alice = SlackUser(first_http, "U0ALICE", "Alice")
        await alice.click(card, "case.resolve", channel="C0CASES")
        view = await eventually(lambda: next(iter(fake_slack.views().values())))
        await alice.submit(view, {"note": {"note": {"type": "plain_text_input", "value": ""}}})
        await eventually(lambda: "Resolved" in str(fake_slack.message("C0CASES", card["ts"])))
        await first.stop()  # the copy that scheduled the check-in goes away before it is due (1s)
        first.engine.dispose()

        def prompt() -> dict[str, Any] | None:
            return next((m for m in fake_slack.replies("C0CASES", card["ts"]) if find_action(m, "followup.send")),
                        None)

        shown = await eventually(prompt, timeout=15)
        await SlackUser(second_http, "U0BOB", "Bob").click(shown, "followup.send", channel="C0CASES")
        sent = await eventually(receiver.messages)
        assert [m["text"] for m in sent] == ["Hi Jane, checking in: is everything sorted now?"]
        prompts = [m for m in fake_slack.replies("C0CASES", card["ts"]) if "Check-in" in str(m.get("blocks"))]
        assert len(prompts) == 1
    finally:
        await first_http.aclose()
        await second_http.aclose()
        await second.stop()
        second.engine.dispose()


def test_one_copy_at_a_time_leads_and_a_stopped_leader_hands_over(database_url: str) -> None:
    from storage.db import Leadership, is_postgres, make_engine

    engine = make_engine(database_url)
    try:
        first, second = Leadership(engine, "poll:mastodon"), Leadership(engine, "poll:mastodon")
        other = Leadership(engine, "poll:bluesky")
        assert first.acquire() and first.acquire()  # stays the leader
        if is_postgres(engine):
            assert not second.acquire(), "two copies polling at once"
            assert other.acquire(), "another source has its own leader"
            first.release()
            assert second.acquire(), "the lead passes on when the leader stops"
        else:
            assert second.acquire()  # SQLite: one process, which always leads
        for lock in (first, second, other):
            lock.release()
    finally:
        engine.dispose()

