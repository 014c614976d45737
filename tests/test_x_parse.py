"""Pure units for X: payloads → Items (recorded and documented ones), text as the customer wrote it, X's
weighted length, ids and cursors, and the Account Activity signature and CRC vectors."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.x.parse import (
    expand_links,
    parse_activity,
    parse_dm_events,
    parse_posts,
    parse_tweet,
    snowflake_at,
    snowflake_time,
    unescape,
)
from adapters.x.source import Position, build_query
from adapters.x.text import weighted_length
from adapters.x.webhook import signature, verify
from bot.core.model import Kind

FIXTURES = Path(__file__).parent / "fixtures" / "x"
BRAND = "2244994945"
CUSTOMER_TEXTS = [
    "Grüße aus Köln: die Bestellung fehlt 😞",
    "Tilaukseni ei ole vielä saapunut, häiriö?",
    "سفارش من هنوز نرسیده است، لطفاً کمک کنید",
    "Cafe\u0301 order 👩🏽‍💻 #2 never came",  # a combining acute accent, a ZWJ emoji with skin tone
]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def post(**fields: Any) -> dict[str, Any]:
    base = {"id": "1800000000000000001", "text": "@acme hello", "author_id": "42", "created_at":
            "2024-06-01T12:00:00.000Z", "conversation_id": "1800000000000000001", "edit_history_tweet_ids": ["1"],
            "entities": {"mentions": [{"start": 0, "end": 5, "username": "acme", "id": BRAND}]}}
    return {**base, **fields}


def users(**extra: Any) -> dict[str, dict[str, Any]]:
    return {"42": {"id": "42", "name": "Jane Doe", "username": "jane",
                   "public_metrics": {"followers_count": 120, "following_count": 3, "tweet_count": 9,
                                      "listed_count": 0}, **extra}}


# ------------------------------------------------------------------------------------------ v2 posts

def test_the_documented_mentions_page_gives_the_author_from_the_expansion() -> None:
    body = fixture("mentions_timeline_expanded_doc.json")
    (item,) = parse_posts(body, brand_id=BRAND, mentioned=True)
    assert item.platform == "x" and item.platform_id == "1301573587187331074" and item.kind == Kind.MENTION
    assert item.author.id == "1234567890" and item.author.handle == "@developer" and item.author.name == "Dev Person"
    assert item.author.followers is None  # user.fields without public_metrics: unknown, not 0
    assert item.text == "Hey @XDevelopers, love the new API!"
    assert item.url == "https://x.com/developer/status/1301573587187331074"
    assert item.created_at == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert item.conversation == "1301573587187331074:1234567890"  # no conversation_id asked: its own thread
    assert item.reply_to == {"via": "x", "tweet_id": "1301573587187331074", "author_id": "1234567890",
                             "username": "developer", "summoned": True}


def test_the_recorded_page_without_expansions_makes_up_no_authors() -> None:
    body = fixture("mentions_timeline_default_fields_recorded.json")["response_body"]
    assert len(body["data"]) == 10
    assert parse_posts(body, brand_id="783214", mentioned=True) == []


def test_posts_come_oldest_first_whatever_the_page_order() -> None:
    body = {"data": [post(id="1800000000000000003"), post(id="1800000000000000001"), post(id="1800000000000000002")],
            "includes": {"users": list(users().values())}}
    assert [i.platform_id for i in parse_posts(body, brand_id=BRAND)] == [
        "1800000000000000001", "1800000000000000002", "1800000000000000003"]


def test_followers_come_from_public_metrics() -> None:
    item = parse_tweet(post(), users(), brand_id=BRAND)
    assert item is not None and item.author.followers == 120 and item.author.name == "Jane Doe"


def test_the_brands_own_posts_and_reposts_are_never_items() -> None:
    assert parse_tweet(post(author_id=BRAND), users(), brand_id=BRAND) is None
    repost = post(referenced_tweets=[{"type": "retweeted", "id": "1700000000000000000"}], text="RT @jane: @acme hi")
    assert parse_tweet(repost, users(), brand_id=BRAND) is None
    for odd in (None, "x", {}, {"id": "1"}, post(author_id=None)):
        assert parse_tweet(odd, users(), brand_id=BRAND) is None


def test_a_reply_names_its_parent_and_keeps_the_thread_per_customer() -> None:
    reply = post(id="1800000000000000009", conversation_id="1700000000000000000", in_reply_to_user_id=BRAND,
                 referenced_tweets=[{"type": "replied_to", "id": "1700000000000000005"},
                                    {"type": "quoted", "id": "1600000000000000000"}])
    item = parse_tweet(reply, users(), brand_id=BRAND)
    assert item is not None
    assert item.parent_id == "1700000000000000005"
    assert item.conversation == "1700000000000000000:42"


def test_a_keyword_hit_that_never_named_the_brand_is_not_summoned() -> None:
    hit = post(text="acme lost my parcel again", entities={})
    item = parse_tweet(hit, users(), brand_id=BRAND, mentioned=False)
    assert item is not None and item.reply_to["summoned"] is False
    named = parse_tweet(post(), users(), brand_id=BRAND, mentioned=False)
    assert named is not None and named.reply_to["summoned"] is True
    answered = parse_tweet(post(entities={}, in_reply_to_user_id=BRAND), users(), brand_id=BRAND)
    assert answered is not None and answered.reply_to["summoned"] is True


def test_escaped_text_is_decoded_once_and_links_are_expanded() -> None:
    text = "@acme Fish &amp; chips &lt;3 but I typed &amp;amp; literally https://t.co/abc123XYZ0 &gt; see"
    entities = {"urls": [{"start": 57, "end": 80, "url": "https://t.co/abc123XYZ0",
                          "expanded_url": "https://acme.example/orders/123?a=1&b=2", "display_url": "acme.example/…"}]}
    item = parse_tweet(post(text=text, entities=entities), users(), brand_id=BRAND)
    assert item is not None
    assert item.text == ("@acme Fish & chips <3 but I typed &amp; literally https://acme.example/orders/123?a=1&b=2"
                         " > see")
    assert unescape("&amp;lt;") == "&lt;" and unescape("&quot;&#39;") == "&quot;&#39;"
    assert expand_links("x https://t.co/1", None) == "x https://t.co/1"


def test_a_long_post_reads_in_full_from_note_tweet() -> None:
    full = "@acme " + "ä" * 400
    long_post = post(text=full[:275] + "…", note_tweet={"text": full, "entities": {}})
    item = parse_tweet(long_post, users(), brand_id=BRAND)
    assert item is not None and item.text == full


@pytest.mark.parametrize("text", CUSTOMER_TEXTS)
def test_every_character_the_customer_typed_is_kept(text: str) -> None:
    item = parse_tweet(post(text=text, entities={}), users(), brand_id=BRAND)
    assert item is not None and item.text == text


# ------------------------------------------------------------------------------------------ v2 DMs

def test_the_documented_dm_event_is_a_dm_item_in_the_senders_conversation() -> None:
    body = fixture("dm_events_doc.json")
    (item,) = parse_dm_events(body, brand_id=BRAND)
    assert item.kind == Kind.DM and item.platform == "x" and item.platform_id == "1234567890"
    assert item.conversation == "dm:9876543210" and item.author.id == "9876543210"
    assert item.text == "Hello! How are you?" and item.url is None
    assert item.reply_to == {"via": "x_dm", "participant_id": "9876543210", "dm_conversation_id": ""}


def test_dms_the_brand_sent_joins_and_group_conversations_are_skipped() -> None:
    one_to_one = f"{BRAND}-9876543210"
    body = {"data": [
        {"id": "5", "event_type": "MessageCreate", "text": "ours", "sender_id": BRAND, "dm_conversation_id": one_to_one},
        {"id": "4", "event_type": "ParticipantsJoin", "sender_id": "9876543210", "participant_ids": ["1"]},
        {"id": "3", "event_type": "MessageCreate", "text": "group", "sender_id": "9876543210",
         "dm_conversation_id": "1578398451921985538"},
        {"id": "2", "event_type": "MessageCreate", "text": "Hei &amp; kiitos 🙏", "sender_id": "9876543210",
         "dm_conversation_id": one_to_one},
    ], "includes": {"users": [{"id": "9876543210", "name": "Matti", "username": "matti",
                               "public_metrics": {"followers_count": 7}}]}}
    (item,) = parse_dm_events(body, brand_id=BRAND)
    assert item.platform_id == "2" and item.text == "Hei & kiitos 🙏"
    assert item.author.handle == "@matti" and item.author.followers == 7
    assert item.reply_to["dm_conversation_id"] == one_to_one


def test_the_recorded_dm_lookup_without_sender_id_gives_nothing() -> None:
    lookup = [r for r in fixture("dm_send_and_lookup_recorded.json") if r["request"]["method"] == "GET"]
    for recording in lookup:
        assert parse_dm_events(recording["response_body"], brand_id="750362064426721281") == []


# ------------------------------------------------------------------------------------------ Account Activity

def v1_tweet(**fields: Any) -> dict[str, Any]:
    base = {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "id": 1050118621198921728,
            "id_str": "1050118621198921728", "text": "@acme my order never arrived", "truncated": False,
            "in_reply_to_status_id_str": None, "in_reply_to_user_id_str": None,
            "user": {"id_str": "42", "name": "Jane Doe", "screen_name": "jane", "followers_count": 120},
            "entities": {"hashtags": [], "urls": [], "symbols": [],
                         "user_mentions": [{"id_str": BRAND, "screen_name": "acme", "indices": [0, 5]}]}}
    return {**base, **fields}


def test_a_mention_delivered_by_account_activity_is_the_same_item_as_polled() -> None:
    (item,) = parse_activity({"for_user_id": BRAND, "tweet_create_events": [v1_tweet()]}, brand_id=BRAND)
    assert item.platform == "x" and item.platform_id == "1050118621198921728" and item.kind == Kind.MENTION
    assert item.author.handle == "@jane" and item.author.followers == 120
    assert item.created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    assert item.url == "https://x.com/jane/status/1050118621198921728"
    assert item.reply_to["summoned"] is True and item.reply_to["via"] == "x"


def test_a_truncated_v1_post_reads_from_extended_tweet() -> None:
    full = "@acme " + "Liebe Grüße, " * 20 + "&amp; danke"
    tweet = v1_tweet(truncated=True, text=full[:139] + "…",
                     extended_tweet={"full_text": full, "entities": v1_tweet()["entities"]})
    (item,) = parse_activity({"for_user_id": BRAND, "tweet_create_events": [tweet]}, brand_id=BRAND)
    assert item.text == full.replace("&amp;", "&")


def test_account_activity_skips_the_brand_reposts_blocked_users_and_other_accounts() -> None:
    own = v1_tweet(user={"id_str": BRAND, "screen_name": "acme"})
    repost = v1_tweet(id_str="2", retweeted_status=v1_tweet())
    assert parse_activity({"for_user_id": BRAND, "tweet_create_events": [own, repost]}, brand_id=BRAND) == []
    blocked = {"for_user_id": BRAND, "user_has_blocked": "true", "tweet_create_events": [v1_tweet()]}
    assert parse_activity(blocked, brand_id=BRAND) == []
    assert parse_activity({"for_user_id": "1", "tweet_create_events": [v1_tweet()]}, brand_id=BRAND) == []
    not_blocked = {"for_user_id": BRAND, "user_has_blocked": "false", "tweet_create_events": [v1_tweet()]}
    assert len(parse_activity(not_blocked, brand_id=BRAND)) == 1


def test_account_activity_dms_from_customers_only() -> None:
    def dm(event_id: str, sender: str, recipient: str, text: str) -> dict[str, Any]:
        return {"type": "message_create", "id": event_id, "created_timestamp": "1392078023603",
                "message_create": {"target": {"recipient_id": recipient}, "sender_id": sender,
                                   "message_data": {"text": text, "entities": {"urls": []}}}}

    body = {"for_user_id": BRAND, "direct_message_events": [dm("11", "42", BRAND, "سلام، کمک لازم دارم"),
                                                            dm("12", BRAND, "42", "ours")],
            "users": {"42": {"id": "42", "name": "Sara", "screen_name": "sara", "followers_count": 3}}}
    (item,) = parse_activity(body, brand_id=BRAND)
    assert item.kind == Kind.DM and item.platform_id == "11" and item.text == "سلام، کمک لازم دارم"
    assert item.conversation == "dm:42" and item.author.handle == "@sara"
    assert item.reply_to == {"via": "x_dm", "participant_id": "42", "dm_conversation_id": f"42-{BRAND}"}
    assert item.created_at == datetime.fromtimestamp(1392078023.603, UTC)


def test_the_documented_signature_vector_verifies_and_one_flipped_byte_does_not() -> None:
    vector = fixture("account_activity_mention_envelope.json")
    raw = vector["raw_body"].encode()
    header = vector["headers"]["x-twitter-webhooks-signature"]
    assert signature(vector["consumer_secret"], raw) == header
    assert verify(vector["consumer_secret"], header, raw)
    flipped = bytearray(raw)
    flipped[10] ^= 0x01
    assert not verify(vector["consumer_secret"], header, bytes(flipped))
    assert not verify(vector["consumer_secret"], None, raw)
    assert not verify("another secret", header, raw)
    assert parse_activity(json.loads(raw), brand_id=BRAND) == []


def test_the_crc_vector() -> None:
    vector = fixture("crc_check_vector.json")
    token = vector["request"]["query"]["crc_token"]
    assert signature(vector["consumer_secret"], token.encode()) == vector["expected_response"]["body"][
        "response_token"]


# ------------------------------------------------------------------------------------------ X's length

@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5),
    ("Grüße aus Köln", 14),
    ("سلام دنیا", 9),  # Persian: weight 1
    ("こんにちは", 10),  # CJK: weight 2
    ("한국어", 6),
    ("e\u0301", 1),  # NFC composes the accent
    ("👍", 2), ("👍🏽", 2), ("👩🏽‍💻", 2), ("👨‍👩‍👧‍👦", 2), ("🇫🇮", 2), ("1️⃣", 2), ("❤️", 2),
    ("©", 1), ("©️", 2), ("—", 1), ("“quoted”", 8), ("…", 2),
    ("see https://acme.example/a/very/long/path/to/the/order/123456789", 27),
    ("(https://acme.example/x).", 26),
    ("acme.com/help", 23),
    ("jane@acme.com", 13),
    ("http://localhost:8000", 21),
])
def test_weighted_length(text: str, length: int) -> None:
    assert weighted_length(text) == length


def test_the_limit_is_reached_exactly() -> None:
    assert weighted_length("a" * 280) == 280
    assert weighted_length("界" * 140) == 280 and weighted_length("界" * 141) == 282
    assert weighted_length("x " * 100 + "https://acme.example/" + "y" * 300) == 200 + 23


# ------------------------------------------------------------------------------------------ ids, cursors, query

def test_snowflakes_carry_their_time() -> None:
    recorded = fixture("mentions_timeline_default_fields_recorded.json")["response_body"]["meta"]["newest_id"]
    when = snowflake_time(recorded)
    assert when is not None
    assert datetime.fromtimestamp(when, UTC).date() == datetime(2022, 10, 7, tzinfo=UTC).date()  # recording day
    moment = 1_700_000_000.123
    assert abs((snowflake_time(str(snowflake_at(moment))) or 0) - moment) < 0.002
    assert snowflake_time("abc") is None


def test_cursor_positions_round_trip_and_odd_ones_start_over() -> None:
    assert str(Position.parse("123")) == "123"
    position = Position.parse("300/100/200")
    assert position is not None and position.newest == "300" and position.gap == ("100", "200")
    assert str(position) == "300/100/200"
    for odd in (None, "", "abc", "1/2", "1/2/3/4", "-5"):
        assert Position.parse(odd) is None


def test_the_search_query_excludes_the_brand_and_reposts() -> None:
    assert build_query(["acme", "#acmefail"], BRAND) == f"(acme OR #acmefail) -from:{BRAND} -is:retweet"
    assert build_query(["acme"], BRAND) == f"acme -from:{BRAND} -is:retweet"
    assert build_query([' acme support ', 'say "hi"', ""], BRAND) == \
        f'("acme support" OR "say hi") -from:{BRAND} -is:retweet'


def test_parsers_never_raise_on_odd_input() -> None:
    pages: list[dict[str, Any]] = [{}, {"data": None}, {"data": "x"}, {"data": [None, 1, "a", {}]},
                                   {"includes": {"users": "x"}}]
    for body in pages:
        assert parse_posts(copy.deepcopy(body), brand_id=BRAND) == []
        assert parse_dm_events(copy.deepcopy(body), brand_id=BRAND) == []
    deliveries: list[dict[str, Any]] = [
        {}, {"for_user_id": BRAND, "tweet_create_events": [None, 1, {}]},
        {"for_user_id": BRAND, "direct_message_events": [{"type": "message_create", "id": "1"}], "users": 3}]
    for delivery in deliveries:
        assert parse_activity(delivery, brand_id=BRAND) == []
