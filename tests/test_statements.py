"""Public statements: when a storm of complaints hits, the team answers everyone at once with one post of the
brand's own ("We know the app is down, fix by 14:00"). Each sender is built as the app builds it and posts to
its platform's fake; the tests check what the platform received: a standalone post, the text as written, no
reply target, and one post per idempotency key where the platform keeps keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.bluesky import source as bluesky_source
from adapters.bluesky.text import record_key
from adapters.generic import source as generic_source
from adapters.google_reviews import source as google_source
from adapters.mastodon import source as mastodon_source
from adapters.meta import source as meta_source
from adapters.x import source as x_source
from bot.config import BlueskySource, GenericSource, GoogleReviewsSource, MastodonSource, MetaSource, XSource
from bot.core.errors import SendError
from bot.core.ports import Announces, Sender
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.receiver import FakeReceiver
from tests.fakes.x import FakeX
from tests.kit.webhook import GENERIC_SECRET

STATEMENT = "We know the app is down. A fix is rolling out, everything should work again by 14:00."
CREATE = "com.atproto.repo.createRecord"


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    with FakeBluesky() as fake:
        yield fake


def announcer(sender: Sender) -> Announces:
    assert isinstance(sender, Announces)
    return sender


def mastodon_sender(mastodon: FakeMastodon, http: httpx.AsyncClient) -> Announces:
    parts = mastodon_source.make(config=MastodonSource(base_url=mastodon.url),
                                 env={"MASTODON_TOKEN": mastodon.token}, http=http)
    return announcer(parts.senders["mastodon"])


def x_sender(x: FakeX, http: httpx.AsyncClient) -> Announces:
    parts = x_source.make(config=XSource(**x.source()), env=x.env(), http=http)
    return announcer(parts.senders["x"])


def bluesky_sender(bluesky: FakeBluesky, http: httpx.AsyncClient) -> Announces:
    parts = bluesky_source.make(config=BlueskySource(**bluesky.config()), env=bluesky.env(), http=http)
    return announcer(parts.senders["bluesky"])


def generic_sender(http: httpx.AsyncClient, default_reply_url: str | None) -> Announces:
    parts = generic_source.make(config=GenericSource(default_reply_url=default_reply_url),
                                env={"GENERIC_WEBHOOK_SECRET": GENERIC_SECRET}, http=http)
    return announcer(parts.senders["generic"])


# ------------------------------------------------------------------------------------------ who can announce

def all_senders(http: httpx.AsyncClient) -> dict[str, Sender]:
    """Every platform's reply sender as the app builds it (no calls are made)."""
    here = "http://127.0.0.1:9"
    google = GoogleReviewsSource(account="accounts/1", locations=["locations/2"], base_url=here)
    return {
        "mastodon": mastodon_source.make(config=MastodonSource(base_url=here), env={"MASTODON_TOKEN": "t"},
                                         http=http).senders["mastodon"],
        "x": x_source.make(config=XSource(user_id="1", base_url=here), env={"X_USER_TOKEN": "t"},
                           http=http).senders["x"],
        "bluesky": bluesky_source.make(config=BlueskySource(service=here, handle="acme.test"),
                                       env={"BLUESKY_APP_PASSWORD": "p"}, http=http).senders["bluesky"],
        "generic": generic_source.make(config=GenericSource(), env={"GENERIC_WEBHOOK_SECRET": "s"},
                                       http=http).senders["generic"],
        "meta": meta_source.make(config=MetaSource(graph_url=here), http=http,
                                 env={"META_APP_SECRET": "s", "META_VERIFY_TOKEN": "v", "META_PAGE_TOKEN": "t"},
                                 ).senders["meta"],
        "google": google_source.make(config=google, env={"GOOGLE_TOKEN": "t"}, http=http).senders["google_reviews"],
    }


async def test_the_platforms_with_a_brand_statement_announce_and_the_others_do_not(http: httpx.AsyncClient) -> None:
    senders = all_senders(http)
    can = {name for name, sender in senders.items() if isinstance(sender, Announces)}
    assert can == {"mastodon", "x", "bluesky", "generic"}
    assert not isinstance(senders["meta"], Announces) and not isinstance(senders["google"], Announces)
    for name in can:
        assert announcer(senders[name]).announce_limit == senders[name].max_length, name


