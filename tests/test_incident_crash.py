"""Reply to all across kill -9: every member of a storm is answered exactly once.

The bot runs as a real process; a storm of alike mentions becomes an incident, Reply to all queues a personal reply
per member (paced), and the process is killed while the replies are going out. After the restart every member has
received one reply: none lost, none sent twice (each member's reply has one idempotency key, ever, and the platform
stored one message per member).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import signed_headers, view_submission
from tests.kit.webhook import event, signed
from tests.test_crash import BotProcess, bot_process_for

MEMBERS = 40
TEMPLATE = "Hi {first_name}, checkout is fixed; sorry for the trouble."


@pytest.fixture
def storm_bot(database_url: str, tmp_path: Path, fake_slack: FakeSlack, receiver: FakeReceiver
              ) -> Iterator[BotProcess]:
    config = {
        "slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
        "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET",
                                "default_reply_url": receiver.url + "/replies"}},
        # 600 replies a minute: 40 members take about four seconds, so the kill lands in the middle.
        "storms": {"threshold": 5, "window": "15m", "update_every": "1s", "reply_pace": {"generic": 600}},
    }
    process = bot_process_for(config, database_url, tmp_path, fake_slack)
    try:
        yield process
    finally:
        process.stop()


def reply_all(http: httpx.Client, incident_id: int) -> httpx.Response:
    view = {"id": "VALL", "type": "modal", "callback_id": "modal.reply_all", "hash": "1.a",
            "private_metadata": json.dumps({"incident": incident_id}), "blocks": []}
    payload = view_submission(user_id="U0ALICE", name="Alice", view=view, values={
        "template": {"template": {"type": "plain_text_input", "value": TEMPLATE}}})
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return http.post("/slack/events", content=body, headers=signed_headers(body))


def member_replies(receiver: FakeReceiver) -> list[dict[str, object]]:
    return [m for m in receiver.messages() if m.get("in_reply_to")]


def test_reply_to_all_answers_each_member_exactly_once_across_kill_9(storm_bot: BotProcess, fake_slack: FakeSlack,
                                                                     receiver: FakeReceiver) -> None:
    storm_bot.start()
    http = httpx.Client(base_url=storm_bot.url, timeout=10)
    for i in range(MEMBERS):
        body, headers = signed(event(f"storm-{i}", f"@acme checkout fails with error {500 + i}, my cart is lost "
                                                   "and the app keeps spinning", author_id=f"cust-{i}",
                                     name=f"Customer{i} Test", conversation=f"c-{i}"))
        assert http.post("/webhooks/generic", content=body, headers=headers).status_code == 202

    def incident_shows_all() -> bool:
        return any(f"*{MEMBERS}* alike messages" in json.dumps(m.get("blocks")) for m in fake_slack.messages("C0CASES"))

    fake_slack.wait_for(incident_shows_all, timeout=30)
    answer = reply_all(http, 1)
    assert answer.status_code == 200 and b"errors" not in answer.content, answer.text
    receiver.wait_for(lambda: len(member_replies(receiver)) >= MEMBERS // 4, timeout=30, interval=0.005)
    storm_bot.kill()
    http.close()
    sent_before = len(member_replies(receiver))
    assert sent_before < MEMBERS, "the kill must land while replies are still owed"
    storm_bot.start()
    receiver.wait_for(lambda: len(member_replies(receiver)) >= MEMBERS, timeout=60)
    time.sleep(1.5)  # anything sent twice would arrive now
    replies = member_replies(receiver)
    per_member = Counter(str(m["in_reply_to"]) for m in replies)
    assert len(per_member) == MEMBERS and set(per_member.values()) == {1}, per_member
    assert sorted(str(m["text"]) for m in replies) == sorted(
        TEMPLATE.replace("{first_name}", f"Customer{i}") for i in range(MEMBERS))
    keys: dict[str, set[str]] = defaultdict(set)
    for request in receiver.requests():
        body = request.get("json") or {}
        if isinstance(body, dict) and body.get("in_reply_to"):
            keys[str(body["in_reply_to"])].add(str(body["idempotency_key"]))
    assert {len(k) for k in keys.values()} == {1}, "a member's reply never gets a second key"
