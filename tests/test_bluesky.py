"""Bluesky against the fake PDS (tests/fakes/bluesky.py): sessions, rate limits, the polled feeds and their
cursors, replies with correct thread references and byte-offset facets, exactly-once posting, check()."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.bluesky.client import BlueskyClient
from adapters.bluesky.source import NotificationsFeed, SearchFeed, make
from adapters.bluesky.text import TID, grapheme_count, graphemes, record_key
from adapters.source import SourceParts
from bot.config import BlueskySource, ConfigError
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Item, Kind
from bot.core.ports import Feed
from tests.fakes.bluesky import FakeBluesky, count_graphemes

FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
LIST = "app.bsky.notification.listNotifications"
CREATE = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"
SESSION = "com.atproto.server.createSession"
REFRESH = "com.atproto.server.refreshSession"
JANE = "jane.test"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def keys_of(value: Any) -> Any:
    """The key structure of a JSON value (dict keys recursively, lists by their first element)."""
    if isinstance(value, dict):
        return {key: keys_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys_of(value[0])] if value else []
    return None


def covers(actual: Any, expected: Any) -> bool:
    """Every key of `expected` is in `actual`, recursively."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and covers(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list) and expected:
        return isinstance(actual, list) and bool(actual) and covers(actual[0], expected[0])
    return True


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    with FakeBluesky() as server:
        yield server


@pytest.fixture
def parts(fake: FakeBluesky, http: httpx.AsyncClient) -> SourceParts:
    return make(config=BlueskySource(**fake.config(keywords=["parcel"])), env=fake.env(), http=http)


def client_for(fake: FakeBluesky, http: httpx.AsyncClient, password: str | None = None) -> BlueskyClient:
    return BlueskyClient(http=http, service=fake.url, identifier=fake.brand_handle, password=password or fake.password)


async def drain(feed: Feed, cursor: str | None) -> tuple[list[Item], str | None]:
    """Fetch until no page is waiting; the cursor as the poller would have stored it."""
    found: list[Item] = []
    while True:
        page = await feed.fetch(cursor)
        found += page.items
        cursor = page.cursor or cursor
        if not page.more:
            return found, cursor


