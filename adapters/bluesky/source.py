"""Bluesky as a source: notifications and keyword searches polled, replies and public statements posted
as the brand.

Polling position. Bluesky lists notifications and search hits newest first, with an opaque cursor for
*older* pages only, and a post can show up a little after newer ones (indexing is asynchronous and a
notification's time is the earlier of the post's createdAt and indexedAt). So the stored cursor is a
high-water mark, not the API's cursor: `<newest indexedAt>|<floor>|<seen>`, where

- newest: the newest indexedAt seen;
- floor: set on the first run to the moment the bot started; nothing at or before it is ever returned
  (no history replay), dropped once it is older than the overlap;
- seen: 8-hex-digit hashes of the at-uris already handled in the overlap window (newest - `overlap`).

Each fetch reads pages until it reaches entries at or below `max(newest - overlap, floor)`, returns what
is new (not in `seen`), and stores the new mark in the same transaction as the items: a restart neither
misses nor repeats (a repeat beyond the 36 remembered hashes is dropped by the database's dedupe). When
more than `max_pages` pages are new, they are handed over in parts (`more=True`): each part is stored with
the old mark and a part number (`|p<n>`), and the mark moves only with the last part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.bluesky.client import BlueskyClient
from adapters.bluesky.parse import (
    POST,
    VIA,
    format_time,
    parse_notification,
    parse_post_view,
    parse_time,
    post_url,
    strong_ref,
)
from adapters.bluesky.text import MAX_BYTES, facets, grapheme_count, handle_pattern, record_key, utf8_length
from adapters.source import SourceParts, secret
from bot.config import BlueskySource
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Delivery, Item
from bot.core.ports import Check, Feed, Page, ReplyRule, TokenStore

log = logging.getLogger("socialops.bluesky")

NOTIFICATIONS = "bluesky:notifications"
SEEN_MAX = 36
"""Hashes kept in the cursor (the cursors table holds 400 characters)."""
KEY_MAX = 100


def search_key(query: str) -> str:
    """The cursor name of one keyword search (at most 100 characters)."""
    key = f"bluesky:search:{query}"
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(query.encode("utf-8")).hexdigest()[:8]
    return f"{key[:KEY_MAX - 9]}#{digest}"


def _digest(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------- cursor

@dataclass(frozen=True)
class Mark:
    """The stored polling position (see the module docstring)."""

    newest: datetime | None
    floor: datetime | None
    seen: tuple[str, ...] = ()
    part: int = 0
    """Set while a long scan is handed over in parts: how many parts are stored (the mark itself waits)."""

    def bound(self, overlap: timedelta) -> datetime:
        """Entries at or below this moment were handled before (or are history)."""
        candidates = [moment for moment in (self.newest - overlap if self.newest else None, self.floor) if moment]
        return max(candidates) if candidates else datetime.now(UTC)

    def encode(self) -> str:
        fields = [format_time(self.newest) if self.newest else "", format_time(self.floor) if self.floor else "",
                  ",".join(self.seen)]
        return "|".join(fields + ([f"p{self.part}"] if self.part else []))

    @classmethod
    def decode(cls, text: str) -> Mark | None:
        """The mark in `text` (a part marker is dropped: the scan it belonged to starts over), or None."""
        parts = text.split("|")
        if len(parts) not in (3, 4):
            return None
        newest, floor = parse_time(parts[0]), parse_time(parts[1])
        if newest is None and floor is None:
            return None
        seen = tuple(h for h in parts[2].split(",") if len(h) == 8)
        return cls(newest=newest, floor=floor, seen=seen)

    @classmethod
    def after(cls, *, newest: datetime | None, floor: datetime | None, window: list[tuple[str, datetime]],
              overlap: timedelta) -> Mark:
        """The mark once everything above the old bound has been handled."""
        low = newest - overlap if newest else None
        if floor is not None and low is not None and floor <= low:
            floor = None
        bound = max(moment for moment in (low, floor, datetime.min.replace(tzinfo=UTC)) if moment)
        seen: list[str] = []
        for digest, moment in sorted(window, key=lambda entry: entry[1], reverse=True):
            if moment > bound and digest not in seen:
                seen.append(digest)
        return cls(newest=newest, floor=floor, seen=tuple(seen[:SEEN_MAX]))


@dataclass
class _Resume:
    """A scan cut short by the page limit, continued by the next fetch once its part is stored."""

    base: str
    api_cursor: str
    window: list[tuple[str, datetime]]
    newest: datetime | None
    part: int


class _WindowFeed:
    """A newest-first Bluesky listing, polled with a high-water mark (see the module docstring)."""

    key: str

    def __init__(self, *, client: BlueskyClient, overlap: float, max_pages: int, page_size: int,
                 started: datetime | None = None) -> None:
        self._client = client
        self._overlap = timedelta(seconds=overlap)
        self._max_pages = max_pages
        self._page_size = page_size
        started = started or datetime.now(UTC)
        # Bluesky's times have milliseconds: a post of this very millisecond is not history.
        self._started = started.replace(microsecond=started.microsecond // 1000 * 1000) - timedelta(milliseconds=1)
        self._resume: _Resume | None = None
        self._pending: tuple[str, list[tuple[str, datetime]]] | None = None
        self._committed: dict[str, datetime] = {}

    async def _page(self, api_cursor: str | None) -> tuple[list[Any], str | None]:
        raise NotImplementedError

    def _parse(self, entry: dict[str, Any], brand_did: str) -> Item | None:
        raise NotImplementedError

    async def fetch(self, cursor: str | None) -> Page:
        mark = Mark.decode(cursor) if cursor else None
        if mark is None:
            if cursor:
                log.warning("Bluesky %s: unreadable cursor %r; starting from now", self.key, cursor)
            mark = Mark(newest=None, floor=self._started)
        if self._pending is not None and self._pending[0] == cursor:
            self._committed.update(self._pending[1])  # the items we returned last time are stored
        self._pending = None
        bound = mark.bound(self._overlap)
        self._committed = {d: moment for d, moment in self._committed.items() if moment > bound}
        brand = (await self._client.session()).did

        resume, self._resume = self._resume, None
        if resume is not None and resume.base != cursor:
            resume = None
        api_cursor = resume.api_cursor if resume else None
        window = list(resume.window) if resume else []
        newest = resume.newest if resume else mark.newest
        handled = set(mark.seen) | set(self._committed) | {digest for digest, _ in window}
        found: list[tuple[datetime, Item]] = []
        fresh: list[tuple[str, datetime]] = []
        for _ in range(self._max_pages):
            entries, next_cursor = await self._page(api_cursor)
            reached = False
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                uri, moment = entry.get("uri"), parse_time(entry.get("indexedAt"))
                if not isinstance(uri, str) or moment is None:
                    continue
                if moment <= bound:
                    reached = True
                    continue
                digest = _digest(uri)
                window.append((digest, moment))
                newest = moment if newest is None or moment > newest else newest
                if digest in handled:
                    continue
                handled.add(digest)
                fresh.append((digest, moment))
                item = self._parse(entry, brand)
                if item is not None:
                    found.append((moment, item))
            if reached or not next_cursor or not entries:
                break
            api_cursor = next_cursor
        else:
            if api_cursor:
                # The old mark, marked as a new part: stored with these items, it tells the next fetch that
                # they are committed; should the commit fail, the poller asks again with the old cursor and
                # the scan starts over (the database drops what was stored already).
                part = dataclasses.replace(mark, part=(resume.part if resume else 0) + 1)
                base = part.encode()
                self._resume = _Resume(base=base, api_cursor=api_cursor, window=window, newest=newest,
                                       part=part.part)
                self._pending = (base, fresh)
                log.info("Bluesky %s: more than %d new pages; continuing", self.key, self._max_pages)
                return Page(items=[item for _, item in sorted(found, key=lambda f: f[0])], cursor=base, more=True)
        new = Mark.after(newest=newest, floor=mark.floor, window=window, overlap=self._overlap).encode()
        if new != cursor:
            self._pending = (new, fresh)
        return Page(items=[item for _, item in sorted(found, key=lambda f: f[0])], cursor=new)


class NotificationsFeed(_WindowFeed):
    """Mentions, replies and quotes of the brand (app.bsky.notification.listNotifications)."""

    def __init__(self, *, client: BlueskyClient, overlap: float = 300.0, max_pages: int = 5, page_size: int = 50,
                 started: datetime | None = None) -> None:
        super().__init__(client=client, overlap=overlap, max_pages=max_pages, page_size=page_size, started=started)
        self.key = NOTIFICATIONS

    async def _page(self, api_cursor: str | None) -> tuple[list[Any], str | None]:
        page = await self._client.list_notifications(cursor=api_cursor, limit=self._page_size)
        entries = page.get("notifications")
        next_cursor = page.get("cursor")
        return (entries if isinstance(entries, list) else []), (next_cursor if isinstance(next_cursor, str) else None)

    def _parse(self, entry: dict[str, Any], brand_did: str) -> Item | None:
        return parse_notification(entry, brand_did=brand_did)


class SearchFeed(_WindowFeed):
    """Posts matching one keyword (app.bsky.feed.searchPosts, sort=latest); the brand's own are skipped."""

    def __init__(self, *, client: BlueskyClient, query: str, overlap: float = 300.0, max_pages: int = 4,
                 page_size: int = 25, started: datetime | None = None) -> None:
        super().__init__(client=client, overlap=overlap, max_pages=max_pages, page_size=page_size, started=started)
        self.query = query
        self.key = search_key(query)

    async def _page(self, api_cursor: str | None) -> tuple[list[Any], str | None]:
        page = await self._client.search_posts(q=self.query, cursor=api_cursor, limit=self._page_size)
        entries = page.get("posts")
        next_cursor = page.get("cursor")
        return (entries if isinstance(entries, list) else []), (next_cursor if isinstance(next_cursor, str) else None)

    def _parse(self, entry: dict[str, Any], brand_did: str) -> Item | None:
        return parse_post_view(entry, brand_did=brand_did)


