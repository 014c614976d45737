"""The sandbox as a user drives it: `python app.py sandbox`, the page's endpoints, the emulated Slack.

Each flow runs the real bot process; the page's requests become signed Slack payloads to the bot's own
/slack/events, and the bot's Slack calls go through slack_sdk to the emulator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import signing
from tests.kit.sandbox import POLICY, ROOT, Page, clean_env, free_port, running_sandbox

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
CASES = "C0CASES"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def buttons(html: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []

    class Buttons(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "button":
                found.append({k: v or "" for k, v in attrs})

    Buttons().feed(html)
    return found


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with running_sandbox("--no-feed", "--config", str(POLICY), log=log) as (base, _):
        yield Page(base)


def card_of(page: Page, user: str, needle: str) -> dict[str, Any]:
    for message in page.state(user)["messages"]:
        if message["channel"] == CASES and not message["thread_ts"] and needle in visible(message["html"]):
            return message  # type: ignore[no-any-return]
    raise LookupError(needle)


def click(page: Page, user: str, message: dict[str, Any], label: str, **extra: Any) -> httpx.Response:
    button = next(b for b in buttons(message["html"]) if visible_label(message["html"], b) == label)
    return page.post("action", {"user": user, "channel": message["channel"], "message_ts": message["ts"],
                                "block_id": button.get("data-block-id"), "action_id": button["data-action-id"],
                                "value": button.get("data-value"), **extra})


def visible_label(html: str, button: dict[str, str]) -> str:
    labels: list[tuple[dict[str, str], str]] = []

    class Labels(HTMLParser):
        current: dict[str, str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "button":
                self.current = {k: v or "" for k, v in attrs}

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                labels.append((self.current, data.strip()))
                self.current = None

    Labels().feed(html)
    return next(text for attrs, text in labels if attrs == button)


def customer_out(page: Page, conversation: str) -> list[dict[str, Any]]:
    return [m for m in page.state()["customer"] if m["conversation"] == conversation and m["direction"] == "out"]


def test_the_whole_loop_from_the_page(sandbox: Page) -> None:
    page = sandbox
    written = page.post("customer", {"conversation": None, "text": "My parcel never arrived, order 4411",
                                     "name": "Dana Scully"})
    assert written.status_code == 200, written.text
    card = page.wait(lambda: card_of(page, ALICE, "order 4411"), what="the case card")
    assert "Dana Scully" in visible(card["html"])
    conversation = next(m["conversation"] for m in page.state()["customer"] if "order 4411" in m["text"])

    assert click(page, ALICE, card, "Claim").status_code == 200
    card = page.wait(lambda: (c := card_of(page, BOB, "order 4411")) and "Alice" in visible(c["html"]) and c,
                     what="Bob sees Alice owns the case")
    assert "Owner @Alice" in visible(card["html"])

    assert click(page, BOB, card, "Claim").status_code == 200  # a collision: only Bob is told, privately
    told = page.wait(lambda: [e for e in page.state(BOB)["ephemerals"] if "already claimed" in e["text"]],
                     what="Bob's private note")
    assert "@Alice" in visible(told[0]["html"]) and "Take over" in visible(told[0]["html"])
    assert not [e for e in page.state(ALICE)["ephemerals"] if "already claimed" in e["text"]]

    assert click(page, ALICE, card, "Reply").status_code == 200
    modal = page.wait(lambda: page.state(ALICE)["views"][0], what="the reply modal")
    assert modal["title"].startswith("Reply") and modal["submit"] == "Send"
    assert "Hi Dana, " in modal["html"]
    assert page.state(BOB)["views"] == []  # the modal is Alice's only
    block = next(b for b in json.loads(json.dumps(_input_ids(modal["html"]))))
    sent = page.post("submit", {"user": ALICE, "view_id": modal["id"],
                                "values": {block[0]: {block[1]: "Hi Dana, so sorry! A new parcel ships today."}}})
    assert sent.json() == {"ok": True}
    page.wait(lambda: customer_out(page, conversation), what="the reply at the customer")
    time.sleep(1.0)  # nothing else arrives: exactly one reply
    replies = customer_out(page, conversation)
    assert [r["text"] for r in replies] == ["Hi Dana, so sorry! A new parcel ships today."]
    assert page.state(ALICE)["views"] == []
    page.wait(lambda: "Reply by alice sent" in visible(card_of(page, ALICE, "order 4411")["html"]),
              what="the card says the reply was sent")

    card = card_of(page, ALICE, "order 4411")
    assert click(page, ALICE, card, "Resolve").status_code == 200
    modal = page.wait(lambda: page.state(ALICE)["views"][0], what="the resolve modal")
    assert page.post("submit", {"user": ALICE, "view_id": modal["id"], "values": {}}).json() == {"ok": True}
    prompt = page.wait(lambda: next(m for m in page.state(ALICE)["messages"]
                                    if m["thread_ts"] == card["ts"] and "Check-in due" in visible(m["html"])),
                       timeout=20, what="the check-in prompt in the thread")
    assert page.wait(lambda: card_of(page, ALICE, "order 4411")["reply_count"] >= 1)
    assert click(page, BOB, prompt, "Send check-in").status_code == 200
    page.wait(lambda: len(customer_out(page, conversation)) == 2, what="the check-in at the customer")
    assert customer_out(page, conversation)[1]["text"] == "Hi Dana, checking in: is everything sorted now?"

    # The customer answers: the case reopens.
    assert page.post("customer", {"conversation": conversation, "text": "Still nothing :("}).status_code == 200
    page.wait(lambda: "Reopened" in visible(card_of(page, ALICE, "order 4411")["html"]), what="reopened card")


def _input_ids(html: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    class Inputs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag in ("textarea", "input") and values.get("data-action-id"):
                found.append((values.get("data-block-id") or "", values["data-action-id"] or ""))

    Inputs().feed(html)
    return found


def open_modal(page: Page, user: str, text: str, button: str) -> tuple[dict[str, Any], str, str]:
    """A new customer writes `text`; `user` clicks `button` on its card: the modal and its first input."""
    page.post("customer", {"conversation": None, "text": text, "name": "Fox M"})
    card = page.wait(lambda: card_of(page, user, text))
    click(page, user, card, button)
    modal = page.wait(lambda: page.state(user)["views"][0])
    block, action = _input_ids(modal["html"])[0]
    return modal, block, action


def test_a_refused_submission_keeps_the_modal_open_with_the_reason(sandbox: Page) -> None:
    page = sandbox
    modal, block, action = open_modal(page, BOB, "Where is my refund? ref 7781", "Reply")
    answer = page.post("submit", {"user": BOB, "view_id": modal["id"], "values": {block: {action: "   "}}}).json()
    assert answer["ok"] is True and block in answer["errors"], answer
    assert page.state(BOB)["views"][0]["id"] == modal["id"]
    assert page.post("close", {"user": BOB, "view_id": modal["id"]}).json() == {"ok": True}
    assert page.state(BOB)["views"] == []


def test_slash_commands_answer_only_the_person_who_asked(sandbox: Page) -> None:
    page = sandbox
    assert page.post("command", {"user": CAROL, "channel": CASES, "text": "/social stats 7d"}).json() == {"ok": True}
    mine = page.wait(lambda: [e for e in page.state(CAROL)["ephemerals"] if "stats" in e["text"]])
    assert "Last 7 days" in visible(mine[-1]["html"])
    assert not [e for e in page.state(ALICE)["ephemerals"] if "stats" in e["text"]]
    hint = page.post("command", {"user": CAROL, "channel": CASES, "text": "hello team"})
    assert hint.status_code == 400 and "slash commands" in hint.json()["error"]


def test_escalation_pings_carol_in_the_escalation_channel(sandbox: Page) -> None:
    page = sandbox
    modal, block, action = open_modal(page, ALICE, "Your app deleted my photos! ticket 9001", "Escalate")
    page.post("submit", {"user": ALICE, "view_id": modal["id"], "values": {block: {action: "Data loss"}}})
    ping = page.wait(lambda: next(m for m in page.state(CAROL)["messages"] if m["channel"] == "C0ESCAL"
                                  and "escalated" in m["text"]))
    assert "@Carol" in visible(ping["html"]) and "Data loss" in visible(ping["html"])


def test_bad_requests_from_the_page_change_nothing(sandbox: Page) -> None:
    page = sandbox
    before = page.state()
    cases = [
        ("action", {"user": "U0MALLORY", "channel": CASES, "message_ts": "1.0", "action_id": "case.claim"}, 400),
        ("action", {"user": ALICE, "channel": CASES, "message_ts": "1.000001", "action_id": "case.claim"}, 404),
        ("submit", {"user": ALICE, "view_id": "V404", "values": {}}, 404),
        ("customer", {"conversation": "nope", "text": "hi"}, 404),
        ("customer", {"conversation": None, "text": "  "}, 400),
        ("command", {"user": ALICE, "channel": CASES, "text": "/deploy prod"}, 400),
    ]
    for path, body, status in cases:
        response = page.post(path, body)
        assert response.status_code == status, (path, response.text)
        assert response.json()["ok"] is False and response.json()["error"]
    malformed = page.http.post("/sandbox/ui/action", content=b"{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    after = page.state()
    assert [m["ts"] for m in after["messages"]] == [m["ts"] for m in before["messages"]]


def test_a_listening_tool_can_post_to_the_sandbox_with_its_documented_secret(sandbox: Page) -> None:
    event = {"id": "my-tool-1", "kind": "review", "text": "Great shop, slow delivery. code 5150",
             "author": {"id": "a-1", "name": "Rita Review"}, "platform": "google", "rating": 3}
    raw = json.dumps(event).encode()
    response = httpx.post(f"{sandbox.base}/webhooks/generic", content=raw,
                          headers={"Content-Type": "application/json",
                                   **signing.headers("sandbox-webhook-secret", raw)})
    assert response.status_code == 202, response.text
    card = sandbox.wait(lambda: card_of(sandbox, ALICE, "code 5150"))
    assert "Google reviews review" in visible(card["html"]) and "★★★☆☆" in visible(card["html"])
    forged = httpx.post(f"{sandbox.base}/webhooks/generic", content=raw,
                        headers={"Content-Type": "application/json", **signing.headers("wrong", raw)})
    assert forged.status_code == 401


def test_the_stream_pushes_changes_live(sandbox: Page) -> None:
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{sandbox.base}/sandbox/ui/events", timeout=15) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(":")  # connected
        sandbox.post("customer", {"conversation": None, "text": "Live? serial 6060", "name": "Lee"})
        deadline = time.monotonic() + 15
        for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if any(e["type"] == "message" and "serial 6060" in visible(e.get("html", "")) for e in seen):
                    break
            assert time.monotonic() < deadline
    assert any(e["type"] == "customer" and e["text"] == "Live? serial 6060" for e in seen)


def test_the_page_loads_nothing_from_the_internet(sandbox: Page) -> None:
    html = httpx.get(f"{sandbox.base}/sandbox").text
    static = "".join(httpx.get(f"{sandbox.base}/sandbox/static/{name}").text for name in ("app.js", "app.css"))
    for text in (html, static):
        assert "http://" not in text.replace("http://127.0.0.1", "") and "https://" not in text
        assert "//cdn" not in text and "fonts.googleapis" not in text


# ---- modes ------------------------------------------------------------------------------------------

def _run(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_sandbox_refuses_real_slack_credentials_unless_asked() -> None:
    result = _run(["sandbox"], clean_env(SLACK_BOT_TOKEN="xoxb-real-token-123"))
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN is set" in result.stderr and "--ignore-credentials" in result.stderr
    assert "xoxb-real-token-123" not in result.stderr + result.stdout


def test_sandbox_with_ignore_credentials_starts_on_loopback_and_never_uses_them(tmp_path: Path) -> None:
    env = clean_env(SLACK_BOT_TOKEN="xoxb-real-token-123", SLACK_SIGNING_SECRET="real-secret")
    log = tmp_path / "log"
    with running_sandbox("--no-feed", "--ignore-credentials", env=env, log=log) as (base, _):
        assert httpx.get(f"{base}/sandbox").status_code == 200
    text = log.read_text()
    assert "xoxb-real-token-123" not in text and "real-secret" not in text


def test_no_credentials_at_all_means_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=clean_env(PORT=str(port)), cwd=tmp_path,
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while "Uvicorn running" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
            state = httpx.get(f"http://127.0.0.1:{port}/sandbox/ui/state", params={"user": ALICE}).json()
            assert state["feed"]["available"] is True
        finally:
            process.terminate()
            process.wait(timeout=15)
    text = log.read_text()
    assert f"open http://127.0.0.1:{port}/sandbox" in text and "no Slack credentials" in text
    assert f"Uvicorn running on http://127.0.0.1:{port}" in text


@pytest.mark.parametrize(("args", "expected"), [
    (["sandbox", "--port"], "--port needs a value"),
    (["sandbox", "--port", "web"], "is not a TCP port number"),
    (["sandbox", "--colour"], "unknown option '--colour'"),
    (["serve"], "unknown command 'serve'"),
    (["sandbox", "--config", "/nonexistent.yml"], "cannot read /nonexistent.yml"),
])
def test_bad_command_lines_say_what_is_wrong(args: list[str], expected: str) -> None:
    result = _run(args, clean_env())
    assert result.returncode == 2 and expected in result.stderr, result.stderr


async def test_production_mode_serves_no_sandbox(bot: Any) -> None:
    for path in ("/sandbox", "/sandbox/static/app.js", "/sandbox/ui/state?user=U0ALICE",
                 "/sandbox/slack/api/auth.test", "/sandbox/customer/inbox"):
        response = await bot.http.get(path)
        assert response.status_code == 404, path
    posted = await bot.http.post("/sandbox/ui/action", json={"user": ALICE, "action_id": "case.claim"})
    assert posted.status_code == 404


def test_production_mode_never_imports_the_sandbox(tmp_path: Path) -> None:
    code = ("import sys, app\n"
            "from bot.config import Settings, config_from_mapping\n"
            "s = Settings(database_url='sqlite:///" + str(tmp_path / "p.db") + "', slack_bot_token='xoxb-1',"
            " slack_signing_secret='s')\n"
            "app.build(s, config_from_mapping({'slack': {'channel': 'C0CASES', 'escalation_channel': 'C0ESC'},"
            " 'sources': {'generic': {}}}), {'GENERIC_WEBHOOK_SECRET': 'g'})\n"
            "print(sorted(m for m in sys.modules if m.startswith('bot.sandbox')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_events_from_your_own_tool_show_in_the_customer_pane_and_can_be_answered(sandbox: Page) -> None:
    event = {"id": "my-tool-2", "kind": "comment", "text": "Is the shop open on Sunday? note 3141",
             "author": {"id": "c-9", "name": "Omar Own-Tool", "handle": "@omar"}, "platform": "facebook",
             "conversation": "tool-conv-9"}
    raw = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **signing.headers("sandbox-webhook-secret", raw)}
    assert httpx.post(f"{sandbox.base}/webhooks/generic", content=raw, headers=headers).status_code == 202
    assert httpx.post(f"{sandbox.base}/webhooks/generic", content=raw, headers=headers).status_code == 200  # repeat
    shown = sandbox.wait(lambda: [m for m in sandbox.state()["customer"] if m["conversation"] == "tool-conv-9"])
    assert [(m["direction"], m["author"], m["text"]) for m in shown] == [("in", "Omar Own-Tool", event["text"])]
    card = sandbox.wait(lambda: card_of(sandbox, ALICE, "note 3141"))
    answer = sandbox.post("customer", {"conversation": "tool-conv-9", "text": "And on Monday? note 3141"})
    assert answer.status_code == 200 and answer.json()["case"] == case_number(card)


def test_the_sample_feed_brings_cases_and_stops_when_the_page_says_stop(tmp_path: Path) -> None:
    with running_sandbox(log=tmp_path / "log") as (base, _):
        page = Page(base)
        page.wait(lambda: page.state()["feed"] == {"running": True, "available": True}, what="the feed starts")
        cards = page.wait(lambda: [m for m in page.state()["messages"] if m["channel"] == CASES
                                   and not m["thread_ts"]], timeout=30, what="a case from the sample feed")
        assert "case #" in visible(cards[0]["html"])
        incoming = [m for m in page.state()["customer"] if m["direction"] == "in"]
        assert incoming and all(m["text"] for m in incoming)
        stopped = page.post("feed", {"running": False})
        assert stopped.json() == {"ok": True, "running": False}
        assert page.state()["feed"]["running"] is False
        count = len(page.state()["customer"])
        time.sleep(2)
        assert len(page.state()["customer"]) == count
        assert page.post("feed", {"running": "yes"}).status_code == 400
        assert page.post("feed", {"running": True}).json()["running"] is True


def test_the_page_api_refuses_other_sites(sandbox: Page) -> None:
    # A form on another web site can only send form-encoded or text bodies: refused before anything happens.
    form = sandbox.http.post("/sandbox/ui/feed", content=b'{"running": true}', headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    # A web site whose DNS name points at 127.0.0.1 (DNS rebinding) gets nothing.
    rebound = sandbox.http.get("/sandbox/ui/state", params={"user": ALICE}, headers={"Host": f"evil.example:{_port(sandbox)}"})
    assert rebound.status_code == 403
    assert sandbox.http.get("/sandbox/ui/state", params={"user": ALICE},
                            headers={"Host": f"localhost:{_port(sandbox)}"}).status_code == 200


def _port(page: Page) -> int:
    return int(page.base.rsplit(":", 1)[1])


def test_take_over_from_the_private_note_and_the_previous_owner_is_told(sandbox: Page) -> None:
    page = sandbox
    page.post("customer", {"conversation": None, "text": "Charged twice, receipt 2718", "name": "Hana"})
    card = page.wait(lambda: card_of(page, ALICE, "receipt 2718"))
    click(page, ALICE, card, "Claim")
    page.wait(lambda: "@Alice" in visible(card_of(page, BOB, "receipt 2718")["html"]))
    click(page, BOB, card_of(page, BOB, "receipt 2718"), "Claim")
    number = case_number(card)
    note = page.wait(lambda: next(e for e in page.state(BOB)["ephemerals"]
                                  if e["text"].startswith(f"Case #{number} is already claimed")))
    take = next(b for b in buttons(note["html"]) if b["data-action-id"] == "case.take_over")
    answer = page.post("action", {"user": BOB, "channel": note["channel"], "ephemeral_id": note["id"],
                                  "block_id": take.get("data-block-id"), "action_id": take["data-action-id"],
                                  "value": take.get("data-value")})
    assert answer.json() == {"ok": True}
    page.wait(lambda: "Owner @Bob" in visible(card_of(page, ALICE, "receipt 2718")["html"]), what="Bob owns it")
    told = page.wait(lambda: [e for e in page.state(ALICE)["ephemerals"] + [
        m for m in page.state(ALICE)["messages"] if m["channel"] == ALICE] if "took over" in visible(e["html"])],
        what="Alice is told")
    assert f"bob took over case #{number} from you" in visible(told[0]["html"])
    # Someone else cannot click Bob's private note.
    stolen = page.post("action", {"user": CAROL, "channel": note["channel"], "ephemeral_id": note["id"],
                                  "block_id": take.get("data-block-id"), "action_id": take["data-action-id"]})
    assert stolen.status_code == 404



def case_number(card: dict[str, Any]) -> int:
    found = re.search(r"case #(\d+)", visible(card["html"]))
    assert found, card
    return int(found.group(1))
