"""The Teams case card (Adaptive Card 1.5) from the same neutral view as Slack's: what a Teams user sees,
which buttons they get, and that customer text can never format, link or ping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.chat.teams.cards import MAX_CARD_BYTES, Forms, case_card
from bot.core.view import ReplyView
from tests.kit.views import case_view

HOSTILE = ("**bold** [click](https://evil.example) <at>Carol</at> @channel <script>alert(1)</script> "
           "![img](https://evil.example/x.png) {{DATE(2020-01-01T00:00:00Z)}}")


def texts(card: dict[str, Any]) -> list[str]:
    """Every string a Teams user reads, by where it sits: TextBlock text, TextRun text, fact values."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("TextBlock", "TextRun"):
                found.append(node["text"])
            if node.get("type") == "FactSet":
                found.extend(f"{fact['title']}: {fact['value']}" for fact in node["facts"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card["body"])
    return found


def test_a_new_case_card_shows_the_case_and_offers_the_four_actions() -> None:
    card = case_card(case_view("Mein Paket ist kaputt 📦 — سفارش من نرسید — cafe\u0301", platform="x", rating=None))
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    shown = texts(card)
    assert shown[0] == "X mention · case #42"
    assert "Jane Doe" in shown and " (@jane@social.example · 1,234 followers)" in shown
    assert "Mein Paket ist kaputt 📦 — سفارش من نرسید — cafe\u0301" in shown
    assert "Status: 🔵 Open" in shown and "Owner: nobody" in shown and "Messages: 1" in shown
    assert [(a["title"], a.get("verb")) for a in card["actions"]] == [
        ("Claim", "case.claim"), ("Reply", "case.reply"), ("Escalate", "case.escalate"), ("Resolve", "case.resolve"),
        ("View on X", None)]
    assert all(a["data"] == {"case": 42} for a in card["actions"] if a["type"] == "Action.Execute")


def test_state_changes_show_on_the_card() -> None:
    sent = ReplyView(id=7, kind="reply", status="failed", text="Hi", author_name="Alice", url=None,
                     error="HTTP 403 forbidden")
    card = case_card(case_view(status="claimed", owner="U0ALICE", owner_name="Alice", escalated=True,
                               escalation_reason="legal threat", escalated_by="Bob", last_reply=sent,
                               rating=2, platform="google", kind="review",
                               actions=("release", "reply", "escalate", "resolve", "retry")))
    shown = texts(card)
    assert shown[0].startswith("Google reviews review · case #42 · ★★☆☆☆") and "🚨 Escalated" in shown[0]
    assert "Status: 🟡 Claimed" in shown and "Owner: Alice" in shown
    assert "legal threat" in shown and "❌ Reply by Alice failed: " in shown and "HTTP 403 forbidden" in shown
    retry = next(a for a in card["actions"] if a["title"] == "Retry")
    assert retry["verb"] == "reply.retry" and retry["data"] == {"case": 42, "reply": 7}


def test_customer_text_is_never_markup_a_link_or_a_mention() -> None:
    card = case_card(case_view(HOSTILE, customer_name="<at>Carol</at> **Boss**", customer_handle="[x](https://e.x)",
                               url="javascript:alert(1)"))
    raw = json.dumps(card, ensure_ascii=False)
    # Customer text only in TextRuns (Teams renders them literally) — never in a markdown TextBlock.
    blocks = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert all("evil" not in text and "<at>" not in text for text in blocks)
    assert HOSTILE in texts(card)
    assert "msteams" not in json.dumps(card["body"]) and "entities" not in raw  # no mention entities at all
    assert not any(a["type"] == "Action.OpenUrl" for a in card["actions"])  # a non-https URL is not linked


def test_a_huge_message_is_cut_far_below_teams_limit() -> None:
    card = case_card(case_view("ä" * 40_000 + "🙂" * 5000, opened_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC)))
    assert len(json.dumps(card).encode()) < MAX_CARD_BYTES / 5
    assert any(text.endswith("…") and len(text) == 3000 for text in texts(card))
    assert "Opened: {{DATE(2026-12-01T09:30:00Z, SHORT)}} {{TIME(2026-12-01T09:30:00Z)}}" in texts(card)


def test_forms_open_inside_the_card_with_the_greeting_saved_replies_and_the_limit() -> None:
    forms = Forms(greeting="Hi Jane, ", saved=[("Sorry", "Hi Jane, sorry about that.")], max_length=271,
                  prefix="@jane@social.example ", notice="Messenger: replies after 24 h go out as HUMAN_AGENT.",
                  modes=[("public", "Under the comment"), ("private", "Privately")])
    card = case_card(case_view("Where is my parcel?"), forms)
    reply, escalate, resolve = (next(a for a in card["actions"] if a["title"] == t)
                                for t in ("Reply", "Escalate", "Resolve"))
    assert {reply["type"], escalate["type"], resolve["type"]} == {"Action.ShowCard"}
    inputs = {item["id"]: item for item in reply["card"]["body"] if "id" in item}
    assert inputs["text"]["value"] == "Hi Jane, " and inputs["text"]["maxLength"] == 271
    assert [c["value"] for c in inputs["mode"]["choices"]] == ["public", "private"]
    assert inputs["saved"]["choices"] == [{"title": "Sorry: Hi Jane, sorry about that.", "value": "0"}]
    shown = json.dumps(reply["card"], ensure_ascii=False)
    assert "Sent as a reply starting with @jane@social.example · Up to 271 characters." in shown
    assert "HUMAN_AGENT" in shown
    assert [(a["title"], a["verb"]) for a in reply["card"]["actions"]] == [
        ("Send", "reply.send"), ("Send saved reply", "reply.send_saved")]
    assert [a["verb"] for a in escalate["card"]["actions"]] == ["escalate.send"]
    assert [a["verb"] for a in resolve["card"]["actions"]] == ["resolve.send"]
    # The platform refuses a reply now: Reply asks the bot, which says why, instead of opening a form.
    refused = case_card(case_view("Old DM"), Forms(greeting="Hi, ", saved=[], max_length=10, prefix="",
                                                   refusal="The 7-day window has closed."))
    assert next(a for a in refused["actions"] if a["title"] == "Reply")["type"] == "Action.Execute"


def test_a_claimed_card_offers_take_over_instead_of_claim() -> None:
    card = case_card(case_view(status="claimed", owner="29:dan", owner_name="Dan",
                               actions=("claim", "release", "reply", "escalate", "resolve")))
    assert [a["title"] for a in card["actions"]][:2] == ["Take over", "Release"]
    assert card["actions"][0]["verb"] == "case.take_over"
