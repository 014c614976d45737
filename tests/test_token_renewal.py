"""OAuth 2.0 access tokens that renew themselves (adapters/oauth.py) in the X and Google review sources, against
the fakes' token endpoints and a real `DbTokens` on SQLite: renewal after a 401 and before expiry, X's rotated
refresh tokens kept in the database across a restart, two copies renewing at once, refused refresh tokens
stopping the source with what to fix, and the whole source built by `make()` with the refresh settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Engine

from adapters import oauth
from adapters.google_reviews.source import GoogleReviewsFeed, GoogleReviewsSender
from adapters.google_reviews.source import make as make_google
from adapters.source import SourceParts
from adapters.x.source import DMS, MENTIONS, SEARCH
from adapters.x.source import make as make_x
from bot.config import ConfigError, GoogleReviewsSource, XSource
from bot.core.errors import CredentialsError
from bot.core.model import Item
from bot.core.ports import Feed, TokenStore
from bot.services.ingest import Accepted
from bot.services.polling import SourcePoller
from bot.services.tokens import DbTokens
from storage.db import make_engine, migrate
from tests.fakes.google_reviews import FakeGoogleReviews
from tests.fakes.x import FakeX

Json = dict[str, Any]
GERMAN_PERSIAN = "Grüße aus Köln 👩🏽‍💻 — سفارش شما ارسال شد"


@pytest.fixture(autouse=True)
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused refresh waits this long for another copy's renewal (2 s in production)."""
    monkeypatch.setattr(oauth, "SETTLE_S", 0.3)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine("sqlite:///" + str(tmp_path / "tokens.db"))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> DbTokens:
    return DbTokens(engine)


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture
def google() -> Iterator[FakeGoogleReviews]:
    with FakeGoogleReviews() as fake:
        yield fake


def feed_of(parts: SourceParts, key: str) -> Feed:
    return next(f for f in parts.feeds if f.key == key)


def statuses(requests: list[Json]) -> list[int]:
    return [int(r["status"]) for r in requests]


class SlowSave:
    """A TokenStore whose writes take `delay` seconds (a busy database): the copy that wins a renewal race
    has its new tokens from the platform well before the other copy can read them."""

    def __init__(self, inner: TokenStore, delay: float) -> None:
        self._inner, self._delay = inner, delay

    async def load(self, name: str) -> dict[str, Any] | None:
        return await self._inner.load(name)

    async def save(self, name: str, value: dict[str, Any]) -> None:
        await asyncio.sleep(self._delay)
        await self._inner.save(name, value)


# ------------------------------------------------------------------------------------------ X

def x_config(x: FakeX, **overrides: Any) -> XSource:
    return XSource(**{"user_id": x.brand_id, "base_url": x.url, "keywords": [], **x.refresh_settings(), **overrides})


def x_env(x: FakeX, *, initial_access: bool = False, **changes: str) -> dict[str, str]:
    """The environment with the refresh settings; without X_USER_TOKEN unless `initial_access`."""
    env = {**x.env(), **changes}
    if not initial_access:
        env.pop("X_USER_TOKEN")
    return env


def build_x(x: FakeX, http: httpx.AsyncClient, store: TokenStore | None, env: dict[str, str] | None = None,
            **overrides: Any) -> SourceParts:
    return make_x(config=x_config(x, **overrides), env=x_env(x) if env is None else env, http=http, store=store)


def mentions(x: FakeX) -> list[Json]:
    return x.requests(f"/2/users/{x.brand_id}/mentions")