async def test_the_statement_limit_is_the_configured_length(bluesky: FakeBluesky, http: httpx.AsyncClient) -> None:
    parts = bluesky_source.make(config=BlueskySource(**bluesky.config(max_graphemes=200)), env=bluesky.env(),
                                http=http)
    assert announcer(parts.senders["bluesky"]).announce_limit == 200
    parts = mastodon_source.make(config=MastodonSource(base_url="http://127.0.0.1:9", max_length=1000),
                                 env={"MASTODON_TOKEN": "t"}, http=http)
    assert announcer(parts.senders["mastodon"]).announce_limit == 1000


# ------------------------------------------------------------------------------------------ Mastodon

async def test_mastodon_gets_a_public_status_of_its_own(mastodon: FakeMastodon, http: httpx.AsyncClient) -> None:
    sender = mastodon_sender(mastodon, http)

    delivery = await sender.announce(text=STATEMENT, idempotency_key="statement-1")

    (request,) = mastodon.post_requests()
    assert request["path"] == "/api/v1/statuses" and request["status"] == 200
    assert request["params"] == {"status": STATEMENT, "visibility": "public"}  # no in_reply_to_id at all
    assert request["idempotency_key"] == "statement-1"
    (status,) = mastodon.statuses_by_brand()
    assert status["in_reply_to_id"] is None and status["visibility"] == "public"
    assert status["content"] == f"<p>{STATEMENT}</p>" and status["mentions"] == []
    assert delivery.platform_id == status["id"] and delivery.url == status["url"]


async def test_mastodon_posts_a_repeated_statement_once(mastodon: FakeMastodon, http: httpx.AsyncClient) -> None:
    sender = mastodon_sender(mastodon, http)

    first = await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    again = await sender.announce(text=STATEMENT, idempotency_key="statement-1")

    assert [r["idempotency_key"] for r in mastodon.post_requests()] == ["statement-1", "statement-1"]
    assert len(mastodon.statuses_by_brand()) == 1
    assert again == first


async def test_mastodon_refuses_a_statement_over_its_limit(mastodon: FakeMastodon, http: httpx.AsyncClient) -> None:
    sender = mastodon_sender(mastodon, http)
    with pytest.raises(SendError) as error:
        await sender.announce(text="a" * 501, idempotency_key="statement-1")
    assert error.value.permanent and "500" in error.value.message
    assert mastodon.statuses_by_brand() == []


# ------------------------------------------------------------------------------------------ X

async def test_x_gets_a_post_with_only_the_text(x: FakeX, http: httpx.AsyncClient) -> None:
    sender = x_sender(x, http)

    delivery = await sender.announce(text=STATEMENT, idempotency_key="statement-1")

    (request,) = [r for r in x.requests("/2/tweets") if r["method"] == "POST"]
    assert request["auth"] == "user" and request["status"] == 201
    assert request["body"] == {"text": STATEMENT}
    (posted,) = x.posts_by_brand()
    assert "referenced_tweets" not in posted and "in_reply_to_user_id" not in posted
    assert x.sent_requests() == [{"kind": "post", "text": STATEMENT, "in_reply_to": None, "id": posted["id"]}]
    assert delivery.platform_id == posted["id"]
    assert delivery.url == f"https://x.com/i/status/{posted['id']}"


async def test_x_counts_a_statement_like_a_reply_and_refuses_it_before_posting(x: FakeX,
                                                                             http: httpx.AsyncClient) -> None:
    sender = x_sender(x, http)
    with pytest.raises(SendError) as error:
        await sender.announce(text="界" * 141, idempotency_key="statement-1")  # 141 characters, X counts 282
    assert error.value.permanent and "statement" in error.value.message and "282" in error.value.message
    assert x.requests("/2/tweets") == []


async def test_x_refuses_a_second_copy_of_a_statement_whose_answer_was_lost(x: FakeX,
                                                                          http: httpx.AsyncClient) -> None:
    sender = x_sender(x, http)
    x.lose_next_answer("/2/tweets", status=500)
    with pytest.raises(SendError) as lost:
        await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    assert not lost.value.permanent  # the outbox retries...
    with pytest.raises(SendError) as duplicate:
        await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    assert duplicate.value.permanent and "duplicate" in duplicate.value.message
    assert "earlier attempt" in duplicate.value.message and "statement" in duplicate.value.message
    assert len(x.posts_by_brand()) == 1  # ...and the public sees it once


