"""Kill -9 in the middle of a stream: every accepted event gets exactly one card, every queued reply is sent once.

The bot runs as a real process (`python app.py`) against the fake Slack and a fake listening tool.
Slack answers slowly, so the kill lands between "Slack stored the message" and "the bot recorded it":
the window where a naive bot would post the card again after the restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import SIGNING_SECRET, signed_headers, view_submission
from tests.kit.webhook import GENERIC_SECRET, event, signed

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 40
REPLIES = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("bot did not start:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def bot_process(database_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[BotProcess]:
    config = {
        "slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
        "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}},
    }
    process = bot_process_for(config, database_url, tmp_path, fake_slack)
    try:
        yield process
    finally:
        process.stop()


def bot_process_for(config: dict[str, object], database_url: str, tmp_path: Path, fake_slack: FakeSlack
                    ) -> BotProcess:
    """`python app.py` with `config`, the fake Slack, a 2 s outbox lease and a fast Slack pace (not started)."""
    (tmp_path / "socialops.yml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SOCIALOPS_"))}
    env.update({
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_slack.url,
        "DATABASE_URL": database_url, "SOCIALOPS_CONFIG": str(tmp_path / "socialops.yml"),
        "GENERIC_WEBHOOK_SECRET": GENERIC_SECRET, "PORT": str(free_port()), "HOST": "127.0.0.1",
        "SOCIALOPS_OUTBOX_LEASE": "2s", "SOCIALOPS_SLACK_PACE": "0.02", "LOG_LEVEL": "WARNING",
    })
    return BotProcess(env, tmp_path / "bot.log")


def cards_for(fake: FakeSlack, text: str) -> list[dict[str, object]]:
    return [m for m in fake.messages("C0CASES") if text in json.dumps(m.get("blocks"))]


def case_id_of(card: dict[str, object]) -> int:
    match = re.search(r"case #(\d+)", json.dumps(card.get("blocks")))
    assert match, card
    return int(match.group(1))


def submit_reply(http: httpx.Client, case_id: int, text: str) -> httpx.Response:
    view = {"id": f"V{case_id}", "type": "modal", "callback_id": "modal.reply", "hash": "1.a",
            "private_metadata": json.dumps({"case": case_id}), "blocks": []}
    payload = view_submission(user_id="U0ALICE", name="Alice", view=view,
                              values={"reply_text.0": {"reply_text": {"type": "plain_text_input", "value": text}}})
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(payload)}).encode()
    return http.post("/slack/events", content=body, headers=signed_headers(body))


def test_kill_9_loses_nothing_and_sends_nothing_twice(bot_process: BotProcess, fake_slack: FakeSlack,
                                                      receiver: FakeReceiver) -> None:
    fake_slack.delay("chat.postMessage", 0.3)  # Slack stores the card, then answers late: the crash window
    bot_process.start()
    accepted: set[int] = set()
    queued: dict[int, str] = {}
    http = httpx.Client(base_url=bot_process.url, timeout=5)

    def deliver(i: int) -> None:
        body, headers = signed(event(f"crash-{i}", f"crash event {i:03d}", author_id=f"c{i}",
                                     reply_url=receiver.url + "/replies"))
        try:
            response = http.post("/webhooks/generic", content=body, headers=headers)
        except httpx.HTTPError:
            return  # the tool would retry: it never got a 2xx
        if response.status_code in (200, 202):
            accepted.add(i)

    for i in range(EVENTS // 2):
        deliver(i)
    # Reply on the first cards while more events stream in.
    fake_slack.wait_for(lambda: len(fake_slack.messages("C0CASES")) >= REPLIES, timeout=30)
    for card in fake_slack.messages("C0CASES")[:REPLIES]:
        case_id = case_id_of(card)
        answer = submit_reply(http, case_id, f"Hi, reply to case {case_id}")
        assert answer.status_code == 200 and b"errors" not in answer.content, answer.text
        queued[case_id] = f"Hi, reply to case {case_id}"
    for i in range(EVENTS // 2, EVENTS):
        deliver(i)
    assert len(fake_slack.messages("C0CASES")) < EVENTS, "the kill must land while cards are still owed"

    def in_flight() -> bool:  # Slack has just stored a message and not yet answered
        latest = max((float(m["ts"]) for m in fake_slack.messages("C0CASES")), default=0.0)
        return time.time() - latest < 0.1

    fake_slack.wait_for(in_flight, timeout=10, interval=0.005)
    bot_process.kill()
    http.close()
    fake_slack.delay("chat.postMessage", 0)
    bot_process.start()
    http = httpx.Client(base_url=bot_process.url, timeout=5)
    for i in range(EVENTS):  # the listening tool re-sends whatever it is unsure of
        if i not in accepted:
            deliver(i)
    assert accepted == set(range(EVENTS))

    def all_cards() -> bool:
        return all(cards_for(fake_slack, f"crash event {i:03d}") for i in range(EVENTS))

    fake_slack.wait_for(all_cards, timeout=60)
    receiver.wait_for(lambda: len(receiver.messages()) >= len(queued), timeout=60)
    time.sleep(1.5)  # anything still owed would go out now
    for i in range(EVENTS):
        assert len(cards_for(fake_slack, f"crash event {i:03d}")) == 1, f"event {i} has a duplicate card"
    assert fake_slack.calls("conversations.history"), "the restart looked for cards posted before the kill"
    texts = sorted(m["text"] for m in receiver.messages())
    assert texts == sorted(queued.values()), "every queued reply is sent exactly once"
    http.close()