# ---------------------------------------------------------------------------------------------- sender

class BlueskySender:
    """Replies in the customer's thread: correct root and parent strong refs, the customer's @handle first
    (a mention facet with byte offsets), and a record key derived from the idempotency key. Public
    statements are posts without `reply`, with the same record key protection."""

    platform = "bluesky"

    def __init__(self, *, client: BlueskyClient, max_graphemes: int = 300) -> None:
        self._client = client
        self.max_length = max_graphemes
        self.announce_limit = max_graphemes

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        handle = str(reply_to.get("handle") or "")
        if not handle or handle_pattern(handle).match(text):
            return text
        return f"@{handle} {text}"

    def _too_long(self, text: str, what: str, prefix: str = "") -> str | None:
        count = grapheme_count(text)
        if count > self.max_length:
            return (f"Bluesky allows {self.max_length} characters per post{prefix}; this {what} has {count}. "
                    f"Please shorten it by {count - self.max_length}.")
        size = utf8_length(text)
        if size > MAX_BYTES:
            return f"Bluesky allows {MAX_BYTES} bytes per post; this {what} takes {size}. Please shorten it."
        return None

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        composed = self.compose(reply_to=reply_to, text=text)
        prefix = " (including the @handle the reply starts with)" if composed != text else ""
        return self._too_long(composed, "reply", prefix)

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        return ReplyRule()

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        parent = strong_ref({"uri": reply_to.get("uri"), "cid": reply_to.get("cid")})
        if parent is None:
            raise SendError("Bluesky: the customer's post (uri and cid) is unknown, so there is nothing to reply to",
                            permanent=True)
        root = strong_ref(reply_to.get("root")) or parent
        problem = self.check_text(reply_to=reply_to, text=text)
        if problem:
            raise SendError(problem, permanent=True)
        composed = self.compose(reply_to=reply_to, text=text)
        handle, did = str(reply_to.get("handle") or ""), str(reply_to.get("did") or "")
        record: dict[str, Any] = {"$type": POST, "text": composed, "createdAt": format_time(datetime.now(UTC)),
                                  "reply": {"root": root, "parent": parent}}
        found = facets(composed, mentions={handle: did} if handle and did.startswith("did:") else {})
        if found:
            record["facets"] = found
        return await self._publish(record, idempotency_key)

    async def announce(self, *, text: str, idempotency_key: str) -> Delivery:
        """A post of the brand's own: no `reply`, no @handle; links made clickable with facets."""
        problem = self._too_long(text, "statement")
        if problem:
            raise SendError(problem, permanent=True)
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": format_time(datetime.now(UTC))}
        found = facets(text, mentions={})
        if found:
            record["facets"] = found
        return await self._publish(record, idempotency_key)

    async def _publish(self, record: dict[str, Any], idempotency_key: str) -> Delivery:
        """createRecord under the record key of `idempotency_key`, so that a repeated attempt finds the post
        of the earlier one instead of making a second."""
        rkey = record_key(idempotency_key)
        session = await self._client.session()
        try:
            answer = await self._client.create_record(collection=POST, record=record, rkey=rkey)
            uri = str(answer["uri"])
        except CredentialsError:
            raise
        except SendError as error:
            if error.retry_after is not None:
                raise  # rate limited: nothing was written
            uri = await self._already_posted(session.did, rkey, error)
        return Delivery(platform_id=uri, url=post_url(session.handle, uri))

    async def _already_posted(self, did: str, rkey: str, error: SendError) -> str:
        """After a failed or unanswered createRecord: the post of an earlier attempt with this record key (a
        repeated key is refused), or the original error when there is none."""
        try:
            existing = await self._client.get_record(repo=did, collection=POST, rkey=rkey)
        except CredentialsError:
            raise
        except SendError:
            raise error from None
        if existing is None:
            raise error
        log.info("Bluesky: the post with record key %s was made by an earlier attempt", rkey)
        return str(existing.get("uri") or f"at://{did}/{POST}/{rkey}")


