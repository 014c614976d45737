"""X as a source: mentions, DMs and keyword search polled; replies and public statements posted and DMs
sent as the brand.

Feeds (each with its own stored cursor):
- `x:mentions` — GET /2/users/:id/mentions (user token);
- `x:dms` — GET /2/dm_events (user token), when `dms` is on;
- `x:search` — GET /2/tweets/search/recent (bearer token) for the configured keywords, the brand's own posts
  and reposts excluded; a post found here and in the mentions is one item (same id).

The user token renews itself when `refresh_token_env` and `client_id_env` are configured (X's OAuth 2.0
user tokens last two hours): a `RefreshingToken` named "x:user" keeps the newest tokens in the TokenStore.

Cursors are X ids (newest seen). X pages newest first, so a fetch walks back to the cursor and hands the
items over oldest first. A backlog longer than `PAGES_PER_FETCH` pages is worked off in several fetches:
the cursor then also holds the part still to fetch, `"<newest>/<since>/<until>"`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from adapters.oauth import RefreshingToken, client_secrets
from adapters.source import Endpoint, Intake, SourceParts, secret
from adapters.x.client import Ambiguous, Json, XClient
from adapters.x.parse import (
    VIA_DM,
    VIA_POST,
    brand_username,
    id_key,
    parse_dm_events,
    parse_posts,
    post_url,
    snowflake_at,
)
from adapters.x.text import DM_MAX_LENGTH, weighted_length
from adapters.x.webhook import make_endpoint
from bot.config import ConfigError, XSource
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Delivery, Item
from bot.core.ports import Check, Page, ReplyRule, TokenStore

log = logging.getLogger("socialops.x")

MENTIONS, DMS, SEARCH = "x:mentions", "x:dms", "x:search"
PAGES_PER_FETCH = 5
DM_PAGES_PER_FETCH = 10
FIRST_RUN_MARGIN_S = 30.0
"""An empty feed on the first run starts at an id made from the clock, this much earlier (clock skew)."""
SEARCH_WINDOW_S = 7 * 24 * 3600 - 600
"""Recent search refuses a since_id older than 7 days (400): older cursors are moved up to this."""


@dataclass
class Brand:
    """Who the bot speaks as: the configured id, and the @username once X has shown it."""

    user_id: str
    username: str | None = None


def build_query(keywords: list[str], user_id: str) -> str:
    """`(acme OR #acmefail OR "acme support") -from:<id> -is:retweet` from the configured keywords."""
    terms: list[str] = []
    for keyword in keywords:
        word = keyword.strip().replace('"', "")
        if word:
            terms.append(f'"{word}"' if any(c.isspace() for c in word) else word)
    group = terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"
    return f"{group} -from:{user_id} -is:retweet"


# ------------------------------------------------------------------------------------------ cursors

@dataclass(frozen=True)
class Position:
    newest: str
    gap: tuple[str, str] | None = None
    """Ids strictly between these two are still to be fetched (a backlog cut at PAGES_PER_FETCH)."""

    def __str__(self) -> str:
        return self.newest if self.gap is None else f"{self.newest}/{self.gap[0]}/{self.gap[1]}"

    @classmethod
    def parse(cls, cursor: str | None) -> Position | None:
        if not cursor:
            return None
        parts = cursor.split("/")
        if not all(p.isdigit() for p in parts) or len(parts) not in (1, 3):
            log.warning("X cursor %r is not one this version wrote: starting from now", cursor)
            return None
        return cls(parts[0], (parts[1], parts[2]) if len(parts) == 3 else None)


def _newer(a: str, b: str) -> str:
    return a if id_key(a) >= id_key(b) else b


def _clock_id(now: float | None = None) -> str:
    return str(snowflake_at((time.time() if now is None else now) - FIRST_RUN_MARGIN_S))


# ------------------------------------------------------------------------------------------ post feeds

PostPage = Callable[..., Awaitable[Json]]


class PostFeed:
    """A timeline of posts read newest first with since_id/until_id: the mentions timeline or recent search."""

    def __init__(self, *, key: str, page: PostPage, token_param: str, brand: Brand, mentioned: bool,
                 first_page_size: int, oldest_allowed: Callable[[], str | None] = lambda: None) -> None:
        self.key = key
        self._page = page
        self._token_param = token_param
        self._brand = brand
        self._mentioned = mentioned
        self._first_page_size = first_page_size
        self._oldest_allowed = oldest_allowed

    async def fetch(self, cursor: str | None) -> Page:
        try:
            return await self._fetch(cursor)
        except CredentialsError as error:
            if self.key == SEARCH and "403" in error.message:
                raise CredentialsError(f"{error.message} (or remove sources.x.keywords)") from None
            raise

    async def _fetch(self, cursor: str | None) -> Page:
        position = Position.parse(cursor)
        if position is None:  # first run: start at the newest post, replay nothing
            body = await self._page(max_results=self._first_page_size)
            self._learn(body)
            newest = _str(_meta(body).get("newest_id")) or _first_id(body)
            return Page(items=[], cursor=newest or _clock_id())
        floor = self._oldest_allowed()
        if position.gap is not None:
            since, until = position.gap
            if floor and id_key(until) <= id_key(floor):  # the rest of the gap has aged out of reach
                return Page(items=[], cursor=position.newest, more=True)
            posts, users, oldest, complete = await self._walk(since_id=_newer(since, floor or since), until_id=until)
            rest = None if complete or oldest is None else (since, oldest)
            return Page(items=self._items(posts, users), cursor=str(Position(position.newest, rest)), more=True)
        since = _newer(position.newest, floor or position.newest)
        posts, users, oldest, complete = await self._walk(since_id=since, until_id=None)
        newest = max((str(p["id"]) for p in posts), key=id_key, default=position.newest)
        newest = _newer(newest, position.newest)
        if complete or oldest is None:
            return Page(items=self._items(posts, users), cursor=newest)
        return Page(items=self._items(posts, users), cursor=str(Position(newest, (since, oldest))), more=True)

    async def _walk(self, *, since_id: str, until_id: str | None) -> tuple[list[Json], dict[str, Json], str | None,
                                                                             bool]:
        """Pages newer than since_id (and older than until_id): the posts, their authors, the oldest id seen
        and whether the walk reached since_id."""
        posts: list[Json] = []
        users: dict[str, Json] = {}
        token: str | None = None
        for _ in range(PAGES_PER_FETCH):
            args: dict[str, Any] = {"since_id": since_id, "until_id": until_id, self._token_param: token}
            body = await self._page(**args)
            self._learn(body)
            posts += [p for p in body.get("data") or [] if isinstance(p, dict) and str(p.get("id", "")).isdigit()]
            users.update({str(u["id"]): u for u in _includes_users(body)})
            token = _str(_meta(body).get("next_token")) or None
            if token is None:
                return posts, users, None, True
        oldest = min((str(p["id"]) for p in posts), key=id_key, default=None)
        return posts, users, oldest, False

    def _items(self, posts: list[Json], users: dict[str, Json]) -> list[Item]:
        body = {"data": posts, "includes": {"users": list(users.values())}}
        return parse_posts(body, brand_id=self._brand.user_id, mentioned=self._mentioned)

    def _learn(self, body: Json) -> None:
        if self._brand.username is None:
            self._brand.username = brand_username(body.get("data") or [], self._brand.user_id)


def _meta(body: Json) -> Json:
    meta = body.get("meta")
    return meta if isinstance(meta, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _first_id(body: Json) -> str:
    ids = [str(d["id"]) for d in body.get("data") or [] if isinstance(d, dict) and str(d.get("id", "")).isdigit()]
    return max(ids, key=id_key, default="")


def _includes_users(body: Json) -> list[Json]:
    includes = body.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    return [u for u in users or [] if isinstance(u, dict) and u.get("id")]


# ------------------------------------------------------------------------------------------ DM feed

class DmFeed:
    """The brand's DM events. X pages them newest first without since_id: a fetch walks back to the cursor
    (event ids grow with time) and keeps the messages customers sent, oldest first."""

    key = DMS

    def __init__(self, *, client: XClient, brand: Brand) -> None:
        self._client = client
        self._brand = brand

    async def fetch(self, cursor: str | None) -> Page:
        try:
            return await self._fetch(cursor)
        except CredentialsError as error:
            if "403" in error.message:
                raise CredentialsError(f"{error.message} (or set sources.x.dms: false)") from None
            raise

    async def _fetch(self, cursor: str | None) -> Page:
        position = Position.parse(cursor)
        if position is None:
            body = await self._client.dm_events(max_results=1)
            return Page(items=[], cursor=_first_id(body) or _clock_id())
        stop = id_key(position.newest)
        events: list[Json] = []
        users: dict[str, Json] = {}
        token: str | None = None
        for _ in range(DM_PAGES_PER_FETCH):
            body = await self._client.dm_events(pagination_token=token)
            page = [e for e in body.get("data") or [] if isinstance(e, dict) and str(e.get("id", "")).isdigit()]
            events += [e for e in page if id_key(str(e["id"])) > stop]
            users.update({str(u["id"]): u for u in _includes_users(body)})
            token = _str(_meta(body).get("next_token")) or None
            if token is None or any(id_key(str(e["id"])) <= stop for e in page):
                break
        else:
            log.warning("X DMs: more than %d pages arrived since the last poll; older ones are skipped",
                        DM_PAGES_PER_FETCH)
        newest = max((str(e["id"]) for e in events), key=id_key, default=position.newest)
        body = {"data": events, "includes": {"users": list(users.values())}}
        return Page(items=parse_dm_events(body, brand_id=self._brand.user_id), cursor=newest)


# ------------------------------------------------------------------------------------------ senders

SUMMONED_ONLY = ("X lets self-serve API plans reply only to posts that @mention or quote the brand. This post "
                 "only matched a keyword, so X may refuse the reply; a DM is the alternative if they accept DMs.")


class XPostSender:
    """Replies as posts (POST /2/tweets with reply.in_reply_to_tweet_id). X shows the reply in the thread
    with the customer named above it, so the text goes as written. Public statements are posts without a
    reply target, under the same rules."""

    platform = "x"

    def __init__(self, *, client: XClient, brand: Brand, max_length: int) -> None:
        self._client = client
        self._brand = brand
        self.max_length = max_length
        self.announce_limit = max_length
        self._unconfirmed: set[str] = set()

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text

    def _too_long(self, text: str, what: str) -> str | None:
        length = weighted_length(text)
        if length <= self.max_length:
            return None
        return (f"X counts this {what} as {length} characters (links count 23, emoji and CJK characters 2); "
                f"the limit is {self.max_length}.")

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        return self._too_long(text, "reply")

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        return ReplyRule(notice=SUMMONED_ONLY) if reply_to.get("summoned") is False else ReplyRule()

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        """X takes no idempotency key: the outbox sends each key once, again only after a failure."""
        tweet_id = str(reply_to.get("tweet_id") or "")
        if not tweet_id.isdigit():
            raise SendError("X: the customer's post id is unknown", permanent=True)
        return await self._post(text=text, in_reply_to=tweet_id, idempotency_key=idempotency_key, what="reply")

    async def announce(self, *, text: str, idempotency_key: str) -> Delivery:
        """A post of the brand's own (POST /2/tweets with only the text)."""
        return await self._post(text=text, in_reply_to=None, idempotency_key=idempotency_key, what="statement")

    async def _post(self, *, text: str, in_reply_to: str | None, idempotency_key: str, what: str) -> Delivery:
        problem_text = self._too_long(text, what)
        if problem_text:
            raise SendError(problem_text, permanent=True)
        try:
            answer = await self._client.create_post(text=text, in_reply_to=in_reply_to)
        except Ambiguous:
            self._unconfirmed.add(idempotency_key)  # a retry of the same text is refused by X if it was posted
            raise
        except SendError as error:
            if error.permanent and "duplicate" in error.message.lower():
                where = "the thread" if in_reply_to is not None else "the brand's posts"
                raise SendError(
                    f"X refused this {what} as a duplicate of one the brand already posted"
                    + (" (probably by the earlier attempt, whose answer was lost)" if idempotency_key in
                       self._unconfirmed else "")
                    + f": check {where} on X before you retry or rephrase.", permanent=True) from None
            raise
        self._unconfirmed.discard(idempotency_key)
        data = answer.get("data")
        post_id = str(data.get("id") or "") if isinstance(data, dict) else ""
        if not post_id.isdigit():  # posted (2xx), but X did not say as what: sent, without a link
            return Delivery(platform_id=None, url=None)
        return Delivery(platform_id=post_id, url=post_url(self._brand.username or "", post_id))


