"""Pure units: Meta's documented webhook payloads → the items the team sees, and the X-Hub-Signature-256 vector."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.meta.parse import (
    MENTION_UNREADABLE,
    MentionRef,
    epoch,
    load,
    mention_item,
    parse_payload,
)
from adapters.meta.webhook import signature, verify_signature
from bot.core.errors import InvalidInput
from bot.core.model import Kind

FIXTURES = Path(__file__).parent / "fixtures" / "meta"
PAGE_ID = "104857600000001"
IG_ID = "17841405726653026"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WORLD = "Grüße aus Köln 👋🏽 — Hyvää päivää! سلام، سفارش من کجاست؟ e\u0301 n\u0303 ǅ 👩‍👩‍👧"


def fixture(name: str) -> Any:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def feed_comment(**value: Any) -> dict[str, Any]:
    base = {"from": {"id": "139560936744123", "name": "Jane Doe"}, "item": "comment",
            "comment_id": "139560936744456_139620233405726", "post_id": f"{PAGE_ID}_139560936744456",
            "verb": "add", "parent_id": f"{PAGE_ID}_139560936744456", "created_time": 1511951015, "message": "Good"}
    base.update(value)
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1511951016000,
                                         "changes": [{"field": "feed", "value": base}]}]}


def messenger(message: dict[str, Any], sender: str = "2400000000000001", **event: Any) -> dict[str, Any]:
    ev = {"sender": {"id": sender}, "recipient": {"id": PAGE_ID}, "timestamp": 1714564800000, "message": message,
          **event}
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1714564800000, "messaging": [ev]}]}


# ------------------------------------------------------------------------------------------ Page feed comments

def test_a_recorded_page_comment_reply_becomes_a_comment_item_in_the_customers_post_case() -> None:
    (item,) = parse_payload(fixture("page_feed_comment.json"), now=NOW).items
    assert (item.platform, item.kind, item.text) == ("facebook", Kind.COMMENT, "Good")
    assert item.platform_id == "139560936744456_139620233405726"
    assert item.author.id == "139560936744123" and item.author.name == "user"
    assert item.conversation == "fb-post:137542570280222_139560936744456:139560936744123"
    # It answers another comment (parent_id is not the post): it joins that comment's case, and our reply
    # goes under the top-level comment.
    assert item.parent_id == "139560936744456_139562213411528"
    assert item.reply_to == {
        "via": "meta", "kind": "comment", "platform": "facebook", "comment_id": "139560936744456_139620233405726",
        "reply_comment_id": "139560936744456_139562213411528", "post_id": "137542570280222_139560936744456",
        "author_id": "139560936744123", "at": "2017-11-29T10:23:35+00:00"}
    assert item.created_at == datetime(2017, 11, 29, 10, 23, 35, tzinfo=UTC)
    assert item.url == "https://www.facebook.com/137542570280222/posts/139560936744456?comment_id=139620233405726"


def test_a_top_level_comment_has_no_parent_and_is_answered_under_itself() -> None:
    (item,) = parse_payload(feed_comment(message=WORLD)).items
    assert item.parent_id is None
    assert item.reply_to["reply_comment_id"] == item.platform_id == "139560936744456_139620233405726"
    assert item.text == WORLD
    assert item.conversation == f"fb-post:{PAGE_ID}_139560936744456:139560936744123"


def test_two_customers_on_one_post_are_two_cases_one_customer_twice_is_one() -> None:
    jane1 = parse_payload(feed_comment(comment_id="1_1")).items[0]
    jane2 = parse_payload(feed_comment(comment_id="1_2", message="hello?")).items[0]
    sam = parse_payload(feed_comment(comment_id="1_3", **{"from": {"id": "555", "name": "Sam"}})).items[0]
    assert jane1.conversation == jane2.conversation != sam.conversation


def test_the_pages_own_comments_are_never_items() -> None:
    own = feed_comment(**{"from": {"id": PAGE_ID, "name": "Acme"}})
    assert parse_payload(own).items == []  # entry.id is the Page: recognised without configuration
    other_page = feed_comment(**{"from": {"id": "999", "name": "Acme"}})
    assert parse_payload(other_page, page_id="999").items == []


@pytest.mark.parametrize("value", [
    {"verb": "remove"}, {"verb": "hide"}, {"item": "reaction", "reaction_type": "like"}, {"item": "post"},
    {"item": "like"}, {"message": ""}, {"comment_id": None}, {"post_id": ""},
])
def test_other_feed_changes_are_not_items(value: dict[str, Any]) -> None:
    assert parse_payload(feed_comment(**value)).items == []


def test_an_edited_comment_is_a_new_message_in_the_same_case() -> None:
    original = parse_payload(feed_comment()).items[0]
    (edited,) = parse_payload(feed_comment(verb="edited", message="Good, but the zip broke")).items
    assert edited.text == "(edited) Good, but the zip broke"
    assert edited.platform_id == "139560936744456_139620233405726@1511951016"
    assert edited.platform_id != original.platform_id  # dedupe would drop an edit with the same id
    assert edited.parent_id == original.platform_id and edited.conversation == original.conversation
    assert edited.reply_to["comment_id"] == original.platform_id


def test_a_photo_comment_keeps_the_photo_link() -> None:
    (item,) = parse_payload(feed_comment(message="broken on arrival", photo="https://scontent.example/p.jpg")).items
    assert item.text == "broken on arrival\n[photo] https://scontent.example/p.jpg"
    (only_photo,) = parse_payload(feed_comment(message=None, photo="https://scontent.example/p.jpg")).items
    assert only_photo.text == "[photo] https://scontent.example/p.jpg"


# ------------------------------------------------------------------------------------------ Messenger

def test_the_documented_messenger_text_message_is_a_dm_case_per_customer() -> None:
    (item,) = parse_payload(fixture("messenger_message_text_doc.json")).items
    assert (item.platform, item.kind, item.text) == ("facebook", Kind.DM, "hello, world!")
    assert item.platform_id == "mid.1457764197618:41d102a3e1ae206a38"
    assert item.conversation == "dm:<PSID>" and item.author.id == "<PSID>"
    assert item.created_at == datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC)  # milliseconds
    assert item.reply_to == {"via": "meta", "kind": "dm", "platform": "facebook", "recipient_id": "<PSID>",
                             "at": "2016-03-23T00:25:52.478000+00:00"}
    assert item.url is None and item.parent_id is None


def test_a_recorded_older_messenger_payload_still_parses() -> None:
    (item,) = parse_payload(fixture("messenger_message_text_fixture.json")).items
    assert item.text == "hello, world!" and item.conversation == "dm:USER_ID"


def test_echoes_and_non_message_events_are_not_items() -> None:
    echo = messenger({"mid": "m_1", "text": "Thanks, we are on it", "is_echo": True, "app_id": 1517776481860111},
                     sender=PAGE_ID)
    assert parse_payload(echo).items == []
    assert parse_payload(messenger({"mid": "m_2", "text": "hi"}, sender=PAGE_ID)).items == []
    assert parse_payload(messenger({"mid": "m_3", "text": "hi"}, sender="42"), page_id="42").items == []
    delivery = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": [
        {"sender": {"id": "1"}, "recipient": {"id": PAGE_ID}, "delivery": {"mids": ["m_1"], "watermark": 1}},
        {"sender": {"id": "1"}, "recipient": {"id": PAGE_ID}, "read": {"watermark": 1}},
        {"sender": {"id": "1"}, "recipient": {"id": PAGE_ID}, "message": {"mid": "m_4", "is_deleted": True}},
    ]}]}
    assert parse_payload(delivery).items == []


def test_attachments_and_replies_are_kept_for_the_team() -> None:
    message = {"mid": "m_5", "text": "see photo", "reply_to": {"mid": "m_4"},
               "attachments": [{"type": "image", "payload": {"url": "https://cdn.fbsbx.example/i.jpg"}}]}
    (item,) = parse_payload(messenger(message)).items
    assert item.text == "see photo\n[image] https://cdn.fbsbx.example/i.jpg"
    assert item.parent_id == "m_4"
    (sticker,) = parse_payload(messenger({"mid": "m_6", "attachments": [{"type": "fallback", "payload": {
        "url": "https://example.com/x", "title": "A link"}}]})).items
    assert sticker.text == "[fallback] A link https://example.com/x"


def test_every_character_of_a_message_survives_metas_escaped_json() -> None:
    raw = json.dumps(messenger({"mid": "m_7", "text": WORLD})).encode()  # \u escapes, surrogate pairs
    assert b"\\ud83d" in raw
    (item,) = parse_payload(load(raw)).items
    assert item.text == WORLD


# ------------------------------------------------------------------------------------------ Instagram

def test_the_documented_instagram_comment_is_an_instagram_comment_item() -> None:
    (item,) = parse_payload(fixture("instagram_comment_doc.json"), now=NOW).items  # a JSON array, as documented
    assert (item.platform, item.kind, item.text) == ("instagram", Kind.COMMENT, "<COMMENT_TEXT>")
    assert item.platform_id == "<COMMENT_ID>"
    assert item.author.id == "<INSTAGRAM_SCOPED_USER_ID>" and item.author.handle == "@<USERNAME>"
    assert item.conversation == "ig-media:<MEDIA_ID>:<INSTAGRAM_SCOPED_USER_ID>"
    assert item.created_at == NOW  # the placeholder time is not a time: "now" it is
    assert item.reply_to["reply_comment_id"] == "<COMMENT_ID>" and item.reply_to["media_id"] == "<MEDIA_ID>"


def ig_comment(**value: Any) -> dict[str, Any]:
    base = {"from": {"id": "7000000000000001", "username": "jane"}, "media": {"id": "18000000000000001"},
            "id": "17000000000000002", "text": WORLD}
    base.update(value)
    return {"object": "instagram", "entry": [{"id": IG_ID, "time": 1714564800,
                                              "changes": [{"field": "comments", "value": base}]}]}


def test_an_instagram_reply_to_a_comment_is_answered_under_the_top_level_comment() -> None:
    (item,) = parse_payload(ig_comment(parent_id="17000000000000001")).items
    assert item.parent_id == "17000000000000001"
    assert item.reply_to["reply_comment_id"] == "17000000000000001"
    assert item.text == WORLD
    assert item.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # Instagram's entry.time: seconds


def test_the_accounts_own_instagram_comments_are_not_items() -> None:
    assert parse_payload(ig_comment(**{"from": {"id": IG_ID, "username": "acme"}})).items == []
    assert parse_payload(ig_comment(**{"from": {"id": "5", "username": "acme"}}), instagram_id="5").items == []


def test_the_documented_instagram_mention_carries_ids_only() -> None:
    batch = parse_payload(fixture("instagram_mention_comment_doc.json"))
    assert batch.items == []
    assert batch.mentions == [MentionRef(ig_user_id="17841405726653026", media_id="17918195224117851",
                                         comment_id="17894227972186120",
                                         at=datetime(2018, 3, 9, 19, 16, 8, tzinfo=UTC))]


def test_a_fetched_mention_reads_as_the_customer_wrote_it() -> None:
    ref = MentionRef(ig_user_id=IG_ID, media_id="17918195224117851", comment_id="17894227972186120", at=NOW)
    item = mention_item(ref, {"id": "17894227972186120", "text": f"@acme {WORLD}", "username": "jane",
                              "timestamp": "2024-05-01T11:59:00+0000"})
    assert (item.platform, item.kind, item.text) == ("instagram", Kind.MENTION, f"@acme {WORLD}")
    assert item.platform_id == "17894227972186120" and item.author.handle == "@jane"
    assert item.conversation == "ig-mention:17918195224117851:jane"
    assert item.created_at == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert item.reply_to == {"via": "meta", "kind": "mention", "platform": "instagram", "ig_user_id": IG_ID,
                             "media_id": "17918195224117851", "comment_id": "17894227972186120",
                             "at": "2024-05-01T11:59:00+00:00"}


def test_a_caption_mention_links_to_the_post_and_an_unreadable_one_keeps_a_placeholder() -> None:
    ref = MentionRef(ig_user_id=IG_ID, media_id="18000000000000009", comment_id=None, at=NOW)
    caption = mention_item(ref, {"caption": "Love my new boots @acme", "username": "sam",
                                 "permalink": "https://www.instagram.com/p/abc/"})
    assert caption.text == "Love my new boots @acme" and caption.url == "https://www.instagram.com/p/abc/"
    assert caption.platform_id == "18000000000000009" and caption.reply_to["comment_id"] is None
    unknown = mention_item(ref, None)
    assert unknown.text == MENTION_UNREADABLE and unknown.conversation == "ig-mention:18000000000000009"
    assert unknown.created_at == NOW and unknown.kind == Kind.MENTION


def test_instagram_messages_are_instagram_dms() -> None:
    payload = messenger({"mid": "aWdfZAG1faXRlbTox", "text": WORLD}, sender="7000000000000001")
    payload["object"] = "instagram"
    payload["entry"][0]["id"] = IG_ID
    (item,) = parse_payload(payload).items
    assert (item.platform, item.kind, item.conversation) == ("instagram", Kind.DM, "dm:7000000000000001")
    assert item.reply_to["platform"] == "instagram" and item.text == WORLD
    payload["entry"][0]["messaging"][0]["sender"]["id"] = IG_ID  # the account's own message
    assert parse_payload(payload).items == []
    # An Instagram echo names the business by another id than the entry's: is_echo alone tells.
    payload["entry"][0]["messaging"][0]["sender"]["id"] = "17841400000000999"
    payload["entry"][0]["messaging"][0]["message"]["is_echo"] = True
    assert parse_payload(payload, instagram_id=IG_ID).items == []


# ------------------------------------------------------------------------------------------ batches, odd input

def test_several_entries_and_events_in_one_delivery_all_become_items_in_order() -> None:
    first = messenger({"mid": "m_a", "text": "one"})
    first["entry"][0]["messaging"].append(
        {"sender": {"id": "2400000000000002"}, "recipient": {"id": PAGE_ID}, "timestamp": 1714564801000,
         "message": {"mid": "m_b", "text": "two"}})
    first["entry"].append(feed_comment(message="three")["entry"][0])
    first["entry"].append({"id": "204857600000002", "time": 1714564802000, "messaging": [
        {"sender": {"id": "2400000000000003"}, "recipient": {"id": "204857600000002"}, "timestamp": 1714564802000,
         "message": {"mid": "m_c", "text": "four (another Page)"}}]})
    assert [i.text for i in parse_payload(first).items] == ["one", "two", "three", "four (another Page)"]


@pytest.mark.parametrize("payload", [
    {}, [], {"object": "page"}, {"object": "page", "entry": None}, {"object": "page", "entry": [None, 3, "x"]},
    {"object": "page", "entry": [{"changes": [None, {"field": "feed"}, {"field": "feed", "value": []}]}]},
    {"object": "page", "entry": [{"messaging": [{"message": "hi"}, {"sender": None, "message": {"text": "x"}}]}]},
    {"object": "instagram", "entry": [{"changes": [{"field": "mentions", "value": {"comment_id": "1"}}]}]},
    {"object": "permissions", "entry": [{"changes": [{"field": "email"}]}]},
    [None, {"object": "user"}],
])
def test_odd_payloads_are_skipped_without_raising(payload: Any) -> None:
    batch = parse_payload(payload)
    assert batch.items == [] and batch.mentions == []


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'"a string"', b"42", b"null"])
def test_a_body_that_is_not_a_json_object_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="body"):
        load(body)


def test_times_in_seconds_milliseconds_and_graph_iso() -> None:
    assert epoch(1520622968) == datetime(2018, 3, 9, 19, 16, 8, tzinfo=UTC)
    assert epoch(1520622968123) == datetime(2018, 3, 9, 19, 16, 8, 123000, tzinfo=UTC)
    assert epoch("2023-07-14T10:45:55+0000") == datetime(2023, 7, 14, 10, 45, 55, tzinfo=UTC)
    assert epoch("1520622968") == epoch(1520622968)
    assert epoch("<TIME>") is None and epoch(None) is None and epoch(True) is None


# ------------------------------------------------------------------------------------------ signature

def test_the_signature_vector_verifies_and_one_flipped_byte_does_not() -> None:
    vector = fixture("x_hub_signature_256_vector.json")
    body, header = vector["raw_body"].encode(), vector["headers"]["X-Hub-Signature-256"]
    assert signature(vector["app_secret"], body) == header
    assert verify_signature(vector["app_secret"], header, body)
    for position in (0, len(body) // 2, len(body) - 1):
        flipped = bytearray(body)
        flipped[position] ^= 0x01
        assert not verify_signature(vector["app_secret"], header, bytes(flipped))
    assert not verify_signature("another_secret", header, body)
    assert not verify_signature(vector["app_secret"], None, body)
    assert not verify_signature(vector["app_secret"], "", body)
    assert not verify_signature(vector["app_secret"], header.replace("sha256=", "sha1="), body)
    assert not verify_signature(vector["app_secret"], header[:-1], body)


def test_the_signature_is_over_the_raw_bytes_never_re_serialised_json() -> None:
    vector = fixture("x_hub_signature_256_vector.json")
    body, header = vector["raw_body"].encode(), vector["headers"]["X-Hub-Signature-256"]
    assert b"h\\u00e9llo" in body  # Meta escapes non-ASCII
    reserialised = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(reserialised) == json.loads(body) and reserialised != body
    assert not verify_signature(vector["app_secret"], header, reserialised)
    (item,) = parse_payload(load(body)).items
    assert item.text == "héllo"


def test_the_vectors_cross_check_is_plain_hmac_sha256() -> None:
    check = fixture("x_hub_signature_256_vector.json")["cross_check"]
    assert hmac.new(check["key"].encode(), check["msg"].encode(), hashlib.sha256).hexdigest() == \
        check["hmac_sha256_hex"]