# ------------------------------------------------------------------------------------------ Bluesky

async def test_bluesky_gets_a_post_without_reply_and_with_a_link_facet(bluesky: FakeBluesky,
                                                                      http: httpx.AsyncClient) -> None:
    sender = bluesky_sender(bluesky, http)
    link = "https://status.acme.example/"
    text = f"Störung: we know the app is down. Updates at {link} — fixed by 14:00."

    delivery = await sender.announce(text=text, idempotency_key="statement-1")

    (request,) = bluesky.requests(CREATE)
    assert request["status"] == 200 and request["json"]["rkey"] == record_key("statement-1")
    (posted,) = bluesky.brand_records()
    record = posted["record"]
    assert "reply" not in record and record["text"] == text
    start = text.encode().index(link.encode())  # byte offsets: "ö" takes two bytes
    assert record["facets"] == [{"index": {"byteStart": start, "byteEnd": start + len(link)},
                                 "features": [{"$type": "app.bsky.richtext.facet#link", "uri": link}]}]
    assert posted["rkey"] == record_key("statement-1")
    assert delivery.platform_id == posted["uri"]
    assert delivery.url == f"https://bsky.app/profile/{bluesky.brand_handle}/post/{posted['rkey']}"


async def test_bluesky_posts_a_repeated_statement_once(bluesky: FakeBluesky, http: httpx.AsyncClient) -> None:
    sender = bluesky_sender(bluesky, http)

    first = await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    again = await sender.announce(text=STATEMENT, idempotency_key="statement-1")  # the PDS refuses the same rkey

    assert [r["status"] for r in bluesky.requests(CREATE)] == [200, 500]
    assert bluesky.sent() == [STATEMENT]
    assert again == first


async def test_bluesky_refuses_a_statement_over_300_graphemes(bluesky: FakeBluesky, http: httpx.AsyncClient) -> None:
    sender = bluesky_sender(bluesky, http)
    with pytest.raises(SendError) as error:
        await sender.announce(text="👍🏽" * 301, idempotency_key="statement-1")
    assert error.value.permanent and "301" in error.value.message and "statement" in error.value.message
    assert bluesky.requests(CREATE) == []


# ------------------------------------------------------------------------------------------ generic webhook

def statement_body(text: str, key: str) -> dict[str, Any]:
    return {"statement": True, "in_reply_to": None, "conversation": None, "text": text, "idempotency_key": key}


async def test_the_listening_tool_gets_a_signed_statement_at_the_default_url(receiver: FakeReceiver,
                                                                            http: httpx.AsyncClient) -> None:
    sender = generic_sender(http, f"{receiver.url}/statements")

    delivery = await sender.announce(text=STATEMENT, idempotency_key="statement-1")

    (request,) = receiver.requests()
    assert request["path"] == "/statements" and request["status"] == 200  # 200: the signature was valid
    assert request["json"] == statement_body(STATEMENT, "statement-1")
    assert request["headers"]["idempotency-key"] == "statement-1"
    assert receiver.messages() == [{**statement_body(STATEMENT, "statement-1"), "id": "msg-1"}]
    assert delivery.platform_id == "msg-1" and delivery.url == f"{receiver.url}/messages/1"


async def test_the_listening_tool_gets_a_repeated_statement_once(receiver: FakeReceiver,
                                                                 http: httpx.AsyncClient) -> None:
    sender = generic_sender(http, f"{receiver.url}/statements")

    first = await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    again = await sender.announce(text=STATEMENT, idempotency_key="statement-1")

    assert [r["headers"]["idempotency-key"] for r in receiver.requests()] == ["statement-1", "statement-1"]
    assert len(receiver.messages()) == 1
    assert again == first


async def test_without_a_default_url_a_statement_fails_for_good(receiver: FakeReceiver,
                                                               http: httpx.AsyncClient) -> None:
    sender = generic_sender(http, None)
    with pytest.raises(SendError) as error:
        await sender.announce(text=STATEMENT, idempotency_key="statement-1")
    assert error.value.permanent and "default_reply_url" in error.value.message
    assert receiver.requests() == []
