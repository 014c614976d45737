"""Google Business Profile reviews against the fake API: polling per location (cursor, pages, edits),
the owner's reply (PUT), errors (expired token, lost access, quota, outages), `check`, and the fake itself."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from adapters.google_reviews import source as google_source
from adapters.google_reviews.parse import EPOCH
from adapters.google_reviews.source import GoogleReviewsFeed, GoogleReviewsSender, make
from adapters.source import SourceParts
from bot.config import ConfigError, GoogleReviewsSource
from bot.core.errors import CredentialsError, SendError
from bot.core.ports import Page, ReplyChecks
from tests.fakes.google_reviews import FakeGoogleReviews
from tests.test_google_reviews_parse import TEXTS

TOKEN = "google-test-token"
ENV = {"GOOGLE_TOKEN": TOKEN}
LIST = "/v4/accounts/123/locations/456/reviews"
FIXTURES = Path(__file__).parent / "fixtures" / "google_reviews"
HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)

Json = dict[str, Any]


@pytest.fixture
def google() -> Iterator[FakeGoogleReviews]:
    with FakeGoogleReviews(token=TOKEN, locations=("locations/456", "locations/789")) as fake:
        yield fake


def source(google: FakeGoogleReviews, http: httpx.AsyncClient, **config: Any) -> SourceParts:
    settings = {"account": "accounts/123", "locations": ["locations/456"], "base_url": f"{google.url}/v4", **config}
    return make(config=GoogleReviewsSource(**settings), env=ENV, http=http)


def feed(parts: SourceParts, index: int = 0) -> GoogleReviewsFeed:
    return cast(GoogleReviewsFeed, parts.feeds[index])


def sender(parts: SourceParts) -> GoogleReviewsSender:
    return cast(GoogleReviewsSender, parts.senders["google_reviews"])


def lists(google: FakeGoogleReviews) -> list[Json]:
    return [r for r in google.requests() if r["method"] == "GET"]


async def started(parts: SourceParts) -> str:
    """The first poll: it only sets the cursor."""
    page = await feed(parts).fetch(None)
    assert page.items == [] and page.cursor is not None
    return page.cursor


# ------------------------------------------------------------------------------------------ the feed

async def test_the_first_poll_starts_now_without_replaying_old_reviews(google: FakeGoogleReviews,
                                                                       http: httpx.AsyncClient) -> None:
    for n in range(3):
        google.add_review(f"old review {n}", created=HOUR_AGO + timedelta(minutes=n))
    newest = google.add_review("the newest old review", created=HOUR_AGO + timedelta(minutes=30))
    parts = source(google, http)

    page = await feed(parts).fetch(None)

    assert page == Page(items=[], cursor=newest["updateTime"], more=False)
    (request,) = lists(google)
    assert request["path"] == LIST and request["authorization"] == f"Bearer {TOKEN}"
    assert request["query"] == {"pageSize": ["50"], "orderBy": ["updateTime desc"]}


async def test_a_location_without_reviews_takes_every_later_review(google: FakeGoogleReviews,
                                                                   http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    cursor = await started(parts)
    assert cursor == EPOCH
    google.add_review("first review ever")
    page = await feed(parts).fetch(cursor)
    assert [i.text for i in page.items] == ["first review ever"]


async def test_new_reviews_arrive_oldest_first_with_the_newest_update_time_as_cursor(
        google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    google.add_review("before the bot", created=HOUR_AGO)
    parts = source(google, http)
    cursor = await started(parts)
    first = google.add_review("Der Kaffee war kalt 😒", rating=2, name="Jürgen Müller")
    second = google.add_review(None, rating=5, name="Aino Virtanen")
    third = google.add_review("خیلی عالی بود", rating=4, anonymous=True)

    page = await feed(parts).fetch(cursor)

    assert [i.platform_id for i in page.items] == [first["reviewId"], second["reviewId"], third["reviewId"]]
    assert [i.text for i in page.items] == ["Der Kaffee war kalt 😒", "(no text, ★★★★★)", "خیلی عالی بود"]
    assert [i.author.name for i in page.items] == ["Jürgen Müller", "Aino Virtanen", "Anonymous"]
    assert [i.rating for i in page.items] == [2, 5, 4]
    assert [i.reply_to["complaint"] for i in page.items] == [True, False, False]
    assert page.items[0].conversation == first["name"] and page.items[0].url is None
    assert page.cursor == third["updateTime"] and page.more is False
    # Nothing new: nothing returned, the stored cursor kept.
    assert await feed(parts).fetch(page.cursor) == Page(items=[], cursor=None)


async def test_pages_are_read_until_the_cursor_is_reached(google: FakeGoogleReviews,
                                                          http: httpx.AsyncClient) -> None:
    for n in range(100):
        google.add_review(f"old {n}", created=HOUR_AGO + timedelta(seconds=n))
    parts = source(google, http)
    cursor = await started(parts)
    new = [google.add_review(f"new {n}") for n in range(60)]

    page = await feed(parts).fetch(cursor)

    assert [i.text for i in page.items] == [f"new {n}" for n in range(60)]
    assert page.cursor == new[-1]["updateTime"]
    requests = lists(google)[1:]
    assert len(requests) == 2  # 50 new, then 10 new and the first already-seen one: stop, no third page
    assert "pageToken" not in requests[0]["query"] and requests[1]["query"]["pageToken"]
    assert all(r["query"]["pageSize"] == ["50"] and r["query"]["orderBy"] == ["updateTime desc"] for r in requests)


async def test_a_burst_beyond_the_page_budget_keeps_the_newest(google: FakeGoogleReviews, http: httpx.AsyncClient,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(google_source, "MAX_PAGES", 2)
    parts = source(google, http)
    cursor = await started(parts)
    for n in range(120):
        google.add_review(f"storm {n}")
    with caplog.at_level(logging.WARNING, logger="socialops.google_reviews"):
        page = await feed(parts).fetch(cursor)
    assert [i.text for i in page.items] == [f"storm {n}" for n in range(20, 120)]
    assert "more than 100 reviews changed" in caplog.text


async def test_an_edit_is_a_new_message_in_the_same_case(google: FakeGoogleReviews,
                                                         http: httpx.AsyncClient) -> None:
    old = google.add_review("Great pizza", rating=5, created=HOUR_AGO)
    parts = source(google, http)
    cursor = await started(parts)
    fresh = google.add_review("Rude waiter", rating=2, created=datetime.now(UTC) - timedelta(minutes=10))
    page = await feed(parts).fetch(cursor)
    assert [i.platform_id for i in page.items] == [fresh["reviewId"]]
    assert page.cursor is not None

    edited = google.edit_review(fresh["reviewId"], comment="Rude waiter, but the manager apologised 👍", rating=3)
    reedited_old = google.edit_review(old["reviewId"], comment=None, rating=1)
    later = await feed(parts).fetch(page.cursor)

    assert [i.platform_id for i in later.items] == [f"{fresh['reviewId']}@{edited['updateTime']}",
                                                    f"{old['reviewId']}@{reedited_old['updateTime']}"]
    first, second = later.items
    assert first.conversation == fresh["name"] and second.conversation == old["name"]
    assert first.text == "(edited review, ★★★☆☆)\nRude waiter, but the manager apologised 👍"
    assert second.text == "(edited review: no text, ★☆☆☆☆)" and second.reply_to["complaint"] is True
    assert first.rating == 3 and first.raw["edited"] is True
    assert later.cursor == reedited_old["updateTime"]


async def test_the_brands_reply_is_never_an_item(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    google.reply_touches_review = True  # even if Google stamped the review when we answer it
    parts = source(google, http)
    cursor = await started(parts)
    google.add_review("Where is my refund?", rating=2, created=datetime.now(UTC) - timedelta(minutes=10))
    page = await feed(parts).fetch(cursor)
    (item,) = page.items
    assert page.cursor is not None

    await sender(parts).send(reply_to=item.reply_to, text="Sorry Jane, refund sent today.", idempotency_key="k1")
    after = await feed(parts).fetch(page.cursor)

    # The review comes back (its updateTime moved) as the same first version: the dedupe drops it.
    assert [i.platform_id for i in after.items] == [item.platform_id]
    assert all("refund sent" not in i.text for i in after.items)


async def test_a_new_review_already_answered_elsewhere_is_still_a_case(google: FakeGoogleReviews,
                                                                      http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    cursor = await started(parts)
    google.add_review("Closed on a Sunday?", rating=3, reply="We open at noon on Sundays.")
    (item,) = (await feed(parts).fetch(cursor)).items
    assert item.text == "Closed on a Sunday?" and item.platform_id == item.reply_to["review_id"]


async def test_an_unreadable_cursor_starts_again_from_now(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    latest = google.add_review("existing")
    page = await feed(source(google, http)).fetch("not a time")
    assert page == Page(items=[], cursor=latest["updateTime"])


async def test_each_location_has_its_own_feed_and_cursor(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http, locations=["locations/456", "locations/789"])
    assert [f.key for f in parts.feeds] == ["google:locations/456", "google:locations/789"]
    cursors = [cast(str, (await f.fetch(None)).cursor) for f in parts.feeds]
    google.add_review("at 789", location="locations/789")
    assert (await feed(parts, 0).fetch(cursors[0])).items == []
    (item,) = (await feed(parts, 1).fetch(cursors[1])).items
    assert item.text == "at 789" and item.reply_to["location"] == "locations/789"
    assert item.conversation.startswith("accounts/123/locations/789/reviews/")


# ------------------------------------------------------------------------------------------ errors

async def test_an_expired_token_stops_the_source_naming_the_variable(google: FakeGoogleReviews,
                                                                     http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    cursor = await started(parts)
    google.revoke_token()
    with pytest.raises(CredentialsError) as error:
        await feed(parts).fetch(cursor)
    assert "GOOGLE_TOKEN" in error.value.message and "UNAUTHENTICATED" in error.value.message
    assert "expire after an hour" in error.value.message and TOKEN not in str(error.value)
    with pytest.raises(CredentialsError):
        await sender(parts).send(reply_to={"review": "accounts/123/locations/456/reviews/x"}, text="hi",
                                 idempotency_key="k")


async def test_lost_access_to_the_location_is_a_credentials_error(google: FakeGoogleReviews,
                                                                  http: httpx.AsyncClient) -> None:
    google.deny("locations/456")
    with pytest.raises(CredentialsError) as error:
        await feed(source(google, http)).fetch(None)
    assert "PERMISSION_DENIED" in error.value.message and "manager access" in error.value.message
    assert TOKEN not in str(error.value)


async def test_quota_exhausted_waits_for_retry_after(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    google.fail_next(LIST, 429, retry_after=7)
    with pytest.raises(SendError) as error:
        await feed(parts).fetch(None)
    assert error.value.permanent is False and error.value.retry_after == 7
    assert "RESOURCE_EXHAUSTED" in error.value.message
    # The client holds back on its own: the next calls do not reach Google before the time is up.
    calls = len(google.requests())
    with pytest.raises(SendError) as again:
        await feed(parts).fetch(None)
    with pytest.raises(SendError) as reply:
        await sender(parts).send(reply_to={"review": "accounts/123/locations/456/reviews/x"}, text="hi",
                                 idempotency_key="k")
    assert 0 < cast(float, again.value.retry_after) <= 7 and 0 < cast(float, reply.value.retry_after) <= 7
    assert len(google.requests()) == calls


async def test_quota_exhausted_without_retry_after_waits_a_minute(google: FakeGoogleReviews,
                                                                  http: httpx.AsyncClient) -> None:
    google.fail_next(LIST, 429)
    with pytest.raises(SendError) as error:
        await feed(source(google, http)).fetch(None)
    assert error.value.retry_after == 60 and not error.value.permanent


async def test_a_short_pause_ends(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    google.fail_next(LIST, 429, retry_after=0.2)
    with pytest.raises(SendError):
        await feed(parts).fetch(None)
    await asyncio.sleep(0.25)
    assert (await feed(parts).fetch(None)).cursor == EPOCH


@pytest.mark.parametrize("status", [500, 503])
async def test_outages_are_retried(google: FakeGoogleReviews, http: httpx.AsyncClient, status: int) -> None:
    parts = source(google, http)
    google.fail_next(LIST, status)
    with pytest.raises(SendError) as error:
        await feed(parts).fetch(None)
    assert error.value.permanent is False and error.value.retry_after is None
    assert (await feed(parts).fetch(None)).cursor == EPOCH


async def test_network_errors_are_retried(http: httpx.AsyncClient) -> None:
    with FakeGoogleReviews(token=TOKEN) as gone:
        parts = source(gone, http)
    with pytest.raises(SendError) as error:
        await feed(parts).fetch(None)
    assert error.value.permanent is False and "ConnectError" in error.value.message


async def test_a_wrong_location_is_the_platforms_final_word(google: FakeGoogleReviews,
                                                            http: httpx.AsyncClient) -> None:
    with pytest.raises(SendError) as error:
        await feed(source(google, http, locations=["locations/000"])).fetch(None)
    assert error.value.permanent is True and "NOT_FOUND" in error.value.message


# ------------------------------------------------------------------------------------------ replies

async def reviewed(google: FakeGoogleReviews, parts: SourceParts, text: str = "Cold fries", **kw: Any) -> Any:
    cursor = await started(parts)
    google.add_review(text, **kw)
    (item,) = (await feed(parts).fetch(cursor)).items
    return item


async def test_a_reply_is_put_on_the_review(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    item = await reviewed(google, parts, rating=1, name="Jane Doe")

    delivery = await sender(parts).send(reply_to=item.reply_to, text="Sorry Jane, we'll fix it.",
                                        idempotency_key="reply-1")

    (put,) = google.puts()
    assert put == {"review": item.conversation, "body": {"comment": "Sorry Jane, we'll fix it."}, "status": 200}
    (request,) = [r for r in google.requests() if r["method"] == "PUT"]
    assert request["path"] == f"/v4/{item.conversation}/reply" and request["authorization"] == f"Bearer {TOKEN}"
    reply = cast(Json, google.review(item.platform_id))["reviewReply"]
    assert reply["comment"] == "Sorry Jane, we'll fix it."
    assert delivery.platform_id == f"{item.platform_id}:reply@{reply['updateTime']}" and delivery.url is None
    assert google.sent() == ["Sorry Jane, we'll fix it."]


@pytest.mark.parametrize("text", TEXTS)
async def test_a_reply_keeps_every_character(google: FakeGoogleReviews, http: httpx.AsyncClient, text: str) -> None:
    parts = source(google, http)
    item = await reviewed(google, parts, text)
    assert item.text == text
    assert sender(parts).compose(reply_to=item.reply_to, text=text) == text
    await sender(parts).send(reply_to=item.reply_to, text=text, idempotency_key="k")
    assert google.sent() == [text] and cast(Json, google.review(item.platform_id))["reviewReply"]["comment"] == text


async def test_repeating_a_reply_is_harmless(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    item = await reviewed(google, parts)
    for _ in range(2):
        await sender(parts).send(reply_to=item.reply_to, text="Thanks for telling us", idempotency_key="same")
    assert len(google.puts()) == 2
    assert cast(Json, google.review(item.platform_id))["reviewReply"]["comment"] == "Thanks for telling us"
    # A second, different reply replaces the first one under the review: the modal says so.
    await sender(parts).send(reply_to=item.reply_to, text="Update: fixed", idempotency_key="other")
    assert cast(Json, google.review(item.platform_id))["reviewReply"]["comment"] == "Update: fixed"
    rule = sender(parts).rule(reply_to=item.reply_to, last_inbound_at=None)
    assert rule.refusal is None and rule.notice is not None and "replaces" in rule.notice


async def test_a_reply_to_an_edit_answers_the_same_review(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    cursor = await started(parts)
    review = google.add_review("meh", rating=3, created=datetime.now(UTC) - timedelta(minutes=5))
    cursor = cast(str, (await feed(parts).fetch(cursor)).cursor)
    google.edit_review(review["reviewId"], comment="worse", rating=1)
    (edit,) = (await feed(parts).fetch(cursor)).items
    delivery = await sender(parts).send(reply_to=edit.reply_to, text="Please call us", idempotency_key="k")
    assert google.puts()[0]["review"] == review["name"]
    assert cast(str, delivery.platform_id).startswith(f"{review['reviewId']}:reply@")


async def test_reply_length_is_checked_in_characters_and_bytes(google: FakeGoogleReviews,
                                                               http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    reply = sender(parts)
    to = {"review": "accounts/123/locations/456/reviews/x"}
    assert reply.max_length == 4096
    assert reply.check_text(reply_to=to, text="a" * 4096) is None
    assert reply.check_text(reply_to=to, text="ä" * 2048) is None  # 4096 bytes
    assert "4096 characters" in cast(str, reply.check_text(reply_to=to, text="a" * 4097))
    assert "4096 bytes" in cast(str, reply.check_text(reply_to=to, text="😀" * 1025))
    assert "4096 bytes" in cast(str, reply.check_text(reply_to=to, text="ä" * 2049))
    assert "at most 100 characters" in cast(str, sender(source(google, http, max_length=100))
                                            .check_text(reply_to=to, text="x" * 101))
    with pytest.raises(SendError) as error:
        await reply.send(reply_to=to, text="😀" * 1025, idempotency_key="k")
    assert error.value.permanent and google.requests() == []


async def test_a_reply_to_a_deleted_review_fails_for_good(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    item = await reviewed(google, parts)
    google.delete_review(item.platform_id)
    with pytest.raises(SendError) as error:
        await sender(parts).send(reply_to=item.reply_to, text="Hello?", idempotency_key="k")
    assert error.value.permanent is True and "NOT_FOUND" in error.value.message and google.sent() == []


async def test_a_reply_under_quota_or_outage_is_retried(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    parts = source(google, http)
    item = await reviewed(google, parts)
    google.fail_next(f"/v4/{item.conversation}/reply", 503)
    with pytest.raises(SendError) as error:
        await sender(parts).send(reply_to=item.reply_to, text="Hi", idempotency_key="k")
    assert error.value.permanent is False and google.sent() == []
    await sender(parts).send(reply_to=item.reply_to, text="Hi", idempotency_key="k")
    assert google.sent() == ["Hi"]
    google.fail_next(f"/v4/{item.conversation}/reply", 429, retry_after=30)
    with pytest.raises(SendError) as limited:
        await sender(parts).send(reply_to=item.reply_to, text="Hi again", idempotency_key="k2")
    assert limited.value.retry_after == 30 and google.sent() == ["Hi"]


@pytest.mark.parametrize("reply_to", [{}, {"review": "locations/456"}, {"review": "accounts/1/locations/2/reviews/a/b"}])
async def test_a_reply_without_a_review_name_is_refused(google: FakeGoogleReviews, http: httpx.AsyncClient,
                                                        reply_to: Json) -> None:
    reply = sender(source(google, http))
    assert reply.rule(reply_to=reply_to, last_inbound_at=None).refusal
    with pytest.raises(SendError) as error:
        await reply.send(reply_to=reply_to, text="hi", idempotency_key="k")
    assert error.value.permanent and google.requests() == []


# ------------------------------------------------------------------------------------------ make, check

def test_make_needs_the_token(http: httpx.AsyncClient) -> None:
    config = GoogleReviewsSource(account="accounts/123", locations=["locations/456"])
    with pytest.raises(ConfigError) as error:
        make(config=config, env={}, http=http)
    assert "GOOGLE_TOKEN" in str(error.value) and "token_env" in str(error.value)


def test_make_builds_a_feed_per_location_spread_within_the_round(google: FakeGoogleReviews,
                                                                 http: httpx.AsyncClient) -> None:
    one = source(google, http)
    assert one.name == "google_reviews" and list(one.senders) == ["google_reviews"]
    assert one.every == 900.0 and one.spread == 0.0 and one.webhook is None and one.check is not None
    assert one.senders["google_reviews"].platform == "google"
    assert isinstance(one.senders["google_reviews"], ReplyChecks)  # the reply box asks it about length and rules
    many = source(google, http, locations=["locations/456", "locations/789", "locations/456"], poll_every="5m")
    assert [f.key for f in many.feeds] == ["google:locations/456", "google:locations/789"]
    assert many.every == 300.0 and 0 < many.spread <= 10


async def test_check_reads_one_review_per_location(google: FakeGoogleReviews, http: httpx.AsyncClient) -> None:
    google.add_review("good", rating=5)
    google.add_review("bad", rating=2)
    parts = source(google, http, locations=["locations/456", "locations/789"])
    assert parts.check is not None
    rows = await parts.check()
    assert [(r.what, r.ok) for r in rows] == [("Google reviews: accounts/123/locations/456", True),
                                              ("Google reviews: accounts/123/locations/789", True)]
    assert rows[0].detail == "2 reviews, average 3.5 stars" and rows[1].detail == "0 reviews"
    assert all(r["query"]["pageSize"] == ["1"] for r in lists(google))

    google.deny("locations/789")
    denied = (await parts.check())[1]
    assert not denied.ok and "PERMISSION_DENIED" in denied.detail and "manager access to locations/789" in denied.fix
    google.revoke_token()
    rows = await parts.check()
    assert not any(r.ok for r in rows) and all("fresh OAuth access token" in r.fix and "GOOGLE_TOKEN" in r.fix
                                               for r in rows)
    assert all(TOKEN not in r.detail + r.fix for r in rows)


# ------------------------------------------------------------------------------------------ the fake

def keys_within(actual: Any, documented: Any, where: str = "$") -> None:
    """Every key the fake sends is one Google documents (recursively; lists by their first element)."""
    if isinstance(actual, dict):
        assert isinstance(documented, dict), where
        assert set(actual) <= set(documented), f"{where}: {set(actual) - set(documented)}"
        for key in actual:
            keys_within(actual[key], documented[key], f"{where}.{key}")
    elif isinstance(actual, list) and actual:
        keys_within(actual[0], documented[0], f"{where}[0]")
    elif documented is not None and not isinstance(documented, str):
        assert type(actual) is type(documented), where


def test_the_fake_speaks_the_documented_shapes(google: FakeGoogleReviews) -> None:
    documented = json.loads((FIXTURES / "reviews_list_response_shape.json").read_text())
    google.add_review("with reply", reply="thanks")
    google.add_review(None, rating=None, anonymous=True)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = httpx.get(f"{google.url}{LIST}", headers=headers).json()
    keys_within(body, documented["response"])
    assert set(body["reviews"][1]) == set(documented["response"]["reviews"][0])  # the answered one: every field
    assert body["reviews"][0]["starRating"] == "STAR_RATING_UNSPECIFIED" and "comment" not in body["reviews"][0]
    assert "profilePhotoUrl" not in body["reviews"][0]["reviewer"] and "nextPageToken" not in body
    put = json.loads((FIXTURES / "update_reply_request_response.json").read_text())
    answer = httpx.put(f"{google.url}/v4/{body['reviews'][0]['name']}/reply", headers=headers,
                       json={"comment": "Danke!"})
    assert answer.status_code == 200 and set(answer.json()) == set(put["response"])
    assert httpx.get(f"{google.url}/v4/accounts/123/locations/789/reviews", headers=headers).json() == {}


def test_the_fake_binds_loopback_and_answers_google_errors(google: FakeGoogleReviews) -> None:
    assert google.url.startswith("http://127.0.0.1:")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = httpx.get(f"{google.url}{LIST}", headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
        assert answer.json()["error"]["code"] == 401 and "invalid_token" in answer.headers["www-authenticate"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{google.url}{LIST}", headers=headers, params={"pageSize": 51}).status_code == 400
    assert httpx.get(f"{google.url}{LIST}", headers=headers, params={"pageToken": "junk"}).status_code == 400
    assert httpx.get(f"{google.url}{LIST}", headers=headers, params={"orderBy": "updateTime"}).status_code == 400
    google.fail_next(LIST, 429, retry_after=5)
    limited = httpx.get(f"{google.url}{LIST}", headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "5"
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_the_fake_pages_newest_first(google: FakeGoogleReviews) -> None:
    made = [google.add_review(f"r{n}") for n in range(7)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"pageSize": 3, **({"pageToken": token} if token else {})}
        body = httpx.get(f"{google.url}{LIST}", headers=headers, params=params).json()
        seen += [r["comment"] for r in body["reviews"]]
        assert body["totalReviewCount"] == 7
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == [r["comment"] for r in reversed(made)]


def test_customer_says_is_found_by_polling(google: FakeGoogleReviews) -> None:
    assert google.customer_says("Kalt und spät 🥶", name="Jürgen", handle="@j") is None
    (review,) = httpx.get(f"{google.url}{LIST}", headers={"Authorization": f"Bearer {TOKEN}"}).json()["reviews"]
    assert review["comment"] == "Kalt und spät 🥶" and review["starRating"] == "TWO"
    assert review["reviewer"]["displayName"] == "Jürgen" and google.sent() == []
