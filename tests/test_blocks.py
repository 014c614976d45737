"""What a card shows, and what hostile customer text can never do to it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bot.chat.slack import blocks as render
from bot.chat.slack.mrkdwn import ZWJ, escape
from bot.core.view import CaseView, ReplyView, StatsView
from tests.fakes.slack_api import message_errors, view_errors
from tests.kit.views import case_view

HOSTILE = [
    "<!channel> refund me",
    "<!here|here> and <!everyone>",
    "hey <@U0ALICE> and <#C0CASES>",
    "<https://evil.example/login|https://bank.example> please log in",
    "<!subteam^S0ONCALL> wake up",
    "@channel @here @everyone",
    "&lt;!channel&gt; pre-escaped",
    "```\ncode``` *bold* _it_ ~strike~ > quote",
    "\x00\x07 control \u202e reversed",
]


def view(text: str, **changes: object) -> CaseView:
    return case_view(text, **{"customer_name": "Jane <!channel> Doe", **changes})


def mrkdwn_texts(blocks: list[dict[str, object]]) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(str(node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


SPECIAL = re.compile(r"<(?!@U0[A-Z]+>|!date\^|https://social\.example/)[^>]*>")
"""Any <…> markup in a card other than the ones the bot itself builds (owner mention, date, links it made)."""


@pytest.mark.parametrize("text", HOSTILE)
def test_customer_text_never_becomes_mentions_broadcasts_or_links(text: str) -> None:
    _, blocks = render.card(view(text))
    assert message_errors(blocks) == []
    for mrkdwn in mrkdwn_texts(blocks):
        assert not SPECIAL.search(mrkdwn), mrkdwn
        assert "@channel" not in mrkdwn and "@here" not in mrkdwn and "@everyone" not in mrkdwn
        assert "\x00" not in mrkdwn and "\x07" not in mrkdwn


def test_the_customer_still_reads_what_they_wrote() -> None:
    _, blocks = render.card(view("<https://evil.example|https://bank.example> & @here"))
    shown = json.dumps(blocks)
    assert "&lt;https://evil.example|https://bank.example&gt; &amp; @" + ZWJ + "here" in json.loads(shown)[1]["text"]["text"]
    assert escape("a < b > c & d") == "a &lt; b &gt; c &amp; d"


def test_long_text_is_cut_to_block_kit_limits_with_a_link_to_the_original() -> None:
    _, blocks = render.card(view("x" * 10_000 + " & <tail>"))
    assert message_errors(blocks) == []
    message = blocks[1]["text"]["text"]  # type: ignore[index]
    assert len(message) <= 3000
    assert message.endswith("<https://social.example/@jane/1|Read the whole message>")


def test_entities_are_never_split_when_cutting() -> None:
    _, blocks = render.card(view("&" * 5000, url=None))
    message = blocks[1]["text"]["text"]  # type: ignore[index]
    assert len(message) <= 3000 and message.endswith("…")
    assert re.fullmatch(r"> (&amp;)+…", message)


def test_only_http_links_from_a_platform_become_links() -> None:
    _, blocks = render.card(view("hi", url="javascript:alert(1)"))
    text = json.dumps(blocks)
    assert "View on Mastodon" in text and "<javascript:" not in text
    _, blocks = render.card(view("hi", url="https://social.example/@jane/1|https://bank.example"))
    assert "bank.example>" not in json.dumps(blocks)


def test_card_shows_state_owner_and_the_buttons_that_fit() -> None:
    _, blocks = render.card(view("hi", status="claimed", owner="U0ALICE", owner_name="Alice",
                                 actions=("claim", "release", "reply", "escalate", "resolve")))
    text = json.dumps(blocks, ensure_ascii=False)
    assert "Claimed" in text and "<@U0ALICE>" in text and "1,234 followers" in text
    elements = blocks[-1]["elements"]  # type: ignore[index]
    labels = [e["text"]["text"] for e in elements if e["type"] == "button"]
    assert labels == ["Claim", "Release", "Reply", "Escalate", "Resolve"]
    menu = elements[-1]
    assert menu["type"] == "static_select" and menu["action_id"] == "case.priority"
    assert [o["value"] for o in menu["options"]] == ["42:urgent", "42:high", "42:normal", "42:low"]
    assert menu["initial_option"]["value"] == "42:normal"
    assert "<!date^1796117400^" in text  # age shown in each reader's own time zone


def test_failed_reply_shows_the_reason_and_a_retry_button() -> None:
    failed = ReplyView(id=7, kind="reply", status="failed", text="Hi", author_name="Alice", url=None,
                       error="Mastodon: HTTP 422 <b>Validation failed</b>")
    _, blocks = render.card(view("hi", last_reply=failed, actions=("claim", "reply", "escalate", "resolve", "retry")))
    text = json.dumps(blocks)
    assert ":x: Reply by Alice failed: Mastodon: HTTP 422 &lt;b&gt;Validation failed&lt;/b&gt;" in text
    retry = [e for e in blocks[-1]["elements"] if e["type"] == "button"][-1]  # type: ignore[index]
    assert retry["action_id"] == "reply.retry" and retry["value"] == "7"


def test_resolved_card_offers_only_reopen_and_shows_the_note() -> None:
    _, blocks = render.card(view("hi", status="resolved", resolution_note="Refunded <!channel>", actions=("reopen",)))
    assert [e["action_id"] for e in blocks[-1]["elements"]] == ["case.reopen"]  # type: ignore[index]
    assert "Refunded &lt;!channel&gt;" in json.dumps(blocks)


def test_modals_pass_slacks_limits_even_with_huge_saved_replies() -> None:
    saved = [(f"Saved reply number {i} with a long title", "x" * 5000) for i in range(120)]
    modal = render.reply_modal(view("hi" * 3000), greeting="Hi Jane, ", saved=saved, max_length=488,
                               prefix="@jane@social.example ")
    assert view_errors(modal) == []
    field = next(b for b in modal["blocks"] if b["type"] == "input")
    assert field["element"]["max_length"] == 488
    assert "starting with @jane@social.example" in field["hint"]["text"]
    assert view_errors(render.escalate_modal(view("hi"))) == []
    assert view_errors(render.resolve_modal(view("hi"))) == []


def test_stats_render() -> None:
    stats = StatsView(period="today", since=datetime(2026, 12, 2, tzinfo=UTC), new=3, open_now=1, claimed_now=1,
                      resolved=1, escalated=0, by_platform_kind=[("mastodon", "dm", 2), ("generic", "mention", 1)],
                      first_response_median_s=300.0, first_response_p90_s=4000.0, resolution_median_s=7200.0,
                      response_rate=2 / 3, per_person=[("U0ALICE", "Alice", 2, 1, 1)])
    _, blocks = render.stats(stats)
    text = json.dumps(blocks, ensure_ascii=False)
    assert message_errors(blocks) == []
    assert "3 new" in text and "5m" in text and "67m" in text and "2.0h" in text and "67%" in text
    assert "Mastodon DM: 2" in text and "<@U0ALICE>: 2 claimed · 1 replies · 1 resolved" in text