def stamp(seconds_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------ the fake itself

def test_the_fake_binds_loopback_and_speaks_xrpc_errors(fake: FakeBluesky) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
    answer = httpx.get(f"{fake.url}/xrpc/{LIST}")
    assert answer.status_code == 401 and answer.json() == {"error": "AuthMissing", "message": "Authentication Required"}
    answer = httpx.get(f"{fake.url}/xrpc/{LIST}", headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 400 and answer.json()["error"] == "InvalidToken"
    for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"):
        assert name in answer.headers
    assert int(answer.headers["ratelimit-reset"]) > time.time()


def test_the_fake_s_shapes_match_the_recorded_ones(fake: FakeBluesky) -> None:
    fake.customer_says("where is my parcel?", name="Jane Doe", handle=JANE)
    session = httpx.post(f"{fake.url}/xrpc/{SESSION}", json={"identifier": fake.brand_handle, "password": fake.password})
    headers = {"Authorization": f"Bearer {session.json()['accessJwt']}"}
    body = httpx.get(f"{fake.url}/xrpc/{LIST}", headers=headers).json()
    (mention,) = body["notifications"]
    recorded = fixture("listNotifications_mention_reply_snapshot.json")["notifications"][0]
    recorded["author"]["associated"].pop("chat")  # the customer's chat settings
    for relation in ("following", "followedBy"):  # only when the brand follows her / she follows the brand
        recorded["author"]["viewer"].pop(relation, None)
    assert covers(mention, keys_of({k: v for k, v in recorded.items() if k != "record"}))
    assert covers(mention["record"], keys_of({k: v for k, v in recorded["record"].items() if k != "embed"}))
    text = mention["record"]["text"]
    (facet,) = mention["record"]["facets"]
    assert text == f"@{fake.brand_handle} where is my parcel?"
    assert text.encode()[facet["index"]["byteStart"]:facet["index"]["byteEnd"]] == f"@{fake.brand_handle}".encode()
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": fake.did}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", mention["indexedAt"])


def test_the_fake_validates_posts_like_the_pds(fake: FakeBluesky) -> None:
    session = httpx.post(f"{fake.url}/xrpc/{SESSION}", json={"identifier": fake.brand_handle,
                                                             "password": fake.password}).json()
    headers = {"Authorization": f"Bearer {session['accessJwt']}"}

    def create(text: str, rkey: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"repo": fake.did, "collection": "app.bsky.feed.post",
                                "record": {"$type": "app.bsky.feed.post", "text": text,
                                           "createdAt": "2024-05-01T10:00:00.000Z"}}
        if rkey:
            body["rkey"] = rkey
        return httpx.post(f"{fake.url}/xrpc/{CREATE}", json=body, headers=headers)

    assert create("é" * 300).status_code == 200
    too_long = create("👍🏽" * 301)
    assert too_long.status_code == 400 and too_long.json() == {
        "error": "InvalidRequest",
        "message": "Invalid app.bsky.feed.post record: grapheme too big (maximum 300, got 301) at $.record.text"}
    assert create("hi", rkey="not-a-tid").status_code == 400
    assert create("hi", rkey="3k43tv4rft22g").status_code == 200
    assert create("again", rkey="3k43tv4rft22g").json() == {"error": "InternalServerError",
                                                            "message": "Internal Server Error"}
    assert fake.sent() == ["é" * 300, "hi"]
    found = httpx.get(f"{fake.url}/xrpc/{GET_RECORD}",
                      params={"repo": fake.did, "collection": "app.bsky.feed.post", "rkey": "3k43tv4rft22g"})
    assert found.json()["value"]["text"] == "hi"
    missing = httpx.get(f"{fake.url}/xrpc/{GET_RECORD}",
                        params={"repo": fake.did, "collection": "app.bsky.feed.post", "rkey": "3k43tv4rft22h"})
    assert missing.status_code == 400 and missing.json()["error"] == "RecordNotFound"


def test_the_fake_counts_graphemes_like_the_pds() -> None:
    """Its simpler count is exact for the scripts the tests post, and never more lenient elsewhere."""
    for case in fixture("graphemes_intl_segmenter.json")["cases"]:
        count = count_graphemes(case["text"])
        assert count >= len(case["segments"]), case["text"]
        if not re.search("[\u094d\u09cd\u0e33\u1100-\u11ff\u0600-\u0605\u00ad\u200b\uff9e\uff9f]", case["text"]):
            assert count == len(case["segments"]), case["text"]


# ------------------------------------------------------------------------------------------ configuration

def test_make_needs_the_app_password(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigError, match="BLUESKY_APP_PASSWORD"):
        make(config=BlueskySource(**fake.config()), env={}, http=http)


def test_make_builds_feeds_sender_and_check(parts: SourceParts) -> None:
    assert parts.name == "bluesky" and parts.every == 1.0
    assert [feed.key for feed in parts.feeds] == ["bluesky:notifications", "bluesky:search:parcel"]
    sender = parts.senders["bluesky"]
    assert sender.platform == "bluesky" and sender.max_length == 300
    assert parts.check is not None and parts.webhook is None


# ------------------------------------------------------------------------------------------ sessions

async def test_a_hundred_polls_sign_in_once(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = None
    for n in range(100):
        if n % 10 == 5:
            fake.customer_says(f"message {n}", name="Jane", handle=JANE)
        page = await feed.fetch(cursor)
        cursor = page.cursor or cursor
    assert fake.create_session_count() == 1
    assert fake.requests(REFRESH) == []
    assert len(fake.requests(LIST)) == 100
    assert all(r["auth"] == "access" and r["status"] == 200 for r in fake.requests(LIST))


async def test_an_expired_token_is_refreshed_not_signed_in_again(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    first = await client.session()
    fake.expire_access_tokens()
    await client.list_notifications()
    assert fake.create_session_count() == 1
    (refresh,) = fake.requests(REFRESH)
    assert refresh["auth"] == "refresh" and refresh["status"] == 200
    calls = fake.requests(LIST)
    assert [(c["status"]) for c in calls] == [400, 200]
    assert (await client.session()).access != first.access
    for _ in range(5):
        await client.list_notifications()
    assert len(fake.requests(REFRESH)) == 1 and fake.create_session_count() == 1


async def test_a_refused_refresh_signs_in_again(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    await client.session()
    fake.end_sessions()
    await client.list_notifications()
    assert [r["status"] for r in fake.requests(REFRESH)] == [400]
    assert fake.create_session_count() == 2
    assert fake.requests(LIST)[-1]["status"] == 200


async def test_a_revoked_app_password_is_a_credentials_error(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    page = await feed.fetch(None)
    fake.revoke()
    with pytest.raises(CredentialsError) as raised:
        await feed.fetch(page.cursor)
    assert "BLUESKY_APP_PASSWORD" in raised.value.message and fake.password not in raised.value.message
    assert raised.value.permanent
    assert [r["nsid"] for r in fake.requests()][-3:] == [LIST, REFRESH, SESSION]
    assert fake.requests(SESSION)[-1]["status"] == 401


async def test_a_wrong_app_password_names_the_variable(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http, password="wrong-pass-word-here")
    with pytest.raises(CredentialsError) as raised:
        await client.list_notifications()
    assert "BLUESKY_APP_PASSWORD" in raised.value.message and "App passwords" in raised.value.message
    assert "wrong-pass-word-here" not in raised.value.message
    assert fake.requests(LIST) == []


async def test_concurrent_calls_share_one_sign_in_and_one_refresh(fake: FakeBluesky,
                                                                  http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    await asyncio.gather(*(client.list_notifications() for _ in range(4)))
    fake.expire_access_tokens()
    await asyncio.gather(*(client.list_notifications() for _ in range(4)))
    assert fake.create_session_count() == 1 and len(fake.requests(REFRESH)) == 1


# ------------------------------------------------------------------------------------------ rate limits, errors

async def test_429_pauses_until_the_reset(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    fake.fail_next(LIST, status=429, reset_in=30)
    with pytest.raises(SendError) as raised:
        await client.list_notifications()
    assert not raised.value.permanent and raised.value.retry_after is not None
    assert 25 <= raised.value.retry_after <= 31
    with pytest.raises(SendError) as again:
        await client.list_notifications()
    assert again.value.retry_after is not None and again.value.retry_after > 25
    assert len(fake.requests(LIST)) == 1  # the client waited on its own
    await client.get_profile(fake.brand_handle)  # other methods are not paused


async def test_a_rate_limited_sign_in_is_not_hammered(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    fake.fail_next(SESSION, status=429, reset_in=120)
    for _ in range(3):
        with pytest.raises(SendError) as raised:
            await client.list_notifications()
        assert not raised.value.permanent and raised.value.retry_after is not None
        assert raised.value.retry_after > 100
    assert fake.create_session_count() == 1 and fake.requests(LIST) == []


async def test_a_spent_budget_pauses_before_the_429(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    await client.session()
    fake.spend_budget(left=1)
    await client.list_notifications()  # answered with RateLimit-Remaining: 0
    with pytest.raises(SendError) as raised:
        await client.list_notifications()
    assert raised.value.retry_after is not None and raised.value.retry_after > 200
    assert [r["status"] for r in fake.requests(LIST)] == [200]


async def test_server_errors_are_retried_and_bad_requests_are_not(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    fake.fail_next(LIST, status=502)
    with pytest.raises(SendError) as raised:
        await client.list_notifications()
    assert not raised.value.permanent and "UpstreamFailure" in raised.value.message
    with pytest.raises(SendError) as bad:
        await client.list_notifications(limit=500)
    assert bad.value.permanent and "greater than 100" in bad.value.message


# ------------------------------------------------------------------------------------------ notifications feed

async def test_the_first_run_starts_now_and_later_mentions_arrive_once(fake: FakeBluesky,
                                                                       http: httpx.AsyncClient) -> None:
    old = fake.post(f"@{fake.brand_handle} from last year", handle="old.test", name="Old")
    await asyncio.sleep(0.002)
    feed = NotificationsFeed(client=client_for(fake, http))
    fake.customer_says("Grüße 👋🏽 سلام e\u0301 — my parcel is late", name="Jane Doe", handle=JANE)

    first = await feed.fetch(None)  # nothing older than the bot's start; Jane wrote after it
    (item,) = first.items
    assert first.cursor and not first.more
    assert item.platform_id != old["uri"]
    assert item.text == f"@{fake.brand_handle} Grüße 👋🏽 سلام e\u0301 — my parcel is late"
    assert (item.author.name, item.author.handle, item.author.id) == ("Jane Doe", "@jane.test", fake.account(JANE))
    assert item.kind == Kind.MENTION and item.conversation == f"{item.platform_id}|{item.author.id}"
    rkey = item.platform_id.rsplit("/", 1)[1]
    assert item.url == f"https://bsky.app/profile/jane.test/post/{rkey}"

    again = await feed.fetch(first.cursor)
    assert again.items == [] and again.cursor == first.cursor

    fake.customer_says("second", name="Jane Doe", handle=JANE)
    third = await feed.fetch(again.cursor)
    assert [i.text for i in third.items] == [f"@{fake.brand_handle} second"]
    (request,) = [r for r in fake.requests(LIST)][-1:]
    assert sorted(request["params"]["reasons"]) == ["mention", "quote", "reply"]
    assert request["params"]["priority"] == ["false"]


async def test_likes_reposts_and_follows_are_not_cases(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http))
    cursor = (await feed.fetch(None)).cursor
    announcement = fake.brand_post("Big sale today!")
    fake.like(announcement["uri"], handle="fan.test")
    fake.repost(announcement["uri"], handle="fan.test")
    fake.follow(handle="fan.test")
    quote = fake.post("this sale 🔥", handle="sam.test", name="Sam", quote=announcement["uri"])
    reply = fake.post("is it online too?", handle=JANE, name="Jane", reply_to=announcement["uri"])
    page = await feed.fetch(cursor)
    assert [(i.platform_id, i.kind) for i in page.items] == [(quote["uri"], Kind.MENTION), (reply["uri"], Kind.COMMENT)]
    assert page.items[1].parent_id == announcement["uri"] and page.items[1].conversation == f"{announcement['uri']}|{page.items[1].author.id}"
    assert {n["reason"] for n in fake.notifications()} == {"like", "repost", "follow", "quote", "reply"}


async def test_many_mentions_between_polls_are_read_page_by_page(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http), page_size=20)
    cursor = (await feed.fetch(None)).cursor
    for n in range(57):
        fake.customer_says(f"#{n}", name=f"User {n}", handle=f"user{n}.test")
    page = await feed.fetch(cursor)
    assert [i.text.split()[-1] for i in page.items] == [f"#{n}" for n in range(57)]  # oldest first
    assert not page.more
    cursors = [r["params"].get("cursor") for r in fake.requests(LIST)[-3:]]
    assert cursors[0] is None and all(cursors[1:])  # the API's own cursor for older pages
    assert (await feed.fetch(page.cursor)).items == []


async def test_a_burst_beyond_the_page_limit_is_handed_over_in_parts(fake: FakeBluesky,
                                                                     http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http), page_size=10, max_pages=2)
    start = (await feed.fetch(None)).cursor
    for n in range(45):
        fake.customer_says(f"#{n}", name="U", handle=f"u{n}.test")
    pages = []
    cursor = start
    while True:
        page = await feed.fetch(cursor)
        pages.append(page)
        cursor = page.cursor or cursor
        if not page.more:
            break
    assert [len(p.items) for p in pages] == [20, 20, 5]
    assert [p.cursor for p in pages[:-1]] == [f"{start}|p1", f"{start}|p2"]  # the mark waits for the last part
    texts = [i.text.split()[-1] for p in pages for i in p.items]
    assert sorted(texts, key=lambda t: int(t[1:])) == [f"#{n}" for n in range(45)] and len(set(texts)) == 45
    assert (await feed.fetch(cursor)).items == []


async def test_a_part_whose_commit_failed_is_read_again(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http), page_size=10, max_pages=1)
    start = (await feed.fetch(None)).cursor
    for n in range(15):
        fake.customer_says(f"#{n}", name="U", handle=f"u{n}.test")
    first = await feed.fetch(start)
    assert first.more and len(first.items) == 10
    # Storing the first part failed: the poller asks again with the cursor it has.
    again = await feed.fetch(start)
    assert [i.platform_id for i in again.items] == [i.platform_id for i in first.items] and again.more
    assert again.cursor is not None
    rest = await feed.fetch(again.cursor)
    assert not rest.more and len(rest.items) == 5
    # A restart in the middle of the parts reads from the top again (the database drops repeats).
    restarted = NotificationsFeed(client=client_for(fake, http), page_size=10, max_pages=1)
    assert len((await restarted.fetch(again.cursor)).items) == 10


async def test_a_restart_neither_misses_nor_repeats(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http))
    fake.customer_says("one", name="A", handle="a.test")
    items, stored = await drain(feed, None)
    fake.customer_says("two", name="B", handle="b.test")
    more, stored = await drain(feed, stored)
    assert [i.text for i in items + more] == [f"@{fake.brand_handle} one", f"@{fake.brand_handle} two"]

    # Stopped; two more mentions arrive; a new process starts with the stored cursor.
    fake.customer_says("three", name="C", handle="c.test")
    fake.customer_says("four", name="D", handle="d.test")
    restarted = NotificationsFeed(client=client_for(fake, http))
    after, stored = await drain(restarted, stored)
    assert [i.text for i in after] == [f"@{fake.brand_handle} three", f"@{fake.brand_handle} four"]
    assert (await restarted.fetch(stored)).items == []
    assert fake.create_session_count() == 2  # one per process


async def test_a_late_indexed_post_inside_the_overlap_still_arrives(fake: FakeBluesky,
                                                                    http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http), started=datetime.now(UTC) - timedelta(minutes=30))
    cursor = (await feed.fetch(None)).cursor
    fake.customer_says("newest", name="A", handle="a.test")
    _, cursor = await drain(feed, cursor)
    # Written 90 s ago on a phone, indexed only now: its notification sorts below the newest one.
    late = fake.post(f"@{fake.brand_handle} written offline", handle="b.test", created_at=stamp(90))
    page = await feed.fetch(cursor)
    assert [i.platform_id for i in page.items] == [late["uri"]]
    restarted = NotificationsFeed(client=client_for(fake, http))
    assert (await restarted.fetch(page.cursor)).items == []  # the cursor remembers both
    too_late = fake.post(f"@{fake.brand_handle} a week old", handle="c.test", created_at=stamp(7 * 86400))
    assert too_late["uri"] not in [i.platform_id for i in (await feed.fetch(page.cursor)).items]


async def test_items_whose_commit_failed_come_again(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    feed = NotificationsFeed(client=client_for(fake, http))
    start = (await feed.fetch(None)).cursor
    fake.customer_says("please answer", name="A", handle="a.test")
    first = await feed.fetch(start)
    assert len(first.items) == 1
    # The ingest transaction failed: the poller still has the old cursor and asks again.
    second = await feed.fetch(start)
    assert [i.platform_id for i in second.items] == [i.platform_id for i in first.items]
    third = await feed.fetch(second.cursor)
    assert third.items == []


async def test_an_unreadable_cursor_starts_from_now(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    fake.customer_says("history", name="A", handle="a.test")
    await asyncio.sleep(0.002)
    feed = NotificationsFeed(client=client_for(fake, http))
    page = await feed.fetch("12345")  # e.g. an id from another version
    assert page.items == [] and page.cursor and page.cursor != "12345"


# ------------------------------------------------------------------------------------------ keyword search

async def test_keyword_search_finds_new_posts_and_skips_the_brand_s(fake: FakeBluesky, parts: SourceParts) -> None:
    fake.post("my PARCEL from 2023", handle="old.test", created_at=stamp(86400 * 365))
    feed = parts.feeds[1]
    assert isinstance(feed, SearchFeed) and feed.key == "bluesky:search:parcel"
    cursor = (await feed.fetch(None)).cursor
    fake.brand_post("Track your parcel at acme.example")
    hit = fake.post("Where is my parcel? سلام 📦", handle=JANE, name="Jane")
    fake.post("unrelated", handle="sam.test")
    page = await feed.fetch(cursor)
    (item,) = page.items
    assert item.platform_id == hit["uri"] and item.text == "Where is my parcel? سلام 📦"
    assert item.kind == Kind.MENTION and item.reply_to["handle"] == JANE
    request = fake.requests("app.bsky.feed.searchPosts")[-1]
    assert request["params"]["q"] == ["parcel"] and request["params"]["sort"] == ["latest"]
    assert (await feed.fetch(page.cursor)).items == []


# ------------------------------------------------------------------------------------------ replies

async def mention_item(fake: FakeBluesky, feed: Feed, cursor: str | None, text: str,
                       handle: str = JANE) -> tuple[Item, str | None]:
    fake.customer_says(text, name="Jane Doe", handle=handle)
    page = await feed.fetch(cursor)
    return page.items[-1], page.cursor


async def test_a_reply_threads_under_the_customer_s_post(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    sender = parts.senders["bluesky"]
    cursor = (await feed.fetch(None)).cursor
    item, cursor = await mention_item(fake, feed, cursor, "my parcel never arrived")

    delivery = await sender.send(reply_to=item.reply_to, text="Hi Jane, a new one is on its way.",
                                 idempotency_key="socialops-1")

    assert fake.sent() == ["@jane.test Hi Jane, a new one is on its way."]
    (record,) = fake.brand_records()
    customer = {"uri": item.reply_to["uri"], "cid": item.reply_to["cid"]}
    assert record["record"]["reply"] == {"root": customer, "parent": customer}
    assert record["rkey"] == record_key("socialops-1") and TID.match(record["rkey"])
    assert delivery.platform_id == record["uri"] == f"at://{fake.did}/app.bsky.feed.post/{record['rkey']}"
    assert delivery.url == f"https://bsky.app/profile/{fake.brand_handle}/post/{record['rkey']}"
    (facet,) = record["record"]["facets"]
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": fake.account(JANE)}]
    assert facet["index"] == {"byteStart": 0, "byteEnd": len("@jane.test")}
    request = fake.requests(CREATE)[0]["json"]
    documented = fixture("createRecord_reply_request.json")["json"]
    assert keys_of(request) == {**keys_of(documented), "rkey": None,
                                "record": {**keys_of(documented["record"]), "facets": keys_of(record["record"]["facets"])}}
    assert request["repo"] == fake.did and request["collection"] == "app.bsky.feed.post"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", request["record"]["createdAt"])


async def test_the_customer_s_answer_joins_the_case_and_our_next_reply_keeps_the_root(
        fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    sender = parts.senders["bluesky"]
    cursor = (await feed.fetch(None)).cursor
    first, cursor = await mention_item(fake, feed, cursor, "order 4711 is missing")
    ours = await sender.send(reply_to=first.reply_to, text="Sorry! Checking.", idempotency_key="k-1")
    assert ours.platform_id is not None

    answer = fake.post("thanks, which carrier?", handle=JANE, name="Jane Doe", reply_to=ours.platform_id)
    page = await feed.fetch(cursor)
    (followup,) = page.items
    assert followup.platform_id == answer["uri"]
    assert followup.kind == Kind.COMMENT and followup.parent_id == ours.platform_id
    assert followup.conversation == first.conversation == f"{first.platform_id}|{first.author.id}"

    await sender.send(reply_to=followup.reply_to, text="DHL, tracking 123.", idempotency_key="k-2")
    second = fake.brand_records()[1]["record"]["reply"]
    assert second["root"] == {"uri": first.reply_to["uri"], "cid": first.reply_to["cid"]}  # the thread's root
    assert second["parent"] == {"uri": answer["uri"], "cid": answer["cid"]}  # her post
    assert fake.sent()[1] == "@jane.test DHL, tracking 123."


@pytest.mark.parametrize("text", [
    "Merci 🙏🏽 — سلام e\u0301, wir melden uns, @jane.test! Grüße aus Köln",
    "👨‍👩‍👧‍👦🇩🇪 Hyvää päivää @jane.test https://acme.example/track?id=ä.",
])
async def test_facets_point_at_utf8_bytes_whatever_comes_before(fake: FakeBluesky, parts: SourceParts,
                                                                text: str) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello")
    await parts.senders["bluesky"].send(reply_to=item.reply_to, text=text, idempotency_key="k")
    (record,) = fake.brand_records()
    stored = record["record"]["text"]
    assert stored == f"@jane.test {text}"  # every character kept
    raw = stored.encode("utf-8")
    mentions = [f for f in record["record"]["facets"] if f["features"][0]["$type"].endswith("#mention")]
    assert [raw[f["index"]["byteStart"]:f["index"]["byteEnd"]] for f in mentions] == [b"@jane.test"] * 2
    assert mentions[1]["index"]["byteStart"] > stored.index("@jane.test", 1)  # bytes, not characters
    for link in [f for f in record["record"]["facets"] if f["features"][0]["$type"].endswith("#link")]:
        assert raw[link["index"]["byteStart"]:link["index"]["byteEnd"]].decode() == link["features"][0]["uri"]
        assert link["features"][0]["uri"] == "https://acme.example/track?id=ä"


async def test_a_retried_send_posts_once(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    sender = parts.senders["bluesky"]
    first = await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="socialops-same")
    again = await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="socialops-same")
    assert again == first and fake.sent() == ["@jane.test Hi!"]
    assert [r["status"] for r in fake.requests(CREATE)] == [200, 500]  # the PDS refuses the repeated key
    assert [r["status"] for r in fake.requests(GET_RECORD)] == [200]


async def test_a_lost_answer_is_found_instead_of_posting_twice(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    fake.fail_next(CREATE, status=502, after=True)  # written, but the answer was lost
    delivery = await parts.senders["bluesky"].send(reply_to=item.reply_to, text="Hi!", idempotency_key="k-lost")
    (record,) = fake.brand_records()
    assert delivery.platform_id == record["uri"] and fake.sent() == ["@jane.test Hi!"]


async def test_a_failed_post_is_not_reported_as_sent(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    sender = parts.senders["bluesky"]
    fake.fail_next(CREATE, status=503)
    with pytest.raises(SendError) as transient:
        await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="k-503")
    assert not transient.value.permanent and "NotEnoughResources" in transient.value.message
    fake.fail_next(CREATE, status=400, error="InvalidRequest", message="Invalid app.bsky.feed.post record")
    with pytest.raises(SendError) as refused:
        await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="k-400")
    assert refused.value.permanent and "Invalid app.bsky.feed.post record" in refused.value.message
    assert fake.sent() == []
    await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="k-503")  # the retry goes through
    assert fake.sent() == ["@jane.test Hi!"]


async def test_a_rate_limited_send_is_retried_later_without_a_lookup(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    fake.fail_next(CREATE, status=429, reset_in=60)
    with pytest.raises(SendError) as raised:
        await parts.senders["bluesky"].send(reply_to=item.reply_to, text="Hi!", idempotency_key="k")
    assert not raised.value.permanent and raised.value.retry_after is not None and raised.value.retry_after > 50
    assert fake.requests(GET_RECORD) == [] and fake.sent() == []


async def test_a_send_with_an_expired_token_refreshes_and_posts_once(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    fake.expire_access_tokens()
    await parts.senders["bluesky"].send(reply_to=item.reply_to, text="Hi!", idempotency_key="k")
    assert [r["status"] for r in fake.requests(CREATE)] == [400, 200]
    assert fake.sent() == ["@jane.test Hi!"] and fake.create_session_count() == 1


async def test_a_reply_without_a_post_reference_fails_for_good(parts: SourceParts) -> None:
    with pytest.raises(SendError) as raised:
        await parts.senders["bluesky"].send(reply_to={"via": "bluesky", "handle": JANE}, text="Hi",
                                            idempotency_key="k")
    assert raised.value.permanent


# ------------------------------------------------------------------------------------------ the 300 limit

REPLY_TO = {"via": "bluesky", "uri": "at://did:plc:x/app.bsky.feed.post/3k43tv4rft22g", "cid": "bafyreix",
            "handle": JANE, "did": "did:plc:janejanejanejanejanejane"}


def test_compose_starts_with_the_handle_once(parts: SourceParts) -> None:
    sender = parts.senders["bluesky"]
    assert sender.compose(reply_to=REPLY_TO, text="Hi") == "@jane.test Hi"
    assert sender.compose(reply_to=REPLY_TO, text="@Jane.test Hi") == "@Jane.test Hi"
    assert sender.compose(reply_to=REPLY_TO, text="@jane.testing Hi") == "@jane.test @jane.testing Hi"
    assert sender.compose(reply_to={**REPLY_TO, "handle": ""}, text="Hi") == "Hi"


def test_the_limit_counts_graphemes_including_the_handle(parts: SourceParts) -> None:
    sender = parts.senders["bluesky"]
    check = sender.check_text  # type: ignore[attr-defined]
    room = 300 - len("@jane.test ")
    assert check(reply_to=REPLY_TO, text="x" * room) is None
    problem = check(reply_to=REPLY_TO, text="x" * (room + 1))
    assert problem and "300" in problem and "301" in problem and "@handle" in problem
    family = "👨‍👩‍👧‍👦"  # 7 code points, one grapheme, 25 bytes
    assert check(reply_to=REPLY_TO, text="e\u0301" * room) is None  # combining accents do not count
    assert check(reply_to=REPLY_TO, text="🇫🇮" * room) is None
    assert check(reply_to=REPLY_TO, text="🇫🇮" * room + "🇩") is not None
    too_many_bytes = check(reply_to=REPLY_TO, text=family * room)
    assert too_many_bytes and "3000 bytes" in too_many_bytes
    assert sender.rule(reply_to=REPLY_TO, last_inbound_at=None).refusal is None  # type: ignore[attr-defined]


async def test_a_reply_of_exactly_300_graphemes_is_accepted(fake: FakeBluesky, parts: SourceParts) -> None:
    feed = parts.feeds[0]
    cursor = (await feed.fetch(None)).cursor
    item, _ = await mention_item(fake, feed, cursor, "hello?")
    sender = parts.senders["bluesky"]
    text = "".join(graphemes("سلام e\u0301 👍🏽 🇫🇮 " * 100)[: 300 - len("@jane.test ")])
    assert grapheme_count(sender.compose(reply_to=item.reply_to, text=text)) == 300 < len(text)
    assert sender.check_text(reply_to=item.reply_to, text=text) is None  # type: ignore[attr-defined]
    await sender.send(reply_to=item.reply_to, text=text, idempotency_key="k-300")
    assert fake.sent() == [f"@jane.test {text}"]
    with pytest.raises(SendError) as raised:
        await sender.send(reply_to=item.reply_to, text=text + "!", idempotency_key="k-301")
    assert raised.value.permanent and len(fake.requests(CREATE)) == 1  # refused before any call


# ------------------------------------------------------------------------------------------ check

async def test_check_reports_each_step(fake: FakeBluesky, parts: SourceParts) -> None:
    assert parts.check is not None
    rows = await parts.check()
    assert [(r.what, r.ok) for r in rows] == [("Bluesky sign-in", True), ("Bluesky profile", True),
                                             ("Bluesky notifications", True), ("Bluesky search 'parcel'", True)]
    assert fake.did in rows[0].detail and "ACME Support" in rows[1].detail
    assert fake.create_session_count() == 1


async def test_check_says_what_to_fix(fake: FakeBluesky, http: httpx.AsyncClient) -> None:
    fake.revoke()
    parts = make(config=BlueskySource(**fake.config()), env=fake.env(), http=http)
    assert parts.check is not None
    (row,) = await parts.check()
    assert not row.ok and "BLUESKY_APP_PASSWORD" in row.fix and fake.password not in row.detail + row.fix
