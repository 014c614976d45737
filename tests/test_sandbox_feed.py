"""The sandbox's sample feed: realistic, well-formed customer traffic, ticked by a runner, posted signed."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import signing
from adapters.generic.parse import parse_event
from bot.sandbox.feed import (
    CONTENT,
    INCIDENTS,
    LANGUAGES,
    FeedPostError,
    FeedRunner,
    SampleFeed,
    signed_post,
)

Json = dict[str, Any]
SEED = 7
TICKS = 2_000
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06FF]")
HASHTAG = re.compile(r"#acme\w+")
VIP_FOLLOWERS = 50_000


def simulate(seed: int = SEED, ticks: int = TICKS) -> list[tuple[datetime, list[Json], float]]:
    """(time, events, interval after) of each tick, the clock advancing by the feed's own intervals."""
    feed = SampleFeed(seed)
    now = START
    out: list[tuple[datetime, list[Json], float]] = []
    for _ in range(ticks):
        events = feed.next_events(now)
        interval = feed.interval()
        out.append((now, events, interval))
        now += timedelta(seconds=interval)
    return out


@pytest.fixture(scope="module")
def ticks() -> list[tuple[datetime, list[Json], float]]:
    return simulate()


@pytest.fixture(scope="module")
def events(ticks: list[tuple[datetime, list[Json], float]]) -> list[Json]:
    return [event for _, batch, _ in ticks for event in batch]


# ------------------------------------------------------------------------------------------ the content

def test_each_language_has_a_dozen_distinct_messages_of_every_kind() -> None:
    assert set(CONTENT) == set(LANGUAGES) == {"en", "de", "fi", "fa", "es", "fr"}
    for lang, lines in CONTENT.items():
        assert len({line.text for line in lines}) >= 12, lang
        assert {line.kind for line in lines} == {"mention", "dm", "comment", "review"}, lang
        assert sorted(line.rating or 0 for line in lines if line.kind == "review") == [1, 2, 3, 4, 5], lang
        assert all(line.rating is None for line in lines if line.kind != "review"), lang
        assert any("{order}" in line.text for line in lines if line.kind == "dm"), lang
        assert not any("http" in line.text for line in lines), lang
    for incident in INCIDENTS:
        assert set(incident.lines) == set(LANGUAGES)
        assert all(incident.hashtag in text for texts in incident.lines.values() for text in texts)


# ------------------------------------------------------------------------------------------ the events

def test_every_event_is_a_valid_generic_webhook_event(events: list[Json]) -> None:
    assert len(events) >= TICKS
    for event in events:
        item = parse_event(json.dumps(event).encode())
        assert item.platform == event["platform"]
        assert item.conversation == event["conversation"]
        assert item.kind == event["kind"]
        assert item.url is None
        assert "reply_url" not in item.reply_to
        assert item.author.name and item.author.id
        assert item.raw["lang"] == event["lang"]


def test_no_event_links_to_the_internet(events: list[Json]) -> None:
    for event in events:
        assert "url" not in event and "reply_url" not in event
        assert "http" not in event["text"]


def test_ids_are_unique_and_carry_the_seed(events: list[Json]) -> None:
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids)
    assert all(event_id.startswith(f"sandbox-{SEED}-") for event_id in ids)


def test_conversations_are_explicit(events: list[Json]) -> None:
    for event in events:
        assert event["author"]["id"].endswith(f"-{event['platform']}")  # one person, an id per platform
        if event["kind"] == "dm":
            assert event["conversation"] == f"dm:{event['author']['id']}"
        else:
            assert event["conversation"].startswith("sandbox-conv-")


def test_all_six_languages_appear_and_persian_is_in_arabic_script(events: list[Json]) -> None:
    by_language = Counter(event["lang"] for event in events)
    assert set(by_language) == set(LANGUAGES)
    assert all(count >= 50 for count in by_language.values()), by_language
    persian = [event for event in events if event["lang"] == "fa"]
    assert all(ARABIC_SCRIPT.search(event["text"]) for event in persian)
    assert all(ARABIC_SCRIPT.search(event["author"]["name"]) for event in persian)
    assert not any(ARABIC_SCRIPT.search(event["text"]) for event in events if event["lang"] != "fa")


def test_the_example_customers_are_there(events: list[Json]) -> None:
    names = {event["author"]["name"] for event in events}
    assert {"Mika Virtanen", "سارا احمدی", "Lena Müller", "Lucía García", "Chloé Martin"} <= names