# ---------------------------------------------------------------------------------------------- check and make

def _checker(client: BlueskyClient, config: BlueskySource) -> Callable[[], Awaitable[list[Check]]]:
    env_name = config.app_password_env

    async def check() -> list[Check]:
        try:
            session = await client.session()
        except CredentialsError as error:
            return [Check("Bluesky sign-in", False, error.message,
                          fix=f"create an app password (Settings → Privacy and security → App passwords) for "
                              f"{config.handle}, set it in {env_name}")]
        except SendError as error:
            return [Check("Bluesky sign-in", False, error.message,
                          fix=f"sources.bluesky.service ({config.service}) must be reachable: https://bsky.social "
                              "or the account's own PDS")]
        rows = [Check("Bluesky sign-in", True, f"signed in as @{session.handle} ({session.did})")]
        try:
            profile = await client.get_profile(session.did)
            followers = profile.get("followersCount")
            name = profile.get("displayName") or profile.get("handle") or session.handle
            detail = f"{name} (@{profile.get('handle') or session.handle})" + (
                f", {followers} followers" if isinstance(followers, int) else "")
            rows.append(Check("Bluesky profile", True, detail))
        except SendError as error:
            rows.append(Check("Bluesky profile", False, error.message,
                              fix="the app password's account must have a Bluesky profile"))
        try:
            await client.list_notifications(limit=1)
            rows.append(Check("Bluesky notifications", True, "mentions, replies and quotes are readable"))
        except SendError as error:
            rows.append(Check("Bluesky notifications", False, error.message,
                              fix="an app password with default permissions can read notifications; "
                                  "check the service URL"))
        for query in _keywords(config):
            try:
                await client.search_posts(q=query, limit=1)
                rows.append(Check(f"Bluesky search {query!r}", True, "search works"))
            except SendError as error:
                rows.append(Check(f"Bluesky search {query!r}", False, error.message,
                                  fix="check the keyword in sources.bluesky.keywords"))
        return rows

    return check


def _keywords(config: BlueskySource) -> list[str]:
    seen: list[str] = []
    for keyword in config.keywords:
        keyword = keyword.strip()
        if keyword and keyword not in seen:
            seen.append(keyword)
    return seen


def make(*, config: BlueskySource, env: Mapping[str, str], http: httpx.AsyncClient,
         store: TokenStore | None = None) -> SourceParts:
    password = secret(env, config.app_password_env, "sources.bluesky.app_password_env")
    client = BlueskyClient(http=http, service=config.service, identifier=config.handle, password=password,
                           password_env=config.app_password_env)
    feeds: list[Feed] = [NotificationsFeed(client=client)]
    feeds += [SearchFeed(client=client, query=query) for query in _keywords(config)]
    return SourceParts(name="bluesky", senders={VIA: BlueskySender(client=client, max_graphemes=config.max_graphemes)},
                       feeds=feeds, every=config.poll_every, spread=0.5 if len(feeds) > 1 else 0.0,
                       check=_checker(client, config))
