"""Pure units: Mastodon's HTML and notifications → what the team reads, id ordering, and the webhook signature."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import signing
from adapters.mastodon.parse import html_to_text, id_key, parse_notification
from bot.core.model import Kind
from tests.fakes.receiver import sign as receiver_sign

RECORDED = Path(__file__).parent / "fixtures" / "mastodon" / "notifications_mention_recorded.json"


def recorded_notification() -> dict[str, Any]:
    body = json.loads(RECORDED.read_text())["response_body"]
    assert len(body) == 1
    return copy.deepcopy(body[0])  # type: ignore[no-any-return]


def link(url: str) -> str:
    """A link the way Mastodon renders one in `content`: scheme and tail hidden, the middle shown."""
    scheme, _, rest = url.partition("://")
    shown, hidden = rest[:30], rest[30:]
    return (f'<a href="{url}" rel="nofollow noopener" translate="no" target="_blank">'
            f'<span class="invisible">{scheme}://</span><span class="{"ellipsis" if hidden else ""}">{shown}</span>'
            f'<span class="invisible">{hidden}</span></a>')


# ------------------------------------------------------------------------------------------ html_to_text

def test_paragraphs_become_blank_lines_and_breaks_newlines() -> None:
    content = "<p>First paragraph</p><p>Second line one<br />line two<br>line three</p><p>Third</p>"
    assert html_to_text(content) == "First paragraph\n\nSecond line one\nline two\nline three\n\nThird"


def test_entities_are_decoded_once() -> None:
    assert html_to_text("<p>Fish &amp; chips &lt;3 &quot;now&quot; I&#39;m &gt; hungry&#x21;</p>") == \
        "Fish & chips <3 \"now\" I'm > hungry!"


def test_an_entity_the_customer_typed_is_kept_as_typed() -> None:
    # The customer wrote "AT&amp;T" (literally); Mastodon escapes her '&' once.
    assert html_to_text("<p>AT&amp;amp;T and &amp;lt;b&amp;gt;</p>") == "AT&amp;T and &lt;b&gt;"


def test_a_mention_reads_as_the_handle() -> None:
    content = ('<p><span class="h-card" translate="no"><a href="https://social.example/@acme" '
               'class="u-url mention">@<span>acme</span></a></span> my order <br>never arrived &amp; '
               'I&#39;m upset</p>')
    assert html_to_text(content) == "@acme my order \nnever arrived & I'm upset"


def test_a_hashtag_reads_as_the_tag() -> None:
    content = ('<p>Love it <a href="https://social.example/tags/acme" class="mention hashtag" rel="tag">'
               '#<span>acme</span></a></p>')
    assert html_to_text(content) == "Love it #acme"


def test_a_short_link_loses_nothing_visible() -> None:
    text = html_to_text(f"<p>See {link('https://acme.example/a')} please</p>")
    assert "acme.example/a" in text and "<" not in text and "span" not in text
    assert text.startswith("See ") and text.endswith(" please")


def test_a_long_link_reads_as_the_whole_url_the_customer_typed() -> None:
    url = "https://acme.example/orders/123456/tracking?lang=en"
    assert html_to_text(f"<p>Tracking says delivered: {link(url)} but nothing here</p>") == \
        f"Tracking says delivered: {url} but nothing here"


def test_text_in_hidden_spans_is_kept_with_its_nested_spans_in_order() -> None:
    content = '<p>a<span class="invisible">b<span>c</span>d</span>e<span>f</span></p>'
    assert html_to_text(content) == "abcdef"


def test_surrounding_whitespace_and_empty_content() -> None:
    assert html_to_text("  <p> hi </p>\n") == "hi"
    assert html_to_text("") == ""


# ------------------------------------------------------------------------------------------ parse_notification

def test_the_recorded_mention_notification_becomes_an_item() -> None:
    notification = recorded_notification()
    item = parse_notification(notification, brand_acct="mastodonpy_test")
    assert item is not None
    assert item.platform == "mastodon"
    assert item.platform_id == "117020576916218297"
    assert item.kind == Kind.MENTION
    assert item.text == "@mastodonpy_test hello!"
    assert item.author.id == "117020565693913441"
    assert item.author.handle == "@admin"
    assert item.author.name == ""
    assert item.author.followers == 1
    assert item.conversation == "thread:117020576916218297"
    assert item.url == "http://localhost:3000/@admin/117020576916218297"
    assert item.created_at == datetime(2026, 8, 1, 13, 51, 39, 138000, tzinfo=UTC)
    assert item.parent_id is None
    assert item.reply_to == {"via": "mastodon", "status_id": "117020576916218297", "acct": "admin",
                             "visibility": "public", "mentions": []}
    assert item.raw == notification


def test_other_accounts_mentioned_are_kept_for_the_reply() -> None:
    notification = recorded_notification()
    item = parse_notification(notification, brand_acct="acme")
    assert item is not None and item.reply_to["mentions"] == ["mastodonpy_test"]


def test_a_direct_mention_is_a_dm_one_case_per_customer() -> None:
    notification = recorded_notification()
    notification["status"]["visibility"] = "direct"
    item = parse_notification(notification)
    assert item is not None
    assert item.kind == Kind.DM
    assert item.conversation == "dm:117020565693913441"
    assert item.reply_to["visibility"] == "direct"


def test_a_reply_names_its_parent_status() -> None:
    notification = recorded_notification()
    notification["status"]["in_reply_to_id"] = "117020576916218001"
    item = parse_notification(notification)
    assert item is not None and item.parent_id == "117020576916218001"


def test_a_content_warning_is_shown_before_the_text() -> None:
    notification = recorded_notification()
    notification["status"]["spoiler_text"] = "order trouble"
    item = parse_notification(notification)
    assert item is not None and item.text == "[CW: order trouble]\n@mastodonpy_test hello!"


@pytest.mark.parametrize("kind", ["favourite", "reblog", "follow", "poll", "status", "update", "admin.sign_up"])
def test_other_notification_types_are_not_items(kind: str) -> None:
    notification = recorded_notification()
    notification["type"] = kind
    assert parse_notification(notification) is None


def test_a_mention_without_its_status_is_not_an_item() -> None:
    notification = recorded_notification()
    del notification["status"]
    assert parse_notification(notification) is None


# ------------------------------------------------------------------------------------------ id_key

def test_ids_order_as_numbers_not_as_text() -> None:
    ids = ["117020576916218297", "9", "20", "110000000000000001", "100", "99999999999999999"]
    assert sorted(ids, key=id_key) == ["9", "20", "100", "99999999999999999", "110000000000000001",
                                       "117020576916218297"]
    assert sorted(ids) != sorted(ids, key=id_key)  # text order would get it wrong
    assert id_key("10") > id_key("9")


def test_non_numeric_ids_sort_after_numeric_ones() -> None:
    assert sorted(["b", "12", "a", "3"], key=id_key) == ["3", "12", "a", "b"]


# ------------------------------------------------------------------------------------------ signing

SECRET = "generic-test-secret"
BODY = b'{"id": "evt-1"}'
STAMP = "1700000000"
KNOWN = "sha256=3e7e121e3ed51d29206150847cc56a2c8a8a672c7a29d95bf289275f27eb1437"


def test_sign_matches_an_independent_hmac() -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), STAMP.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert expected == KNOWN
    assert signing.sign(SECRET, STAMP, BODY) == KNOWN
    assert receiver_sign(SECRET, STAMP, BODY) == KNOWN  # what the fake listening tool checks


def test_headers_carry_the_timestamp_and_its_signature() -> None:
    headers = signing.headers(SECRET, BODY, now=1_700_000_000.9)
    assert headers == {"X-SocialOps-Timestamp": STAMP, "X-SocialOps-Signature": KNOWN}


def test_verify_accepts_the_known_vector() -> None:
    assert signing.verify(SECRET, STAMP, KNOWN, BODY, now=1_700_000_000) is None


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_verify_accepts_timestamps_within_five_minutes(skew: int) -> None:
    assert signing.verify(SECRET, STAMP, KNOWN, BODY, now=1_700_000_000 + skew) is None


@pytest.mark.parametrize("skew", [-301, 301, 360, -3600])
def test_verify_refuses_timestamps_outside_five_minutes(skew: int) -> None:
    problem = signing.verify(SECRET, STAMP, KNOWN, BODY, now=1_700_000_000 + skew)
    assert problem is not None and "5-minute window" in problem


@pytest.mark.parametrize(("secret", "stamp", "signature", "body"), [
    ("another-secret", STAMP, KNOWN, BODY),
    (SECRET, STAMP, KNOWN, BODY + b" "),
    (SECRET, "1700000001", KNOWN, BODY),
    (SECRET, STAMP, KNOWN.upper(), BODY),
    (SECRET, STAMP, KNOWN.removeprefix("sha256="), BODY),
    (SECRET, STAMP, "sha256=" + "0" * 64, BODY),
], ids=["secret", "body", "timestamp", "uppercase", "no-prefix", "zeros"])
def test_verify_refuses_a_signature_that_does_not_match(secret: str, stamp: str, signature: str, body: bytes) -> None:
    assert signing.verify(secret, stamp, signature, body, now=1_700_000_000) == "signature does not match"


@pytest.mark.parametrize(("stamp", "signature"), [(None, KNOWN), (STAMP, None), ("", KNOWN), (STAMP, ""),
                                                  (None, None)])
def test_verify_refuses_missing_headers(stamp: str | None, signature: str | None) -> None:
    problem = signing.verify(SECRET, stamp, signature, BODY, now=1_700_000_000)
    assert problem == "missing X-SocialOps-Timestamp or X-SocialOps-Signature header"


@pytest.mark.parametrize("stamp", ["yesterday", "1700000000.5", "0x6553f100"])
def test_verify_refuses_a_timestamp_that_is_not_unix_seconds(stamp: str) -> None:
    problem = signing.verify(SECRET, stamp, signing.sign(SECRET, stamp, BODY), BODY, now=1_700_000_000)
    assert problem == "X-SocialOps-Timestamp is not a unix time"


def test_verify_refuses_a_non_ascii_signature_without_raising() -> None:
    assert signing.verify(SECRET, STAMP, "sha256=\u00e9", BODY, now=1_700_000_000) == "signature does not match"


def test_html_to_text_keeps_what_was_typed_whatever_the_markup() -> None:
    from adapters.mastodon.parse import html_to_text

    html = ('<p>Hi <span class="h-card"><a href="https://m.example/@acme" title="a>b" class="u-url mention">'
            '@<span>acme</span></a></span> Grüße 📦 &amp; &lt;b&gt;</p><p>سلام<br/>cafe\u0301</p>')
    assert html_to_text(html) == "Hi @acme Grüße 📦 & <b>\n\nسلام\ncafe\u0301"
    assert html_to_text("no markup at all ") == "no markup at all"