class XDmSender:
    """Direct Messages (POST /2/dm_conversations/with/:participant_id/messages), up to 10,000 characters."""

    platform = "x"

    def __init__(self, *, client: XClient) -> None:
        self._client = client
        self.max_length = DM_MAX_LENGTH

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        if len(text) <= self.max_length:
            return None
        return f"X Direct Messages take up to {self.max_length} characters; this one has {len(text)}."

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        return ReplyRule()

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        """No idempotency key and no duplicate check on X's side: a DM whose answer was lost is not sent
        again automatically (the card says to check the conversation, then Retry)."""
        participant = str(reply_to.get("participant_id") or "")
        if not participant.isdigit():
            raise SendError("X: the customer's user id is unknown", permanent=True)
        try:
            answer = await self._client.send_dm(participant_id=participant, text=text)
        except Ambiguous as error:
            raise SendError(f"{error.message}: the DM may have been sent. Check the conversation on X, "
                            "then Retry if it is not there.", permanent=True) from None
        data = answer.get("data")
        event_id = str(data.get("dm_event_id") or "") if isinstance(data, dict) else ""
        return Delivery(platform_id=event_id or None, url=None)


# ------------------------------------------------------------------------------------------ check

async def _check(client: XClient, config: XSource, brand: Brand, *, has_webhook: bool,
                 user_env: str, renewing: bool) -> list[Check]:
    checks: list[Check] = []
    try:
        me = (await client.me()).get("data") or {}
        user_id, username = str(me.get("id") or ""), str(me.get("username") or "")
        if user_id == config.user_id:
            brand.username = username or brand.username
            checks.append(Check("X user token", True, f"acts as @{username} ({user_id})"))
        else:
            checks.append(Check("X user token", False, f"acts as @{username} ({user_id}), not user_id "
                                f"{config.user_id}", fix=f"set sources.x.user_id to {user_id}, or create the token "
                                "while logged in as the brand account"))
    except SendError as error:
        checks.append(Check("X user token", False, error.message,
                            fix=_fix(error, user_env, renewing=renewing)))
    if config.dms:
        try:
            await client.dm_events(max_results=1)
            checks.append(Check("X DMs", True, "DM events can be read"))
        except SendError as error:
            checks.append(Check("X DMs", False, error.message, fix=_fix(error, user_env, dms=True)))
    if config.keywords:
        query = build_query(config.keywords, config.user_id)
        try:
            await client.search_recent(query, max_results=10)
            checks.append(Check("X recent search", True, f"query {query!r} accepted"))
        except SendError as error:
            checks.append(Check("X recent search", False, error.message, fix=_fix(error, config.bearer_token_env,
                                                                                    search=True)))
    if has_webhook:
        checks.append(Check("X webhook", True, "GET|POST /webhooks/x answers X's CRC and checks signatures with "
                            f"{config.consumer_secret_env}", fix=""))
    return checks