def test_kinds_and_platforms(events: list[Json]) -> None:
    assert {event["kind"] for event in events} == {"mention", "dm", "comment", "review"}
    assert {event["platform"] for event in events} == {"x", "instagram", "facebook", "bluesky", "mastodon", "google"}
    reviews = [event for event in events if event["kind"] == "review"]
    assert all(event["platform"] == "google" and event["rating"] in range(1, 6) for event in reviews)
    assert {event["rating"] for event in reviews} == {1, 2, 3, 4, 5}
    others = [event for event in events if event["kind"] != "review"]
    assert all(event["platform"] != "google" and "rating" not in event for event in others)


def test_review_ratings_match_their_text() -> None:
    rating_of = {line.text: line.rating for lines in CONTENT.values() for line in lines if line.kind == "review"}
    happy = ("great", "Gerne wieder", "Suosittelen!", "عالی", "excelente", "Je recommande")
    angry = ("Avoid", "Nie wieder", "En suosittele", "توصیه نمی‌کنم", "No lo recomiendo", "À éviter")
    for word in happy:
        assert [rating for text, rating in rating_of.items() if word in text] == [5], word
    for word in angry:
        assert [rating for text, rating in rating_of.items() if word in text] == [1], word


def test_storms_bring_near_identical_complaints_with_one_hashtag(
        ticks: list[tuple[datetime, list[Json], float]]) -> None:
    tagged: list[tuple[datetime, str, Json]] = [
        (when, tag, event) for when, batch, _ in ticks for event in batch for tag in HASHTAG.findall(event["text"])]
    storms: list[list[tuple[datetime, str, Json]]] = []
    for entry in tagged:
        if storms and entry[0] - storms[-1][-1][0] < timedelta(seconds=30):
            storms[-1].append(entry)
        else:
            storms.append([entry])
    assert storms
    for storm in storms:
        assert 6 <= len(storm) <= 12
        assert len({tag for _, tag, _ in storm}) == 1
        assert storm[-1][0] - storm[0][0] < timedelta(minutes=1)
        assert len({event["author"]["id"] for _, _, event in storm}) == len(storm)
        assert len({event["conversation"] for _, _, event in storm}) == len(storm)
        assert all(event["kind"] == "mention" for _, _, event in storm)
    assert any(len({event["lang"] for _, _, event in storm}) >= 3 for storm in storms)
    starts = [storm[0][0] for storm in storms]
    assert all(later - earlier >= timedelta(minutes=10) for earlier, later in itertools.pairwise(starts))


def test_storm_ticks_bring_several_events_about_a_second_apart(
        ticks: list[tuple[datetime, list[Json], float]]) -> None:
    def storming(batch: list[Json]) -> bool:
        return bool(HASHTAG.search(batch[0]["text"]))

    assert any(len(batch) > 1 for _, batch, _ in ticks if storming(batch))
    assert all(len(batch) == 1 for _, batch, _ in ticks if not storming(batch))
    for (_, batch, interval), (_, following, _) in itertools.pairwise(ticks):
        if storming(batch) and storming(following):
            assert interval < 1.5
        else:
            assert 4 <= interval <= 12


def test_customers_come_back_in_the_same_conversation(events: list[Json]) -> None:
    threads: dict[tuple[str, str], list[Json]] = defaultdict(list)
    for event in events:
        threads[(event["platform"], event["conversation"])].append(event)
    followed = [thread for key, thread in threads.items() if not key[1].startswith("dm:") and len(thread) > 1]
    assert followed
    for thread in followed:
        assert len({event["author"]["id"] for event in thread}) == 1
        assert len({event["kind"] for event in thread}) == 1
        assert len(thread) <= 3
    followups = sum(len(thread) - 1 for thread in followed)
    assert 0.03 * len(events) < followups < 0.2 * len(events)


def test_vips_appear_but_rarely(events: list[Json]) -> None:
    vips = [event for event in events if event["author"]["followers"] >= VIP_FOLLOWERS]
    assert 0 < len(vips) < 0.1 * len(events)
    assert all(VIP_FOLLOWERS <= event["author"]["followers"] <= 2_000_000 for event in vips)
    others = [event["author"]["followers"] for event in events if event["author"]["followers"] < VIP_FOLLOWERS]
    assert all(10 <= followers <= 5_000 for followers in others)