async def test_x_an_expired_access_token_is_renewed_once_and_the_call_succeeds(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_x(x, http, store)
    feed = feed_of(parts, MENTIONS)
    cursor = (await feed.fetch(None)).cursor  # no access token in the environment: renewed first
    assert x.renewals() == 1 and statuses(mentions(x)) == [200]

    x.expire_user_tokens()  # two hours later
    post = x.mention("jane", GERMAN_PERSIAN)
    (item,) = (await feed.fetch(cursor)).items
    assert item.platform_id == post["id"] and item.text == f"@acme {GERMAN_PERSIAN}"
    assert statuses(mentions(x)) == [200, 401, 200] and x.renewals() == 2

    first, second = x.token_requests()
    assert first["form"] == {"grant_type": "refresh_token", "refresh_token": x.refresh_token}
    assert first["basic_client_id"] == x.client_id  # a confidential client: HTTP Basic, nothing in the form
    assert second["form"]["refresh_token"] not in (x.refresh_token, first["form"]["refresh_token"])
    assert [r["status"] for r in x.token_requests()] == [200, 200]


async def test_x_the_access_token_in_the_environment_is_used_first(x: FakeX, http: httpx.AsyncClient,
                                                                   store: DbTokens) -> None:
    parts = build_x(x, http, store, env=x_env(x, initial_access=True))
    await feed_of(parts, MENTIONS).fetch(None)
    assert statuses(mentions(x)) == [200] and x.renewals() == 0
    x.expire_user_tokens()
    await feed_of(parts, MENTIONS).fetch(None)
    assert statuses(mentions(x)) == [200, 401, 200] and x.renewals() == 1


async def test_x_the_rotated_refresh_token_is_kept_and_used_after_a_restart(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    await feed_of(build_x(x, http, store), MENTIONS).fetch(None)
    saved = await store.load("x:user")
    assert saved is not None and x.refresh_tokens == {saved["refresh_token"]}  # X rotated: only the new one works
    assert saved["access_token"] == x.token_requests()[0]["issued"]
    assert x.refresh_token not in x.refresh_tokens  # the one in the environment is stale now

    restarted = build_x(x, http, store)  # the same environment, the same database
    await feed_of(restarted, MENTIONS).fetch(None)
    assert x.renewals() == 1  # the stored access token is still good: no renewal
    x.expire_user_tokens()
    await feed_of(restarted, DMS).fetch(None)
    assert [r["form"]["refresh_token"] for r in x.token_requests()] == [x.refresh_token, saved["refresh_token"]]
    assert statuses(x.token_requests()) == [200, 200]
    assert statuses(x.requests("/2/dm_events")) == [401, 200]

    without_store = build_x(x, http, None)  # what a restart without the database would do
    with pytest.raises(CredentialsError) as error:
        await feed_of(without_store, MENTIONS).fetch(None)
    assert "Value passed for the token was invalid." in error.value.message


@pytest.mark.parametrize("save_delay", [0.0, 0.25])
async def test_x_two_copies_refused_at_once_renew_exactly_once(x: FakeX, http: httpx.AsyncClient, engine: Engine,
                                                               save_delay: float) -> None:
    one = build_x(x, http, SlowSave(DbTokens(engine), save_delay))
    two = build_x(x, http, SlowSave(DbTokens(engine), save_delay))
    await feed_of(one, MENTIONS).fetch(None)
    await feed_of(two, MENTIONS).fetch(None)  # starts from the stored token: no renewal of its own
    assert x.renewals() == 1

    x.expire_user_tokens()
    await asyncio.gather(feed_of(one, MENTIONS).fetch(None), feed_of(two, MENTIONS).fetch(None))
    assert x.renewals() == 2  # exactly one more: X rotates, a second renewal would have been refused
    assert [r["error"] for r in x.token_requests()].count("unauthorized_client") == 0
    if save_delay:  # both asked X; the loser's refresh token was already used, it took the winner's from the store
        assert [r["status"] for r in x.token_requests()][1:] in ([200, 400], [400, 200])
    assert statuses(mentions(x))[2:].count(401) == 2 and statuses(mentions(x))[-2:] == [200, 200]
    stored = await DbTokens(engine).load("x:user")
    assert stored is not None and x.refresh_tokens == {stored["refresh_token"]}

    x.mention("jane", "both copies still read")  # and both keep working with the same token
    for parts in (one, two):
        await feed_of(parts, DMS).fetch(None)
    assert statuses(x.requests("/2/dm_events")) == [200, 200] and x.renewals() == 2


async def test_x_a_copy_refused_after_another_renewed_takes_the_stored_token(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    one, two = build_x(x, http, store), build_x(x, http, store)
    await feed_of(one, MENTIONS).fetch(None)
    await feed_of(two, MENTIONS).fetch(None)
    x.expire_user_tokens()
    await feed_of(one, MENTIONS).fetch(None)  # renews
    await feed_of(two, MENTIONS).fetch(None)  # 401 with the old token: the stored one, no second renewal
    assert x.renewals() == 2 and len(x.token_requests()) == 2
    assert statuses(mentions(x)) == [200, 200, 401, 200, 401, 200]


async def test_x_a_401_even_after_renewal_is_a_credentials_error(x: FakeX, http: httpx.AsyncClient,
                                                                  store: DbTokens) -> None:
    parts = build_x(x, http, store)
    await feed_of(parts, MENTIONS).fetch(None)
    x.fail_next("/2/users", status=401, times=2)  # X refuses the token, and the renewed one too
    with pytest.raises(CredentialsError) as error:
        await feed_of(parts, MENTIONS).fetch(None)
    assert "X: the user token (renewed just now) was refused (401)" in error.value.message
    assert "X_REFRESH_TOKEN" in error.value.message
    assert statuses(mentions(x)) == [200, 401, 401] and x.renewals() == 2  # asked again once, not more


async def test_x_a_refused_refresh_token_stops_the_source_naming_the_variable(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_x(x, http, store)
    await feed_of(parts, MENTIONS).fetch(None)
    x.revoke_refresh_tokens()  # the brand removed the app's access
    x.expire_user_tokens()

    with pytest.raises(CredentialsError) as error:
        await feed_of(parts, MENTIONS).fetch(None)
    message = error.value.message
    assert "refresh token was refused (400 Value passed for the token was invalid.)" in message
    assert "X_REFRESH_TOKEN" in message and "offline.access" in message
    secrets = [x.refresh_token, x.client_secret or "", *x.refresh_tokens,
               *(r["issued"] for r in x.token_requests() if r["issued"])]
    assert not any(s in message for s in secrets)
    with pytest.raises(CredentialsError):
        await parts.senders["x"].send(reply_to={"tweet_id": "1"}, text="hi", idempotency_key="k")
    assert x.sent() == []

    reports: list[str] = []

    async def report(text: str) -> None:
        reports.append(text)

    async def ingest(items: list[Item], *, cursor: tuple[str, str] | None = None) -> list[Accepted]:
        return [Accepted(i.platform_id, 1, False) for i in items]

    async def load(key: str) -> str | None:
        return None

    poller = SourcePoller(name="x", feeds=parts.feeds, every=0.01, ingest=ingest, load_cursor=load, report=report)
    await asyncio.wait_for(poller.run(), timeout=10)  # returns: the source stopped
    assert poller.stopped_because is not None and "X_REFRESH_TOKEN" in poller.stopped_because
    (said,) = reports
    assert said.startswith("x stopped: ") and "X_REFRESH_TOKEN" in said


async def test_x_a_new_refresh_token_in_the_environment_replaces_the_refused_stored_one(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    await feed_of(build_x(x, http, store), MENTIONS).fetch(None)
    x.revoke_refresh_tokens()
    x.expire_user_tokens()
    with pytest.raises(CredentialsError):
        await feed_of(build_x(x, http, store), MENTIONS).fetch(None)

    fresh = x.authorize()["refresh_token"]  # the admin authorises the app again and restarts the bot
    restarted = build_x(x, http, store, env=x_env(x, X_REFRESH_TOKEN=fresh))
    await feed_of(restarted, MENTIONS).fetch(None)
    assert x.token_requests()[-1]["form"]["refresh_token"] == fresh and x.token_requests()[-1]["status"] == 200
    stored = await store.load("x:user")
    assert stored is not None and x.refresh_tokens == {stored["refresh_token"]}

    again = build_x(x, http, store, env=x_env(x, X_REFRESH_TOKEN=fresh))  # the next restart: the stored one wins
    x.expire_user_tokens()
    await feed_of(again, MENTIONS).fetch(None)
    assert x.token_requests()[-1]["form"]["refresh_token"] == stored["refresh_token"]
    assert x.token_requests()[-1]["status"] == 200


async def test_x_renews_before_the_token_expires(x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    x.access_lifetime = int(oauth.EARLY_S) + 1  # renewal is due one second after it was issued
    feed = feed_of(build_x(x, http, store), MENTIONS)
    await feed.fetch(None)
    await feed.fetch(None)
    assert x.renewals() == 1  # not yet due
    await asyncio.sleep(1.1)
    await feed.fetch(None)
    assert x.renewals() == 2 and 401 not in statuses(mentions(x))  # renewed before X could refuse it


async def test_x_a_public_client_sends_its_id_in_the_form(http: httpx.AsyncClient, store: DbTokens) -> None:
    with FakeX(client_secret=None) as x:
        parts = build_x(x, http, store)
        await feed_of(parts, MENTIONS).fetch(None)
        (request,) = x.token_requests()
        assert request["status"] == 200 and request["basic_client_id"] is None
        assert request["form"] == {"grant_type": "refresh_token", "refresh_token": x.refresh_token,
                                   "client_id": x.client_id}


async def test_x_a_wrong_client_secret_is_a_credentials_error(x: FakeX, http: httpx.AsyncClient,
                                                              store: DbTokens) -> None:
    parts = build_x(x, http, store, env=x_env(x, X_CLIENT_SECRET="not-the-secret"))
    with pytest.raises(CredentialsError) as error:
        await feed_of(parts, MENTIONS).fetch(None)
    assert "401 Missing valid authorization header" in error.value.message and "not-the-secret" not in str(error.value)
    assert mentions(x) == []


async def test_x_a_reply_refused_with_an_expired_token_is_posted_once_after_renewal(
        x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_x(x, http, store)
    feed = feed_of(parts, MENTIONS)
    cursor = (await feed.fetch(None)).cursor
    x.mention("jane", "meine Bestellung fehlt 😞")
    (item,) = (await feed.fetch(cursor)).items
    x.expire_user_tokens()
    delivery = await parts.senders[item.reply_to["via"]].send(reply_to=item.reply_to, text=GERMAN_PERSIAN,
                                                              idempotency_key="k1")
    assert statuses(x.requests("/2/tweets")) == [401, 201]
    assert x.sent() == [GERMAN_PERSIAN] and delivery.platform_id == x.posts_by_brand()[0]["id"]

    x.expire_user_tokens()
    sara = x.add_dm("sara", "Hei! Missä tilaukseni on?")
    await parts.senders["x_dm"].send(reply_to={"participant_id": sara["sender_id"]}, text="Hei Sara 👋",
                                     idempotency_key="k2")
    assert x.sent() == [GERMAN_PERSIAN, "Hei Sara 👋"] and x.renewals() == 3


async def test_x_the_whole_source_through_make_with_refresh_settings(x: FakeX, http: httpx.AsyncClient,
                                                                     store: DbTokens) -> None:
    parts = build_x(x, http, store, keywords=["acme"])
    assert parts.check is not None
    assert [(r.what, r.ok) for r in await parts.check()] == [("X user token", True), ("X DMs", True),
                                                              ("X recent search", True), ("X webhook", True)]
    assert x.renewals() == 1
    cursors = {f.key: (await f.fetch(None)).cursor for f in parts.feeds}
    assert set(cursors) == {MENTIONS, DMS, SEARCH}
    assert [r["auth"] for r in x.requests("/2/tweets/search")] == ["app", "app"]  # the bearer token, unchanged

    x.expire_user_tokens()
    post = x.mention("matti", "acme, tilaus on myöhässä")
    dm = x.add_dm("kim", "privately: سلام")
    found = {f.key: [i.platform_id for i in (await f.fetch(cursors[f.key])).items] for f in parts.feeds}
    assert found == {MENTIONS: [post["id"]], DMS: [dm["id"]], SEARCH: [post["id"]]}
    assert x.renewals() == 2

    x.revoke_refresh_tokens()
    x.expire_user_tokens()
    rows = {r.what: r for r in await parts.check()}
    assert not rows["X user token"].ok and "X_REFRESH_TOKEN" in rows["X user token"].fix
    assert rows["X recent search"].ok  # app-only: nothing to renew


async def test_x_a_refused_bearer_token_is_not_renewed(x: FakeX, http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_x(x, http, store, keywords=["acme"])
    x.revoke_bearer_token()
    with pytest.raises(CredentialsError) as error:
        await feed_of(parts, SEARCH).fetch(None)
    assert "X_BEARER_TOKEN" in error.value.message and x.token_requests() == []


def test_x_make_needs_the_refresh_settings_it_is_given(x: FakeX) -> None:
    http = cast(httpx.AsyncClient, None)  # make() makes no call
    build_x(x, http, None)  # X_USER_TOKEN is optional with the refresh settings
    with pytest.raises(ConfigError) as error:
        build_x(x, http, None, env={k: v for k, v in x_env(x).items() if k != "X_REFRESH_TOKEN"})
    assert "X_REFRESH_TOKEN" in str(error.value)
    with pytest.raises(ConfigError) as error:
        build_x(x, http, None, env={k: v for k, v in x_env(x).items() if k != "X_CLIENT_SECRET"})
    assert "X_CLIENT_SECRET" in str(error.value)
    with pytest.raises(ConfigError) as error:
        build_x(x, http, None, client_id_env=None)
    assert "client_id_env" in str(error.value)
    with pytest.raises(ConfigError) as error:  # without the refresh settings: as before
        make_x(config=XSource(user_id=x.brand_id, base_url=x.url), env=x_env(x), http=http)
    assert "X_USER_TOKEN" in str(error.value)


# ------------------------------------------------------------------------------------------ Google

def google_config(google: FakeGoogleReviews, **overrides: Any) -> GoogleReviewsSource:
    return GoogleReviewsSource(**{"account": google.account, "locations": ["locations/456"],
                                  "base_url": f"{google.url}/v4", **google.refresh_settings(), **overrides})


def build_google(google: FakeGoogleReviews, http: httpx.AsyncClient, store: TokenStore | None,
                 env: dict[str, str] | None = None, **overrides: Any) -> SourceParts:
    return make_google(config=google_config(google, **overrides), env=google.env() if env is None else env,
                       http=http, store=store)


def google_feed(parts: SourceParts) -> GoogleReviewsFeed:
    return cast(GoogleReviewsFeed, parts.feeds[0])


def reviews_lists(google: FakeGoogleReviews) -> list[Json]:
    return [r for r in google.requests() if r["method"] == "GET"]


async def test_google_an_expired_access_token_is_renewed_and_the_call_succeeds(
        google: FakeGoogleReviews, http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_google(google, http, store)
    cursor = (await google_feed(parts).fetch(None)).cursor  # GOOGLE_TOKEN from the environment, no renewal
    assert google.renewals() == 0

    google.expire_access_tokens()
    review = google.add_review(GERMAN_PERSIAN, rating=2, name="Jürgen")
    (item,) = (await google_feed(parts).fetch(cursor)).items
    assert item.text == GERMAN_PERSIAN and review["reviewId"] in item.platform_id
    assert statuses(reviews_lists(google)) == [200, 401, 200]
    (request,) = google.token_requests()
    assert request["form"] == {"grant_type": "refresh_token", "refresh_token": google.refresh_token,
                               "client_id": google.client_id, "client_secret": google.client_secret}
    assert request["authorization"] is None and request["status"] == 200  # Google's way: all in the form
    assert reviews_lists(google)[-1]["authorization"] == f"Bearer {request['issued']}"
    stored = await store.load("google:token")
    assert stored is not None and stored["access_token"] == request["issued"]
    assert stored["refresh_token"] == google.refresh_token  # Google does not rotate it

    google.expire_access_tokens()
    await sender_of(parts).send(reply_to=item.reply_to, text=GERMAN_PERSIAN, idempotency_key="k")
    assert [p["status"] for p in google.puts()] == [401, 200] and google.sent() == [GERMAN_PERSIAN]
    assert google.renewals() == 2


def sender_of(parts: SourceParts) -> GoogleReviewsSender:
    return cast(GoogleReviewsSender, parts.senders["google_reviews"])


async def test_google_without_an_access_token_the_first_call_renews(google: FakeGoogleReviews,
                                                                    http: httpx.AsyncClient, store: DbTokens) -> None:
    env = {k: v for k, v in google.env().items() if k != "GOOGLE_TOKEN"}
    parts = build_google(google, http, store, env=env)
    await google_feed(parts).fetch(None)
    assert google.renewals() == 1 and statuses(reviews_lists(google)) == [200]
    restarted = build_google(google, http, store, env=env)  # uses the stored access token
    await google_feed(restarted).fetch(None)
    assert google.renewals() == 1


async def test_google_a_revoked_refresh_token_is_a_credentials_error(google: FakeGoogleReviews,
                                                                     http: httpx.AsyncClient, store: DbTokens) -> None:
    parts = build_google(google, http, store)
    google.revoke_refresh_token()
    google.expire_access_tokens()
    with pytest.raises(CredentialsError) as error:
        await google_feed(parts).fetch(None)
    message = error.value.message
    assert "refresh token was refused (400 Token has been expired or revoked.)" in message
    assert "GOOGLE_REFRESH_TOKEN" in message and "business.manage" in message
    assert google.refresh_token not in message and google.client_secret not in message
    with pytest.raises(CredentialsError):
        await sender_of(parts).send(reply_to={"review": "accounts/123/locations/456/reviews/x"}, text="hi",
                                    idempotency_key="k")
    assert parts.check is not None
    (row,) = await parts.check()
    assert not row.ok and "GOOGLE_REFRESH_TOKEN" in row.fix and "refresh token" in row.fix

    google_again = google.authorize()  # the owner consents again; the new token is set and the bot restarted
    restarted = build_google(google, http, store, env={**google.env(), "GOOGLE_REFRESH_TOKEN": google_again})
    await google_feed(restarted).fetch(None)
    assert google.token_requests()[-1]["form"]["refresh_token"] == google_again


async def test_google_a_401_even_after_renewal_is_a_credentials_error(google: FakeGoogleReviews,
                                                                       http: httpx.AsyncClient,
                                                                       store: DbTokens) -> None:
    parts = build_google(google, http, store)
    google.fail_next("/v4/accounts/123/locations/456/reviews", status=401, times=2)
    with pytest.raises(CredentialsError) as error:
        await google_feed(parts).fetch(None)
    assert "refused the access token it had just renewed" in error.value.message
    assert "GOOGLE_REFRESH_TOKEN" in error.value.message and google.renewals() == 1
    assert statuses(reviews_lists(google)) == [401, 401]


async def test_google_a_wrong_client_secret_is_a_credentials_error(google: FakeGoogleReviews,
                                                                   http: httpx.AsyncClient) -> None:
    env = {**google.env(), "GOOGLE_CLIENT_SECRET": "wrong"}
    env.pop("GOOGLE_TOKEN")
    with pytest.raises(CredentialsError) as error:
        await google_feed(build_google(google, http, None, env=env)).fetch(None)
    assert "401 Unauthorized" in error.value.message and reviews_lists(google) == []


async def test_google_two_copies_both_continue(google: FakeGoogleReviews, http: httpx.AsyncClient,
                                               engine: Engine) -> None:
    one, two = (build_google(google, http, DbTokens(engine)) for _ in range(2))
    google.expire_access_tokens()
    await asyncio.gather(google_feed(one).fetch(None), google_feed(two).fetch(None))
    assert statuses(reviews_lists(google)).count(200) == 2 and 1 <= google.renewals() <= 2


def test_google_make_needs_the_refresh_settings_it_is_given(google: FakeGoogleReviews) -> None:
    http = cast(httpx.AsyncClient, None)  # make() makes no call
    env = {k: v for k, v in google.env().items() if k != "GOOGLE_TOKEN"}
    build_google(google, http, None, env=env)  # GOOGLE_TOKEN is optional with the refresh settings
    with pytest.raises(ConfigError) as error:
        build_google(google, http, None, env={k: v for k, v in env.items() if k != "GOOGLE_REFRESH_TOKEN"})
    assert "GOOGLE_REFRESH_TOKEN" in str(error.value)
    with pytest.raises(ConfigError) as error:
        build_google(google, http, None, env=env, client_id_env=None)
    assert "client_id_env" in str(error.value)
    with pytest.raises(ConfigError) as error:  # without the refresh settings: as before
        make_google(config=GoogleReviewsSource(account="accounts/123", locations=["locations/456"]), env=env,
                    http=http)
    assert "GOOGLE_TOKEN" in str(error.value)


def test_the_fakes_token_endpoints_answer_like_the_platforms(x: FakeX, google: FakeGoogleReviews) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": x.refresh_token}
    answer = httpx.post(f"{x.url}/2/oauth2/token", data=form, auth=(x.client_id, x.client_secret or ""))
    body = answer.json()
    assert answer.status_code == 200 and set(body) == {"token_type", "expires_in", "access_token", "scope",
                                                       "refresh_token"}
    assert body["expires_in"] == 7200 and "offline.access" in body["scope"]
    again = httpx.post(f"{x.url}/2/oauth2/token", data=form, auth=(x.client_id, x.client_secret or ""))
    assert again.status_code == 400 and again.json() == {"error": "invalid_request",
                                                         "error_description": "Value passed for the token was invalid."}
    no_client = httpx.post(f"{x.url}/2/oauth2/token", data={**form, "refresh_token": body["refresh_token"]})
    assert no_client.status_code == 401
    user = httpx.get(f"{x.url}/2/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert user.status_code == 200
    x.expire_user_tokens()
    assert httpx.get(f"{x.url}/2/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401

    form = {"grant_type": "refresh_token", "refresh_token": google.refresh_token, "client_id": google.client_id,
            "client_secret": google.client_secret}
    first, second = (httpx.post(f"{google.url}/token", data=form) for _ in range(2))
    assert first.status_code == second.status_code == 200  # not rotated
    assert set(first.json()) == {"access_token", "expires_in", "scope", "token_type"}
    assert first.json()["scope"] == "https://www.googleapis.com/auth/business.manage"
    google.revoke_refresh_token()
    revoked = httpx.post(f"{google.url}/token", data=form)
    assert revoked.status_code == 400 and revoked.json() == {"error": "invalid_grant",
                                                             "error_description": "Token has been expired or revoked."}