def _fix(error: SendError, env: str, *, dms: bool = False, search: bool = False, renewing: bool = False) -> str:
    if isinstance(error, CredentialsError):
        if dms:
            return f"the token in {env} needs the dm.read scope and an access level that includes DM lookup"
        if search:
            return f"the bearer token in {env} needs an access level that includes recent search"
        if renewing:
            return (f"authorise the app again as the brand account (scopes {SCOPES}) and set the new refresh "
                    f"token in {env}")
        return f"create a new user token and set it in {env}"
    if error.retry_after:
        return f"rate limited: try again in {error.retry_after:.0f}s"
    return "check sources.x in the config file and X's status page"


# ------------------------------------------------------------------------------------------ make

USER_TOKEN_NAME = "x:user"
"""The TokenStore key of the renewing user token."""
SCOPES = "tweet.read tweet.write users.read dm.read dm.write offline.access"


def user_token(config: XSource, env: Mapping[str, str], http: httpx.AsyncClient,
               store: TokenStore | None) -> tuple[str | RefreshingToken, str]:
    """The user token (renewing when the refresh settings are configured) and the variable to fix when X
    refuses it. Configured refresh settings must be present: a token that silently stops after two hours is
    worse than a clear error at start."""
    if not config.refresh_token_env:
        return secret(env, config.user_token_env, "sources.x.user_token_env"), config.user_token_env
    if not config.client_id_env:
        raise ConfigError("sources.x.client_id_env: the OAuth 2.0 client id is needed with refresh_token_env (X "
                          "developer console, Keys and tokens, OAuth 2.0 Client ID)")
    refresh, client_id, client_secret = client_secrets(
        env, source="x", refresh_token_env=config.refresh_token_env, client_id_env=config.client_id_env,
        client_secret_env=config.client_secret_env)
    hint = (f"authorise the app again as the brand account (OAuth 2.0 Authorization Code with PKCE, scopes {SCOPES}) "
            f"and set the new refresh token in {config.refresh_token_env}")
    token = RefreshingToken(http=http, name=USER_TOKEN_NAME, token_url=f"{config.base_url.rstrip('/')}/2/oauth2/token",
                            client_id=client_id, client_secret=client_secret, refresh_token=refresh,
                            access_token=env.get(config.user_token_env) or None, store=store, basic_auth=True,
                            hint=hint)
    return token, config.refresh_token_env


