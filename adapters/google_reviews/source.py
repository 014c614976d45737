"""Google Business Profile reviews as a source: one polled feed per location, the owner's reply as sender.

Each feed's cursor is the newest `updateTime` it has seen. A fetch walks the list (most recently updated
first) until it reaches reviews at or below the cursor, and returns the new and edited reviews oldest
first. A first run only sets the cursor. A reply is a PUT that replaces the review's one owner reply, so
repeating it is harmless.

Access tokens last an hour. With `client_id_env` and `refresh_token_env` (and usually `client_secret_env`)
configured, the token renews itself: a `RefreshingToken` named "google:token" posts the refresh grant to
`token_url` (client id and secret in the form, Google's way) and keeps the newest token in the TokenStore.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from adapters.google_reviews.client import PAGE_SIZE, GoogleReviewsClient, TokenRefused
from adapters.google_reviews.parse import EPOCH, REVIEW_NAME, VIA, TimeKey, parse_review, time_key
from adapters.oauth import RefreshingToken, client_secrets
from adapters.source import SourceParts, secret
from bot.config import ConfigError, GoogleReviewsSource
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Delivery, Item
from bot.core.ports import Check, Page, ReplyRule, TokenStore

log = logging.getLogger("socialops.google_reviews")
MAX_PAGES = 20
"""Pages of 50 read per fetch: 1,000 reviews written or edited at one location between two polls."""
SPREAD = 2.0
"""Seconds between two locations' fetches within a polling round."""
MAX_REPLY_BYTES = 4096
"""Google limits a reply's comment to 4096 bytes of UTF-8, whatever the character count."""


class GoogleReviewsFeed:
    """The reviews of one location; the cursor is the newest `updateTime` seen (RFC 3339)."""

    def __init__(self, *, client: GoogleReviewsClient, account: str, location: str) -> None:
        self._client = client
        self._account = account
        self._location = location
        self.key = f"google:{location}"

    async def fetch(self, cursor: str | None) -> Page:
        since = time_key(cursor) if cursor is not None else None
        if cursor is not None and since is None:
            log.warning("%s: unreadable cursor %r; starting again from now", self.key, cursor)
        if since is None:
            page = await self._client.list_reviews(account=self._account, location=self._location)
            newest = self._newest(_reviews(page))
            return Page(items=[], cursor=newest[1] if newest else EPOCH)
        fresh: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._client.list_reviews(account=self._account, location=self._location,
                                                   page_token=token)
            stamped = [(k, r) for r in _reviews(page) if (k := time_key(r.get("updateTime"))) is not None]
            fresh.extend(r for k, r in stamped if k > since)
            token = page.get("nextPageToken") if isinstance(page.get("nextPageToken"), str) else None
            if any(k <= since for k, _ in stamped) or not token:
                break  # reached what the last poll saw (the list is ordered by updateTime, newest first)
        else:
            log.warning("%s: more than %d reviews changed since the last poll; older ones are skipped",
                        self.key, MAX_PAGES * PAGE_SIZE)
        newest = self._newest(fresh)
        if newest is None:
            return Page(items=[], cursor=None)
        items: dict[str, tuple[TimeKey, Item]] = {}
        for review in fresh:
            item = parse_review(review, location=self._location)
            key = time_key(review.get("updateTime"))
            if item is not None and key is not None:
                items.setdefault(item.platform_id, (key, item))
        ordered = [item for _, item in sorted(items.values(), key=lambda pair: pair[0])]
        return Page(items=ordered, cursor=newest[1])

    @staticmethod
    def _newest(reviews: list[dict[str, Any]]) -> tuple[TimeKey, str] | None:
        stamped = [(k, str(r["updateTime"])) for r in reviews if (k := time_key(r.get("updateTime"))) is not None]
        return max(stamped, default=None)


def _reviews(page: dict[str, Any]) -> list[dict[str, Any]]:
    reviews = page.get("reviews")
    return [r for r in reviews if isinstance(r, dict)] if isinstance(reviews, list) else []


