"""The fake Bot Connector (Teams serviceUrl), driven over HTTP with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fakes.teams_auth import FakeBotFrameworkAuth
from tests.fakes.teams_connector import ADAPTIVE_CARD, FakeBotConnector

CONV = "19:cases@thread.tacv2"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def fake() -> Iterator[FakeBotConnector]:
    with FakeBotConnector() as f:
        yield f


@pytest.fixture
def client(fake: FakeBotConnector) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, headers=AUTH, timeout=5) as c:
        yield c


def card(text: str, filler: str = "") -> dict[str, Any]:
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": text}]
    if filler:
        body.append({"type": "TextBlock", "text": filler})
    return {"type": "AdaptiveCard", "version": "1.4", "body": body}


def message(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": content}]}


def activities_path(conversation: str = CONV, activity_id: str | None = None) -> str:
    path = f"v3/conversations/{quote(conversation, safe='')}/activities"
    return path if activity_id is None else f"{path}/{quote(activity_id, safe='')}"


def test_url_is_local_service_url(fake: FakeBotConnector) -> None:
    assert fake.url.startswith("http://127.0.0.1:") and fake.url.endswith("/")


def test_post_card_is_stored_and_listed(fake: FakeBotConnector, client: httpx.Client) -> None:
    r = client.post(activities_path(), json=message(card("Case #1 opened")))
    assert r.status_code == 201
    activity_id = r.json()["id"]
    assert isinstance(activity_id, str) and activity_id

    [stored] = fake.activities()
    assert stored["id"] == activity_id and stored["conversation"] == CONV
    assert stored["updated"] == 0 and stored["reply_to"] is None
    assert stored["activity"]["type"] == "message" and stored["activity"]["id"] == activity_id
    assert fake.cards() == [card("Case #1 opened")]
    assert fake.cards(CONV) == fake.cards() and fake.cards("19:other@thread.tacv2") == []
    assert fake.activities("19:other@thread.tacv2") == []

    # inspection returns deep copies
    fake.activities()[0]["activity"]["attachments"].clear()
    fake.cards()[0]["body"].clear()
    assert fake.cards() == [card("Case #1 opened")]
    assert fake.calls() == [{"method": "POST", "path": "/" + activities_path(), "status": 201}]


def test_text_message_without_card(fake: FakeBotConnector, client: httpx.Client) -> None:
    r = client.post(activities_path(), json={"type": "message", "text": "hello"})
    assert r.status_code == 201
    assert fake.activities()[0]["activity"]["text"] == "hello" and fake.cards() == []
    bad = client.post(activities_path(), json={"type": "message"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadArgument"
    assert client.post(activities_path(), content=b"{not json").status_code == 400
    assert len(fake.activities()) == 1


def test_update_in_place(fake: FakeBotConnector, client: httpx.Client) -> None:
    activity_id = client.post(activities_path(), json=message(card("open"))).json()["id"]
    r = client.put(activities_path(activity_id=activity_id), json=message(card("closed")))
    assert r.status_code == 200 and r.json() == {"id": activity_id}

    [stored] = fake.activities()
    assert stored["id"] == activity_id and stored["updated"] == 1
    assert fake.cards() == [card("closed")]


def test_update_unknown_id_is_404(fake: FakeBotConnector, client: httpx.Client) -> None:
    r = client.put(activities_path(activity_id="999"), json=message(card("x")))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "NotFound" and error["message"]
    # an id from another conversation is unknown here too
    other = client.post(activities_path("19:other@thread.tacv2"), json=message(card("o"))).json()["id"]
    assert client.put(activities_path(activity_id=other), json=message(card("x"))).status_code == 404
    assert fake.cards("19:other@thread.tacv2") == [card("o")]


def test_reply_to_activity(fake: FakeBotConnector, client: httpx.Client) -> None:
    parent = client.post(activities_path(), json=message(card("case"))).json()["id"]
    r = client.post(activities_path(activity_id=parent), json={"type": "message", "text": "on it"})
    assert r.status_code == 201
    reply_id = r.json()["id"]
    assert reply_id != parent

    reply = fake.activity(reply_id)
    assert reply is not None
    assert reply["reply_to"] == parent and reply["activity"]["replyToId"] == parent
    assert [a["id"] for a in fake.activities(CONV)] == [parent, reply_id]


def test_delete(fake: FakeBotConnector, client: httpx.Client) -> None:
    activity_id = client.post(activities_path(), json=message(card("gone"))).json()["id"]
    assert client.delete(activities_path(activity_id=activity_id)).status_code == 200
    assert fake.activities() == [] and fake.cards() == []
    r = client.delete(activities_path(activity_id=activity_id))
    assert r.status_code == 404 and r.json()["error"]["code"] == "NotFound"


def test_429_with_retry_after_then_success(fake: FakeBotConnector, client: httpx.Client) -> None:
    fake.fail_next(status=429, retry_after=3)
    r = client.post(activities_path(), json=message(card("throttled")))
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert "error" in r.json()
    assert fake.activities() == []

    r = client.post(activities_path(), json=message(card("throttled")))
    assert r.status_code == 201
    assert fake.cards() == [card("throttled")]
    assert [c["status"] for c in fake.calls()] == [429, 201]


@pytest.mark.parametrize("status", [412, 502, 504])
def test_injected_failures(fake: FakeBotConnector, client: httpx.Client, status: int) -> None:
    fake.fail_next(status=status, times=2)
    for _ in range(2):
        r = client.post(activities_path(), json=message(card("x")))
        assert r.status_code == status and "Retry-After" not in r.headers
    assert client.post(activities_path(), json=message(card("x"))).status_code == 201


def test_413_for_150kb_card(fake: FakeBotConnector, client: httpx.Client) -> None:
    r = client.post(activities_path(), json=message(card("big", filler="x" * 150 * 1024)))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "MessageSizeTooBig"
    assert fake.activities() == []
    # a big-but-legal card still goes through
    assert client.post(activities_path(), json=message(card("ok", filler="x" * 90 * 1024))).status_code == 201


def test_auth_required(fake: FakeBotConnector) -> None:
    body = message(card("x"))
    with httpx.Client(base_url=fake.url, timeout=5) as anon:
        assert anon.post(activities_path(), json=body).status_code == 401
        assert anon.post(activities_path(), json=body, headers={"Authorization": "Bearer"}).status_code == 401
        assert anon.post(activities_path(), json=body, headers={"Authorization": "Basic abc"}).status_code == 401
        assert anon.post(activities_path(), json=body, headers={"Authorization": "Bearer any"}).status_code == 201

        fake.require_token("secret")
        assert anon.post(activities_path(), json=body, headers={"Authorization": "Bearer any"}).status_code == 401
        assert anon.post(activities_path(), json=body, headers={"Authorization": "Bearer secret"}).status_code == 201
    assert len(fake.activities()) == 2
    assert [c["status"] for c in fake.calls()] == [401, 401, 401, 201, 401, 201]


def test_require_token_from_auth_fake(fake: FakeBotConnector) -> None:
    body = message(card("x"))
    with FakeBotFrameworkAuth() as auth, FakeBotFrameworkAuth(token_lifetime=-60) as stale, \
            httpx.Client(base_url=fake.url, timeout=5) as http:
        for issuer in (auth, stale):
            issuer.add_app("bot-app-id", "bot-secret")
        form = {"grant_type": "client_credentials", "client_id": "bot-app-id", "client_secret": "bot-secret",
                "scope": "https://api.botframework.com/.default"}
        token = http.post(auth.token_url(), data=form).json()["access_token"]
        expired = http.post(stale.token_url(), data=form).json()["access_token"]

        def post(bearer: str) -> int:
            return http.post(activities_path(), json=body, headers={"Authorization": f"Bearer {bearer}"}).status_code

        fake.require_token_from(auth)
        assert [post("any"), post(expired), post(auth.channel_token("bot-app-id", fake.url)), post(token)] == [
            401, 401, 401, 201]
        fake.require_token_from(None)
        assert post("any") == 201
    assert len(fake.activities()) == 2

def test_url_encoded_and_raw_conversation_ids(fake: FakeBotConnector, client: httpx.Client) -> None:
    encoded = client.post("v3/conversations/19%3Acases%40thread.tacv2/activities", json=message(card("a")))
    raw = client.post("v3/conversations/19:cases@thread.tacv2/activities", json=message(card("b")))
    assert encoded.status_code == raw.status_code == 201
    assert {a["conversation"] for a in fake.activities()} == {CONV}
    assert fake.cards(CONV) == [card("a"), card("b")]

    # personal-chat ids ("a:...") and Teams channel ids with ";messageid=" survive encoding too
    channel = "19:cases@thread.tacv2;messageid=1485983408511"
    assert client.post(activities_path(channel), json=message(card("c"))).status_code == 201
    assert fake.cards(channel) == [card("c")]
    # updating through the raw path finds the activity posted through the encoded one
    first = encoded.json()["id"]
    assert client.put(f"v3/conversations/{CONV}/activities/{first}", json=message(card("a2"))).status_code == 200
    assert fake.cards(CONV) == [card("a2"), card("b")]


def test_unknown_routes(client: httpx.Client) -> None:
    assert client.get("v3/conversations").status_code == 404
    assert client.get(activities_path()).status_code == 405
