"""Pure units: Bluesky notifications and search hits → Items, grapheme counting against the PDS's segmenter,
UTF-8 byte offsets of facets, record keys and the polling mark."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.bluesky.parse import format_time, parse_notification, parse_post_view, parse_time, post_url
from adapters.bluesky.source import SEEN_MAX, Mark, search_key
from adapters.bluesky.text import (
    TID,
    byte_span,
    facets,
    grapheme_count,
    graphemes,
    handle_pattern,
    link_spans,
    record_key,
    tid_from_int,
)
from bot.core.model import Kind

FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
BRAND = "did:plc:brandbrandbrandbrandbran"
JANE = "did:plc:janejanejanejanejanejane"
POST = "app.bsky.feed.post"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def snapshot(reason: str) -> dict[str, Any]:
    notifications = fixture("listNotifications_mention_reply_snapshot.json")["notifications"]
    found: dict[str, Any] = copy.deepcopy(next(n for n in notifications if n["reason"] == reason))
    return found


def notification(reason: str = "mention", *, text: str = "@acme.test help", rkey: str = "3k43tv4rft22g",
                 did: str = JANE, handle: str = "jane.test", reply: dict[str, Any] | None = None,
                 **record: Any) -> dict[str, Any]:
    """A notification as the AppView sends one, with real-looking identifiers."""
    body: dict[str, Any] = {"$type": POST, "text": text, "createdAt": "2024-05-01T10:00:00.000Z", **record}
    if reply:
        body["reply"] = reply
    return {"uri": f"at://{did}/{POST}/{rkey}", "cid": "bafyreig2fjxi3rptqdgylg7e5hmjl6mcke7rn2b6cugzlqq3i4zu6rq52q",
            "author": {"did": did, "handle": handle, "displayName": "Jane Doe", "labels": [], "viewer": {}},
            "reason": reason, "record": body, "isRead": False, "indexedAt": "2024-05-01T10:00:00.250Z",
            "labels": []}


# ------------------------------------------------------------------------------------------ recorded snapshot

def test_the_recorded_mention_becomes_a_mention_item() -> None:
    raw = snapshot("mention")
    item = parse_notification(raw, brand_did="user(1)")
    assert item is not None
    assert (item.platform, item.platform_id, item.kind) == ("bluesky", "record(5)", Kind.MENTION)
    assert item.text == "@alice.bluesky.xyz is the best"
    assert (item.author.id, item.author.handle, item.author.name, item.author.followers) == \
        ("user(0)", "@dan.test", "", None)
    assert item.conversation == f"record(5)|{item.author.id}" and item.parent_id is None
    assert item.created_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert item.url is None  # the snapshot's placeholder is not an at-uri
    assert item.reply_to == {"via": "bluesky", "uri": "record(5)", "cid": "cids(4)",
                             "root": {"uri": "record(5)", "cid": "cids(4)"}, "handle": "dan.test", "did": "user(0)"}
    assert item.raw == raw


def test_the_recorded_reply_is_a_comment_in_the_root_s_conversation() -> None:
    item = parse_notification(snapshot("reply"), brand_did="user(1)")
    assert item is not None
    assert item.kind == Kind.COMMENT and item.text == "indeed"
    assert item.conversation == f"record(4)|{item.author.id}"  # the thread's root, per customer
    assert item.parent_id == "record(2)"
    assert item.reply_to["root"] == {"uri": "record(4)", "cid": "cids(3)"}
    assert (item.reply_to["uri"], item.reply_to["cid"]) == ("record(10)", "cids(8)")
    assert item.author.handle == "@carol.test"


@pytest.mark.parametrize("reason", ["like", "repost", "follow", "starterpack-joined", "verified",
                                    "like-via-repost", "subscribed-post", "", None])
def test_other_reasons_are_not_items(reason: str | None) -> None:
    raw = snapshot("mention")
    raw["reason"] = reason
    assert parse_notification(raw, brand_did="user(1)") is None


def test_the_brand_s_own_post_is_an_echo() -> None:
    raw = snapshot("mention")
    assert parse_notification(raw, brand_did="user(0)") is None
    assert parse_notification(notification(did=BRAND), brand_did=BRAND) is None


# ------------------------------------------------------------------------------------------ real-looking items

def test_link_conversation_and_reply_target_of_a_top_level_mention() -> None:
    item = parse_notification(notification(), brand_did=BRAND)
    assert item is not None
    uri = f"at://{JANE}/{POST}/3k43tv4rft22g"
    assert item.url == "https://bsky.app/profile/jane.test/post/3k43tv4rft22g"
    assert item.conversation == f"{uri}|{item.author.id}" and item.parent_id is None
    assert item.reply_to["root"] == {"uri": uri, "cid": item.reply_to["cid"]}
    assert item.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_a_mention_answering_the_brand_s_post_is_a_comment() -> None:
    ours = {"uri": f"at://{BRAND}/{POST}/3kbrandpost22", "cid": "bafyreibrand"}
    root = {"uri": f"at://{JANE}/{POST}/3kjaneroot222", "cid": "bafyreiroot"}
    item = parse_notification(notification("mention", reply={"root": root, "parent": ours}), brand_did=BRAND)
    assert item is not None
    assert item.kind == Kind.COMMENT  # AppView says "mention" when the reply also mentions us
    assert item.parent_id == ours["uri"] and item.conversation == f"{root['uri']}|{item.author.id}"
    assert item.reply_to["root"] == root


def test_customers_answering_one_brand_post_are_cases_of_their_own() -> None:
    announcement = {"uri": f"at://{BRAND}/{POST}/3kannounce22", "cid": "bafyreiann"}
    thread = {"root": announcement, "parent": announcement}
    jane = parse_notification(notification("reply", reply=thread, rkey="3kjane0000022"), brand_did=BRAND)
    omar = parse_notification(notification("reply", reply=thread, rkey="3komar0000022", did="did:plc:omar",
                                           handle="omar.test"), brand_did=BRAND)
    assert jane is not None and omar is not None
    assert jane.conversation != omar.conversation
    assert jane.conversation.startswith(announcement["uri"]) and omar.conversation.startswith(announcement["uri"])


def test_a_quote_is_a_mention() -> None:
    embed = {"$type": "app.bsky.embed.record", "record": {"uri": f"at://{BRAND}/{POST}/3kx", "cid": "bafyreiq"}}
    item = parse_notification(notification("quote", text="look at this", embed=embed), brand_did=BRAND)
    assert item is not None and item.kind == Kind.MENTION and item.text == "look at this"


@pytest.mark.parametrize("text", [
    "Grüße! Meine Bestellung ist nicht angekommen, Öl & Äpfel fehlen.",
    "Hyvää päivää, tilaukseni ei ole vielä saapunut.",
    "سلام، سفارش من هنوز نرسیده است. می‌خواهم لغو کنم",
    "Cafe\u0301 z\u0337\u0335a\u0336l\u0334go 👨‍👩‍👧‍👦 🇩🇪 👍🏽 ❤️",
    "line one\nline two\r\n\ttabbed  double  spaced ",
])
def test_the_customer_s_text_keeps_every_character(text: str) -> None:
    item = parse_notification(notification(text=text), brand_did=BRAND)
    assert item is not None and item.text == text


def test_an_account_without_a_valid_handle_is_linked_by_did() -> None:
    item = parse_notification(notification(handle="handle.invalid"), brand_did=BRAND)
    assert item is not None
    assert item.author.handle == "" and item.reply_to["handle"] == ""
    assert item.url == f"https://bsky.app/profile/{JANE}/post/3k43tv4rft22g"


def test_a_post_with_only_images_says_so() -> None:
    embed = {"$type": "app.bsky.embed.images", "images": [{"alt": "a"}, {"alt": "b"}]}
    item = parse_notification(notification(text="", embed=embed), brand_did=BRAND)
    assert item is not None and item.text == "[2 images]"


@pytest.mark.parametrize("mutate", [
    lambda n: n.pop("record"),
    lambda n: n.update(record="not a record"),
    lambda n: n.update(record={"$type": "app.bsky.feed.like", "subject": {}}),
    lambda n: n.pop("uri"),
    lambda n: n.update(cid=None),
    lambda n: n.update(author=None),
    lambda n: n["record"].update(text=None, createdAt="yesterday", reply="nonsense"),
    lambda n: n["record"].update(reply={"root": "x", "parent": {"uri": 5}}),
])
def test_odd_input_never_raises(mutate: Any) -> None:
    raw = notification()
    mutate(raw)
    item = parse_notification(raw, brand_did=BRAND)
    assert item is None or item.platform_id == raw["uri"]
    assert parse_notification("not a dict", brand_did=BRAND) is None  # type: ignore[arg-type]
    assert parse_post_view([], brand_did=BRAND) is None  # type: ignore[arg-type]


def test_a_search_hit_is_a_mention_and_the_brand_s_own_hit_an_echo() -> None:
    raw = notification()
    view = {key: raw[key] for key in ("uri", "cid", "author", "record", "indexedAt")}
    view.update(replyCount=0, repostCount=0, likeCount=0, quoteCount=0, labels=[])
    item = parse_post_view(view, brand_did=BRAND)
    assert item is not None and item.kind == Kind.MENTION and item.platform_id == raw["uri"]
    view["author"] = {"did": BRAND, "handle": "acme.test"}
    assert parse_post_view(view, brand_did=BRAND) is None


def test_times_and_urls() -> None:
    assert parse_time("2024-05-01T10:00:00.123Z") == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert parse_time("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_time("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_time("soon") is None and parse_time(None) is None
    assert format_time(datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)) == "2024-05-01T10:00:00.123Z"
    assert post_url("jane.test", f"at://{JANE}/app.bsky.feed.like/3k") is None
    assert post_url("jane.test", "https://example.com") is None


# ------------------------------------------------------------------------------------------ graphemes

def test_grapheme_clusters_match_the_segmenter_bluesky_counts_with() -> None:
    reference = fixture("graphemes_intl_segmenter.json")
    assert len(reference["cases"]) >= 30
    conjuncts = 0
    for case in reference["cases"]:
        ours = graphemes(case["text"])
        assert "".join(ours) == case["text"]
        if any("\u094d" in s or "\u09cd" in s for s in case["segments"]):  # Indic conjuncts (GB9c)
            conjuncts += 1
            assert len(ours) > len(case["segments"]), case["text"]  # stricter, never more lenient
            continue
        assert ours == case["segments"], case["text"]
    assert conjuncts == 2


@pytest.mark.parametrize(("text", "count"), [
    ("👨‍❤️‍👨", 1), ("👨‍👩‍👧‍👦", 1), ("🇩🇪🇫🇮", 2), ("🇩🇪🇫", 2), ("👍🏽", 1), ("e\u0301\u0301", 1), ("❤️", 1),
    ("1️⃣", 1), ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", 1), ("\r\n", 1), ("한국", 2), ("\u1100\u1161\u11a8", 1), ("می‌خواهم", 7), ("", 0),
])
def test_grapheme_counts(text: str, count: int) -> None:
    assert grapheme_count(text) == count


# ------------------------------------------------------------------------------------------ facets

def test_the_documented_mention_and_link_facets() -> None:
    record = fixture("post_record_mention_facet.json")
    text: str = record["text"]
    did = record["facets"][0]["features"][0]["did"]
    assert facets(text, mentions={"atproto.com": did}) == record["facets"]
    assert text.encode()[23:35] == b"@atproto.com"


@pytest.mark.parametrize("before", ["", "✨ ", "سلام ", "Cafe\u0301 ", "👨‍👩‍👧‍👦 🇩🇪 ", "Grüße, "])
def test_mention_offsets_are_utf8_bytes(before: str) -> None:
    text = f"{before}@jane.test ok, @jane.test!"
    found = facets(text, mentions={"jane.test": JANE})
    assert len(found) == 2
    raw = text.encode("utf-8")
    for facet in found:
        index = facet["index"]
        assert raw[index["byteStart"]:index["byteEnd"]] == b"@jane.test"
        assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": JANE}]
    assert found[0]["index"]["byteStart"] == len(before.encode("utf-8"))
    assert byte_span("é@x", 1, 3) == (2, 4)


def test_a_mention_is_a_whole_handle() -> None:
    pattern = handle_pattern("jane.test")
    assert pattern.search("hi @jane.test.") and pattern.search("(@JANE.test)")
    for text in ("@jane.testing", "mail jane@jane.test", "@jane.test-2", "@jane.test.example"):
        assert not pattern.search(text), text


def test_links_lose_trailing_punctuation() -> None:
    assert [url for _, _, url in link_spans("see https://a.example/x. and (https://b.example/y) now")] == \
        ["https://a.example/x", "https://b.example/y"]
    assert [url for _, _, url in link_spans("https://en.wikipedia.org/wiki/Foo_(bar)!")] == \
        ["https://en.wikipedia.org/wiki/Foo_(bar)"]


# ------------------------------------------------------------------------------------------ record keys, cursors

def test_record_keys_are_stable_tids() -> None:
    key = record_key("socialops-5f0c6a4e-0000-4000-8000-000000000001")
    assert TID.match(key) and key == record_key("socialops-5f0c6a4e-0000-4000-8000-000000000001")
    keys = {record_key(f"socialops-{n}") for n in range(2000)}
    assert len(keys) == 2000 and all(TID.match(k) for k in keys)
    assert tid_from_int(0) == "2222222222222"
    # Round trip with a real TID (the docs' rkey): decode base32-sortable, encode again.
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = 0
    for char in "3k43tv4rft22g":
        value = value * 32 + alphabet.index(char)
    assert tid_from_int(value) == "3k43tv4rft22g"


def test_the_mark_round_trips_and_fits_the_cursor_column() -> None:
    newest = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    window = [(f"{n:08x}", newest - timedelta(seconds=n)) for n in range(100)]
    kept = Mark.after(newest=newest, floor=newest - timedelta(seconds=2), window=window,
                      overlap=timedelta(seconds=300))
    assert kept.floor == newest - timedelta(seconds=2) and kept.seen == ("00000000", "00000001")
    mark = Mark.after(newest=newest, floor=newest - timedelta(seconds=400), window=window,
                      overlap=timedelta(seconds=300))
    assert mark.floor is None  # older than the overlap: dropped
    assert len(mark.seen) == SEEN_MAX and mark.seen[0] == "00000000"  # the newest are kept
    text = mark.encode()
    assert len(text) <= 400
    assert Mark.decode(text) == mark
    assert Mark.decode(text + "|p3") == mark  # a part marker: that scan starts over
    assert Mark.decode("garbage") is None and Mark.decode("||") is None
    started = Mark.after(newest=None, floor=newest, window=[], overlap=timedelta(seconds=300))
    assert Mark.decode(started.encode()) == Mark(newest=None, floor=newest)


def test_search_keys_fit_the_cursor_name_column() -> None:
    assert search_key("acme") == "bluesky:search:acme"
    long = search_key("ü" * 200)
    assert len(long) == 100 and long != search_key("ü" * 199)
