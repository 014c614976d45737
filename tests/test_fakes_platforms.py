"""Tests for the platform fakes (tests/fakes/mastodon.py, tests/fakes/receiver.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.mastodon import FakeMastodon
from tests.fakes.receiver import FakeReceiver, sign

FIXTURES = Path(__file__).parent / "fixtures" / "mastodon"
TOKEN = "mastodon-test-token"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_same_shape(actual: Any, expected: Any, where: str = "$") -> None:
    """Same dict keys recursively; lists compared element-wise on their first element when both non-empty."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert sorted(actual) == sorted(expected), where
        for key in expected:
            assert_same_shape(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        if actual and expected:
            assert_same_shape(actual[0], expected[0], f"{where}[0]")
    elif expected is not None and actual is not None:
        assert type(actual) is type(expected), where


@pytest.fixture
def masto() -> Iterator[FakeMastodon]:
    with FakeMastodon() as fake:
        yield fake


@pytest.fixture
def client(masto: FakeMastodon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=masto.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5) as c:
        yield c


def mention(masto: FakeMastodon, n: int) -> dict[str, Any]:
    return masto.add_mention(acct=f"user{n}@example.social", display_name=f"User {n}",
                             content_html=f'<p><span class="h-card">@acme</span> help {n}</p>')


# ---------------------------------------------------------------------------------------------- Mastodon

def test_binds_loopback_and_requires_token(masto: FakeMastodon) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", masto.url)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(f"{masto.url}/api/v1/notifications", headers=headers)
        assert r.status_code == 401 and r.json() == {"error": "The access token is invalid"}


def test_shapes_match_recordings(masto: FakeMastodon, client: httpx.Client) -> None:
    n = mention(masto, 1)
    r = client.get("/api/v1/notifications")
    recorded = fixture("notifications_mention_recorded.json")
    assert_same_shape(r.json(), recorded["response_body"])
    assert r.headers["content-type"] == recorded["response_headers"]["content-type"]
    body = r.json()[0]
    assert body["id"].isdigit() and body["group_key"] == f"ungrouped-{body['id']}"
    assert body["status"]["mentions"][0]["acct"] == "acme"
    assert body["account"]["acct"] == "user1@example.social" and body == n
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["created_at"])

    post = client.post("/api/v1/statuses", data={"status": "@user1@example.social thanks!",
                                                 "in_reply_to_id": n["status"]["id"], "visibility": "public"})
    assert post.status_code == 200
    assert_same_shape(post.json(), fixture("status_reply_recorded.json")["response_body"])