def test_handles_fit_their_platform(events: list[Json]) -> None:
    for event in events:
        handle, platform = event["author"]["handle"], event["platform"]
        if platform == "google":
            assert handle == ""
        elif platform == "bluesky":
            assert re.fullmatch(r"@[a-z0-9.-]+\.bsky\.social", handle), handle
        elif platform == "mastodon":
            assert re.fullmatch(r"@[a-z0-9_]+@mastodon\.social", handle), handle
        else:
            assert re.fullmatch(r"@[a-z0-9._]+", handle), handle


def test_the_same_seed_gives_the_same_feed() -> None:
    assert simulate(seed=3, ticks=200) == simulate(seed=3, ticks=200)
    assert simulate(seed=3, ticks=200) != simulate(seed=4, ticks=200)


# ------------------------------------------------------------------------------------------ the runner

async def yielding_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def until(condition: Any, rounds: int = 1_000) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")


async def test_runner_posts_until_stopped() -> None:
    posted: list[Json] = []
    changes: list[bool] = []
    slept: list[float] = []

    async def post(event: Json) -> None:
        posted.append(event)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    runner = FeedRunner(post=post, feed=SampleFeed(1), on_change=changes.append, sleep=sleep)
    assert not runner.running
    runner.start()
    runner.start()
    assert runner.running
    await until(lambda: len(posted) >= 10)
    await runner.stop()
    await runner.stop()
    assert not runner.running
    assert changes == [True, False]
    count = len(posted)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(posted) == count
    assert all(0.5 <= seconds <= 12 for seconds in slept)
    for event in posted:
        parse_event(json.dumps(event).encode())


async def test_a_failing_post_does_not_stop_the_runner() -> None:
    attempts: list[Json] = []

    async def post(event: Json) -> None:
        attempts.append(event)
        if len(attempts) <= 3:
            raise httpx.ConnectError("webhook not up yet")

    runner = FeedRunner(post=post, feed=SampleFeed(2), sleep=yielding_sleep)
    runner.start()
    await until(lambda: len(attempts) >= 8)
    assert runner.running
    await runner.stop()
    assert not runner.running


async def test_the_runner_starts_again_after_a_stop() -> None:
    posted: list[Json] = []
    changes: list[bool] = []

    async def post(event: Json) -> None:
        posted.append(event)

    runner = FeedRunner(post=post, feed=SampleFeed(3), on_change=changes.append, sleep=yielding_sleep)
    runner.start()
    await until(lambda: len(posted) >= 2)
    await runner.stop()
    runner.start()
    await until(lambda: len(posted) >= 5)
    await runner.stop()
    assert changes == [True, False, True, False]
    assert len({event["id"] for event in posted}) == len(posted)


async def test_the_runner_really_waits_between_ticks() -> None:
    posted: list[Json] = []

    async def post(event: Json) -> None:
        posted.append(event)

    runner = FeedRunner(post=post, feed=SampleFeed(4))  # the real asyncio.sleep: 4-12 s before the second tick
    runner.start()
    await until(lambda: len(posted) >= 1)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(posted) == 1
    await runner.stop()
    assert not runner.running


# ------------------------------------------------------------------------------------------ signed delivery

async def test_signed_post_delivers_a_signed_event() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(202, json={"case": 1, "duplicate": False})

    feed = SampleFeed(5)
    now = START
    event = feed.next_events(now)[0]
    while event["lang"] != "fa":
        now += timedelta(seconds=feed.interval())
        event = feed.next_events(now)[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await signed_post(http, "http://127.0.0.1:8080/webhooks/generic", "s3cret")(event)

    [request] = requests
    assert request.method == "POST"
    assert str(request.url) == "http://127.0.0.1:8080/webhooks/generic"
    assert request.headers["content-type"] == "application/json"
    body = request.content
    assert signing.verify("s3cret", request.headers.get("x-socialops-timestamp"),
                          request.headers.get("x-socialops-signature"), body) is None
    assert signing.verify("other", request.headers.get("x-socialops-timestamp"),
                          request.headers.get("x-socialops-signature"), body) is not None
    assert json.loads(body) == event
    assert parse_event(body).text == event["text"]


async def test_signed_post_raises_when_the_webhook_refuses() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "signature does not match"})

    event = SampleFeed(6).next_events(START)[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FeedPostError, match=r"401.*signature does not match"):
            await signed_post(http, "http://127.0.0.1:8080/webhooks/generic", "wrong")(event)