class GoogleReviewsSender:
    """The owner's public reply under the review. Google keeps one: a new reply replaces the last."""

    platform = "google"
    checkins = False
    """A check-in would replace the reply under the review (Google keeps one), so resolving schedules none."""

    def __init__(self, *, client: GoogleReviewsClient, max_length: int) -> None:
        self._client = client
        self.max_length = max_length

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        if len(text) > self.max_length:
            return f"Google takes at most {self.max_length} characters in a reply; this one has {len(text)}."
        size = len(text.encode("utf-8"))
        if size > MAX_REPLY_BYTES:
            return (f"Google takes at most {MAX_REPLY_BYTES} bytes in a reply; this one has {size} "
                    "(emoji and letters such as ä or ی take 2 to 4 bytes each).")
        return None

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        if not REVIEW_NAME.match(str(reply_to.get("review") or "")):
            return ReplyRule(refusal="This review cannot be answered: its Google review name is unknown.")
        return ReplyRule(notice="Google shows one public owner reply under a review: sending replaces the reply "
                                "that is there now.")

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        """PUT the reply. Google has no idempotency key, and needs none: a repeated PUT sets the same reply."""
        review = str(reply_to.get("review") or "")
        if not REVIEW_NAME.match(review):
            raise SendError("the Google review's name is unknown", permanent=True)
        problem = self.check_text(reply_to=reply_to, text=text)
        if problem:
            raise SendError(problem, permanent=True)
        reply = await self._client.update_reply(review=review, comment=text)
        review_id = str(reply_to.get("review_id") or review.rsplit("/", 1)[-1])
        return Delivery(platform_id=f"{review_id}:reply@{reply.get('updateTime') or ''}", url=None)


def _checker(client: GoogleReviewsClient, account: str, locations: list[str], token_env: str,
             renewing: bool = False) -> Callable[[], Awaitable[list[Check]]]:
    fresh = (f"Authorise the OAuth client again (scope business.manage, offline access) and put the new refresh "
             f"token in {token_env}" if renewing else
             f"Put a fresh OAuth access token with the business.manage scope in {token_env}")

    async def check() -> list[Check]:
        rows: list[Check] = []
        for location in locations:
            what = f"Google reviews: {account}/{location}"
            try:
                page = await client.list_reviews(account=account, location=location, page_size=1)
            except TokenRefused as error:
                rows.append(Check(what=what, ok=False, detail=error.message, fix=fresh))
                continue
            except CredentialsError as error:
                rows.append(Check(what=what, ok=False, detail=error.message,
                                  fix=f"Give the Google account behind {token_env} owner or manager access to "
                                      f"{location}, and enable the My Business API for its Cloud project"))
                continue
            except SendError as error:
                rows.append(Check(what=what, ok=False, detail=error.message,
                                  fix="Check the account and location names in the config file"
                                  if error.permanent else "Try again later"))
                continue
            total = page.get("totalReviewCount") or 0
            average = page.get("averageRating")
            detail = f"{total} reviews" + (f", average {average:.1f} stars" if isinstance(average, int | float)
                                           and total else "")
            rows.append(Check(what=what, ok=True, detail=detail))
        return rows

    return check


TOKEN_NAME = "google:token"
"""The TokenStore key of the renewing access token."""


def access_token(config: GoogleReviewsSource, env: Mapping[str, str], http: httpx.AsyncClient,
                 store: TokenStore | None) -> tuple[str | RefreshingToken, str]:
    """The access token (renewing when the refresh settings are configured) and the variable to fix when
    Google refuses it. Configured refresh settings must be present in the environment."""
    if not config.refresh_token_env:
        return secret(env, config.token_env, "token_env"), config.token_env
    if not config.client_id_env:
        raise ConfigError("sources.google_reviews.client_id_env: the OAuth client id is needed with "
                          "refresh_token_env (Google Cloud console, APIs & Services, Credentials)")
    refresh, client_id, client_secret = client_secrets(
        env, source="google_reviews", refresh_token_env=config.refresh_token_env, client_id_env=config.client_id_env,
        client_secret_env=config.client_secret_env)
    hint = (f"authorise the OAuth client again (scope business.manage, offline access) and put the new refresh "
            f"token in {config.refresh_token_env}")
    token = RefreshingToken(http=http, name=TOKEN_NAME, token_url=str(config.token_url), client_id=client_id,
                            client_secret=client_secret, refresh_token=refresh,
                            access_token=env.get(config.token_env) or None, store=store, basic_auth=False, hint=hint)
    return token, config.refresh_token_env


def make(*, config: GoogleReviewsSource, env: Mapping[str, str], http: httpx.AsyncClient,
         store: TokenStore | None = None) -> SourceParts:
    token, token_env = access_token(config, env, http, store)
    client = GoogleReviewsClient(http=http, base_url=str(config.base_url), token=token, token_env=token_env)
    locations = list(dict.fromkeys(config.locations))
    return SourceParts(
        name=VIA,
        senders={VIA: GoogleReviewsSender(client=client, max_length=config.max_length)},
        feeds=[GoogleReviewsFeed(client=client, account=config.account, location=loc) for loc in locations],
        every=config.poll_every,
        spread=SPREAD if len(locations) > 1 else 0.0,
        check=_checker(client, config.account, locations, token_env, renewing=isinstance(token, RefreshingToken)),
    )


__all__ = ["GoogleReviewsFeed", "GoogleReviewsSender", "make"]