def test_rate_limit_headers(masto: FakeMastodon, client: httpx.Client) -> None:
    recorded = fixture("rate_limit_headers_doc.json")["recorded_example"]
    r = client.get("/api/v1/accounts/verify_credentials")
    assert r.json()["acct"] == "acme" and "source" in r.json()
    assert set(recorded) <= set(r.headers)
    assert r.headers["x-ratelimit-limit"] == "300"
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(iso, recorded["x-ratelimit-reset"])
    assert re.fullmatch(iso, r.headers["x-ratelimit-reset"])
    masto.rate_limit(remaining=3, reset_in=0.3)
    r = client.get("/api/v1/notifications")
    assert r.headers["x-ratelimit-remaining"] == "3"
    reset = datetime.strptime(r.headers["x-ratelimit-reset"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert 0 < reset.timestamp() - time.time() <= 0.3
    time.sleep(0.35)
    assert client.get("/api/v1/notifications").headers["x-ratelimit-remaining"] == "299"


def test_failure_injection(masto: FakeMastodon, client: httpx.Client) -> None:
    masto.fail_next("/api/v1/notifications", times=2)
    masto.fail_next("/api/v1/statuses", status=503)
    for _ in range(2):
        r = client.get("/api/v1/notifications")
        assert r.status_code == 429 and r.json() == {"error": "Too many requests"}
        assert r.headers["x-ratelimit-remaining"] == "0"
        reset = datetime.strptime(r.headers["x-ratelimit-reset"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert 0 < reset.timestamp() - time.time() <= 1.0
    assert client.get("/api/v1/notifications").status_code == 200
    assert client.post("/api/v1/statuses", data={"status": "hi"}).status_code == 503
    assert client.post("/api/v1/statuses", data={"status": "hi"}).status_code == 200
    assert [p["status"] for p in masto.post_requests()] == [503, 200]
    assert len(masto.statuses_by_brand()) == 1


def test_pagination_link_headers_and_min_id(masto: FakeMastodon, client: httpx.Client) -> None:
    ids = [mention(masto, i)["id"] for i in range(5)]
    assert ids == sorted(ids, key=int)
    r = client.get("/api/v1/notifications", params={"limit": 2})
    assert [n["id"] for n in r.json()] == [ids[4], ids[3]]
    assert r.headers["link"] == (
        f'<{masto.url}/api/v1/notifications?limit=2&max_id={ids[3]}>; rel="next", '
        f'<{masto.url}/api/v1/notifications?limit=2&min_id={ids[4]}>; rel="prev"')
    r = client.get(r.links["next"]["url"])
    assert [n["id"] for n in r.json()] == [ids[2], ids[1]]
    r = client.get(r.links["next"]["url"])
    assert [n["id"] for n in r.json()] == [ids[0]]
    r = client.get(r.links["next"]["url"])
    assert r.json() == [] and "link" not in r.headers
    # min_id: the page immediately above min_id (oldest first chosen), still newest first
    r = client.get("/api/v1/notifications", params={"min_id": ids[0], "limit": 2})
    assert [n["id"] for n in r.json()] == [ids[2], ids[1]]
    assert [n["id"] for n in client.get(r.links["prev"]["url"]).json()] == [ids[4], ids[3]]
    # since_id: the newest page above since_id
    r = client.get("/api/v1/notifications", params={"since_id": ids[0], "limit": 2})
    assert [n["id"] for n in r.json()] == [ids[4], ids[3]]
    r = client.get("/api/v1/notifications", params={"max_id": ids[4], "since_id": ids[1]})
    assert [n["id"] for n in r.json()] == [ids[3], ids[2]]
    assert client.get("/api/v1/notifications", params={"min_id": ids[4]}).json() == []


def test_limit_default_and_max(masto: FakeMastodon, client: httpx.Client) -> None:
    for i in range(85):
        masto.add_notification("follow", acct=f"f{i}")
    assert len(client.get("/api/v1/notifications").json()) == 40
    assert len(client.get("/api/v1/notifications", params={"limit": 200}).json()) == 80


def test_types_filter(masto: FakeMastodon, client: httpx.Client) -> None:
    m1 = mention(masto, 1)
    brand_status = client.post("/api/v1/statuses", data={"status": "Our news"}).json()
    fav = masto.add_notification("favourite", acct="fan@example.social", status_id=brand_status["id"])
    masto.add_notification("follow", acct="newfan")
    m2 = mention(masto, 2)
    everything = client.get("/api/v1/notifications").json()
    assert [n["type"] for n in everything] == ["mention", "follow", "favourite", "mention"]
    assert "status" not in everything[1] and everything[2]["status"]["id"] == brand_status["id"] == fav[
        "status"]["id"]
    r = client.get("/api/v1/notifications", params={"types[]": "mention", "limit": 1})
    assert [n["id"] for n in r.json()] == [m2["id"]]
    assert "types%5B%5D=mention" in r.links["next"]["url"]
    assert [n["id"] for n in client.get(r.links["next"]["url"]).json()] == [m1["id"]]
    r = client.get("/api/v1/notifications", params={"exclude_types[]": ["follow", "favourite"]})
    assert [n["id"] for n in r.json()] == [m2["id"], m1["id"]]


def test_post_status_reply_and_idempotency(masto: FakeMastodon, client: httpx.Client) -> None:
    n = masto.add_mention(acct="bob@example.social", display_name="Bob",
                          content_html="<p>@acme my order is late</p>", followers=5000)
    parent_id = n["status"]["id"]
    form = {"status": "@bob@example.social Sorry! DM us <3", "in_reply_to_id": parent_id,
            "visibility": "public", "spoiler_text": ""}
    first = client.post("/api/v1/statuses", data=form, headers={"Idempotency-Key": "k1"})
    again = client.post("/api/v1/statuses", json={"status": "other text"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    s = first.json()
    assert int(s["id"]) > int(parent_id) and s["url"] == f"{masto.url}/@acme/{s['id']}"
    assert s["in_reply_to_id"] == parent_id and s["in_reply_to_account_id"] == n["account"]["id"]
    assert s["mentions"] == [{"id": n["account"]["id"], "username": "bob",
                              "url": "https://example.social/@bob", "acct": "bob@example.social"}]
    assert s["content"] == ('<p><span class="h-card" translate="no"><a href="https://example.social/@bob" '
                            'class="u-url mention">@<span>bob</span></a></span> Sorry! DM us &lt;3</p>')
    assert [x["id"] for x in masto.statuses_by_brand()] == [s["id"]]
    assert [(p["params"].get("status"), p["idempotency_key"]) for p in masto.post_requests()] == [
        (form["status"], "k1"), ("other text", "k1")]
    assert client.get(f"/api/v1/statuses/{parent_id}").json()["replies_count"] == 1
    assert client.get(f"/api/v1/statuses/{s['id']}").json() == s
    assert client.get("/api/v1/statuses/1").status_code == 404
    # JSON body, different key -> a second status
    other = client.post("/api/v1/statuses", json={"status": "hello", "visibility": "unlisted"},
                        headers={"Idempotency-Key": "k2"})
    assert other.json()["visibility"] == "unlisted" and len(masto.statuses_by_brand()) == 2


def test_post_status_validation(masto: FakeMastodon, client: httpx.Client) -> None:
    assert client.post("/api/v1/statuses", data={"status": "a" * 500}).status_code == 200
    r = client.post("/api/v1/statuses", data={"status": "a" * 501})
    assert r.status_code == 422
    assert r.json() == {"error": "Validation failed: Text character limit of 500 exceeded"}
    with_cw = {"status": "a" * 490, "spoiler_text": "x" * 11}  # the content warning counts too
    assert client.post("/api/v1/statuses", data=with_cw).status_code == 422
    # a URL counts 23 characters whatever its length (Mastodon's StatusLengthValidator)
    url = "https://example.com/" + "p" * 100
    assert client.post("/api/v1/statuses", data={"status": "a" * 476 + " " + url}).status_code == 200
    assert client.post("/api/v1/statuses", data={"status": "  "}).status_code == 422
    r = client.post("/api/v1/statuses", data={"status": "hi", "in_reply_to_id": "999"})
    assert r.status_code == 404 and r.json() == {"error": "Record not found"}
    assert len(masto.statuses_by_brand()) == 2
    assert [p["status"] for p in masto.post_requests()] == [200, 422, 422, 200, 422, 404]


def test_delayed_post_is_stored_and_retry_is_idempotent(masto: FakeMastodon, client: httpx.Client) -> None:
    masto.delay_posts(0.5)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/v1/statuses", data={"status": "slow"}, headers={"Idempotency-Key": "k"},
                    timeout=0.1)
    stored = masto.wait_for(masto.statuses_by_brand, timeout=2)
    masto.delay_posts(0)
    retry = client.post("/api/v1/statuses", data={"status": "slow"}, headers={"Idempotency-Key": "k"})
    assert retry.json()["id"] == stored[0]["id"] and len(masto.statuses_by_brand()) == 1


def test_wait_for_times_out_with_message(masto: FakeMastodon) -> None:
    with pytest.raises(AssertionError, match="brand never posted"):
        masto.wait_for(masto.statuses_by_brand, timeout=0.1, message="brand never posted")


def test_stop_is_final() -> None:
    fake = FakeMastodon().start()
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.url}/api/v1/notifications", timeout=1)


# ---------------------------------------------------------------------------------------------- Receiver

SECRET = "receiver-secret"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    with FakeReceiver(SECRET) as fake:
        yield fake


def deliver(receiver: FakeReceiver, key: str = "idem-1", *, secret: str = SECRET, ts: int | None = None,
            text: str = "Sorry about that!") -> httpx.Response:
    body = json.dumps({"in_reply_to": "ext-42", "conversation": "conv-7", "text": text,
                       "idempotency_key": key}).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    headers = {"Content-Type": "application/json", "X-SocialOps-Timestamp": stamp,
               "X-SocialOps-Signature": sign(secret, stamp, body), "Idempotency-Key": key}
    return httpx.post(f"{receiver.url}/hooks/socialops", content=body, headers=headers)


def test_receiver_signature(receiver: FakeReceiver) -> None:
    assert deliver(receiver, secret="wrong").status_code == 401
    assert deliver(receiver, ts=int(time.time()) - 310).status_code == 401
    assert deliver(receiver, ts=int(time.time()) + 310).status_code == 401
    r = deliver(receiver)
    assert r.status_code == 200 and r.json() == {"id": "msg-1", "url": f"{receiver.url}/messages/1"}
    assert [x["status"] for x in receiver.requests()] == [401, 401, 401, 200]
    assert receiver.messages() == [{"in_reply_to": "ext-42", "conversation": "conv-7",
                                    "text": "Sorry about that!", "idempotency_key": "idem-1", "id": "msg-1"}]


def test_receiver_dedupes_by_idempotency_key(receiver: FakeReceiver) -> None:
    first = deliver(receiver)
    assert deliver(receiver, text="edited").json() == first.json()
    assert deliver(receiver, "idem-2").json()["id"] == "msg-2"
    assert [m["id"] for m in receiver.messages()] == ["msg-1", "msg-2"]
    assert len(receiver.requests()) == 3
    assert receiver.wait_for(lambda: len(receiver.messages()) == 2)


def test_receiver_failure_injection(receiver: FakeReceiver) -> None:
    receiver.fail_next(status=429, retry_after=7)
    receiver.fail_next(status=500)
    r = deliver(receiver)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert deliver(receiver).status_code == 500
    assert deliver(receiver).status_code == 200 and len(receiver.messages()) == 1
    receiver.fail_next(status=400)
    assert deliver(receiver, "idem-9").status_code == 400 and len(receiver.messages()) == 1