def make(*, config: XSource, env: Mapping[str, str], http: httpx.AsyncClient,
         store: TokenStore | None = None) -> SourceParts:
    user, user_env = user_token(config, env, http, store)
    bearer = secret(env, config.bearer_token_env, "sources.x.bearer_token_env") if config.keywords else None
    consumer_secret = env.get(config.consumer_secret_env) if config.consumer_secret_env else None
    client = XClient(http=http, base_url=config.base_url, user_token=user, bearer_token=bearer,
                     user_token_env=user_env, bearer_token_env=config.bearer_token_env)
    brand = Brand(config.user_id)

    async def mentions_page(**args: Any) -> Json:
        return await client.mentions(config.user_id, **args)

    feeds: list[Any] = [PostFeed(key=MENTIONS, page=mentions_page, token_param="pagination_token", brand=brand,
                                 mentioned=True, first_page_size=5)]
    if config.dms:
        feeds.append(DmFeed(client=client, brand=brand))
    if config.keywords:
        query = build_query(config.keywords, config.user_id)

        async def search_page(**args: Any) -> Json:
            return await client.search_recent(query, **args)

        def search_floor() -> str:
            return str(snowflake_at(time.time() - SEARCH_WINDOW_S))

        feeds.append(PostFeed(key=SEARCH, page=search_page, token_param="next_token", brand=brand, mentioned=False,
                              first_page_size=10, oldest_allowed=search_floor))

    webhook: Callable[[Intake], Endpoint] | None = None
    if consumer_secret:
        secret_value = consumer_secret

        def webhook(intake: Intake) -> Endpoint:
            return make_endpoint(intake, consumer_secret=secret_value, brand_id=config.user_id)

    async def check() -> list[Check]:
        return await _check(client, config, brand, has_webhook=webhook is not None, user_env=user_env,
                            renewing=isinstance(user, RefreshingToken))

    return SourceParts(
        name="x",
        senders={VIA_POST: XPostSender(client=client, brand=brand, max_length=config.max_length),
                 VIA_DM: XDmSender(client=client)},
        feeds=feeds, every=config.poll_every, webhook=webhook, check=check,
    )


__all__ = ["DMS", "MENTIONS", "SEARCH", "Brand", "DmFeed", "PostFeed", "XDmSender", "XPostSender", "build_query",
           "make"]
