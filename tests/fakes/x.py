"""In-process fake X API v2 (and Account Activity deliveries) speaking the documented / recorded wire format.

Shapes follow tests/fixtures/x/*.json (X's docs and tweepy's recordings of the real API):
- GET /2/users/me, GET /2/users/:id/mentions, GET /2/tweets/search/recent, GET /2/dm_events answer
  `{"data": [...], "includes": {"users": [...]}, "meta": {...}}`, newest first, only the fields asked for
  (`tweet.fields`, `user.fields`, `dm_event.fields`; unknown values → 400 like X), authors only with
  `expansions=author_id` / `sender_id`; `since_id` / `until_id` exclusive; pages by `pagination_token`
  (recent search: `next_token`), `meta.next_token` while more is left; the mentions timeline reaches the
  newest 800 posts, recent search 7 days (an older `since_id` → 400, as on X).
- POST /2/tweets (`{text, reply: {in_reply_to_tweet_id}}`) → 201 `{"data": {"id", "text", ...}}`; duplicate
  text → 403; a reply to a post whose author did not mention or quote the brand → 403 (self-serve rule).
- POST /2/dm_conversations/with/:participant_id/messages → 201 `{"data": {"dm_conversation_id", "dm_event_id"}}`.
- Every authenticated answer has `x-rate-limit-limit/-remaining/-reset` (Unix seconds) per endpoint and
  token; a spent budget answers 429. Tokens are revocable (→ 401); the app-only bearer token is refused
  (403 Unsupported Authentication) where X wants a user token.
- POST /2/oauth2/token (`grant_type=refresh_token`, form-encoded; a confidential client authenticates with
  HTTP Basic client id:secret, a public one sends `client_id` in the form) → `{"token_type": "bearer",
  "expires_in", "access_token", "scope", "refresh_token"}`: a new access token that expires after
  `access_lifetime` seconds (or on demand: `expire_user_tokens`), and a NEW refresh token: X rotates, the
  one used stops working (400 `invalid_request` "Value passed for the token was invalid.").
Post text is stored as X stores it: links shortened to t.co (with `entities.urls`), `& < >` escaped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import random
import re
import string
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from tests.fakes.mastodon import FakeHTTPServer, Request, Response

Json = dict[str, Any]
T = TypeVar("T")

TWITTER_EPOCH_MS = 1288834974657
BRAND_ID = "2244994945"
WINDOW_S = 900.0
MENTIONS_REACH = 800
SEARCH_REACH_S = 7 * 24 * 3600
MAX_POST = 280
MAX_DM = 10_000
SCOPES = "tweet.read tweet.write users.read dm.read dm.write offline.access"
ACCESS_LIFETIME_S = 7200
"""X's OAuth 2.0 user access tokens last two hours."""

TWEET_FIELDS = {"attachments", "author_id", "card_uri", "context_annotations", "conversation_id", "created_at",
                "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
                "non_public_metrics", "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics",
                "public_metrics", "referenced_tweets", "reply_settings", "scopes", "source", "text", "withheld"}
USER_FIELDS = {"affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
               "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url",
               "protected", "public_metrics", "receives_your_dm", "subscription_type", "url", "username",
               "verified", "verified_type", "withheld"}
TWEET_EXPANSIONS = {"article.cover_media", "article.media_entities", "attachments.media_keys",
                    "attachments.media_source_tweet", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
                    "entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "entities.note.mentions.username",
                    "referenced_tweets.id", "referenced_tweets.id.attachments.media_keys",
                    "referenced_tweets.id.author_id"}
DM_FIELDS = {"attachments", "cashtags", "created_at", "dm_conversation_id", "entities", "event_type", "hashtags", "id",
             "mentions", "participant_ids", "referenced_tweets", "sender_id", "text", "urls"}
DM_EXPANSIONS = {"attachments.media_keys", "participant_ids", "referenced_tweets.id", "sender_id"}
DM_EVENT_TYPES = {"MessageCreate", "ParticipantsJoin", "ParticipantsLeave"}

DEFAULT_LIMITS = {  # per 15 minutes, per token kind (X's published per-user / per-app limits)
    ("users/me", "user"): 75,
    ("users/mentions", "user"): 180, ("users/mentions", "app"): 450,
    ("search/recent", "user"): 300, ("search/recent", "app"): 450,
    ("dm_events", "user"): 300,
    ("tweets:create", "user"): 100,
    ("dm_conversations:create", "user"): 200,
}

_URL = re.compile(r"https?://[^\s<>\"]+")
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")
_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_INVALID = "https://api.twitter.com/2/problems/invalid-request"
_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


def snowflake(ms: int, sequence: int = 0) -> int:
    return ((ms - TWITTER_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)


def snowflake_ms(value: str | int) -> int:
    return (int(value) >> 22) + TWITTER_EPOCH_MS


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def v1_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")


def _copy(value: T) -> T:
    return cast(T, json.loads(json.dumps(value)))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def x_length(text: str) -> int:
    """X's weighted length, counted here independently of the bot's code: NFC; links 23; an emoji with its
    modifiers, keycap or ZWJ partners 2; other characters 1 in the light ranges, else 2."""
    text = _URL.sub("\x00", unicodedata.normalize("NFC", text))
    total, i = 0, 0
    while i < len(text):
        char = text[i]
        if char == "\x00":
            total, i = total + 23, i + 1
            continue
        j = i + 1
        emoji = ord(char) >= 0x1F000
        while j < len(text):
            cp = ord(text[j])
            if cp in (0xFE0F, 0x20E3) or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
                emoji, j = True, j + 1
            elif cp == 0x200D and j + 1 < len(text) and ord(text[j + 1]) >= 0x2190:
                emoji, j = True, j + 2
            else:
                break
        if emoji:
            total += 2
        else:
            total += sum(1 if any(lo <= ord(c) <= hi for lo, hi in _LIGHT) else 2 for c in text[i:j])
        i = j
    return total


def _invalid(name: str, value: str, message: str) -> Response:
    return Response(400, {"errors": [{"parameters": {name: [value]}, "message": message}],
                          "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                          "type": _INVALID})


def _forbidden(detail: str) -> Response:
    return Response(403, {"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403})


def _failure_body(status: int) -> Json:
    if status == 403:  # what X answers when the app's access level does not include the endpoint
        return {"client_id": "12345678", "title": "Client Forbidden", "reason": "client-not-enrolled",
                "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens "
                          "from a Twitter developer App that is attached to a Project. You can create a project via "
                          "the developer portal.",
                "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                "required_enrollment": "Appropriate Level of API Access",
                "type": "https://api.twitter.com/2/problems/client-forbidden"}
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return {"title": titles.get(status, "Error"), "detail": titles.get(status, "Something went wrong."),
            "type": "about:blank", "status": status}


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    reset_in: float
    after: bool = False
    """Do the work first, then answer `status` (the answer was lost: X did it, the caller cannot know)."""


# ------------------------------------------------------------------------------------------ search query

class _Query:
    """X's query grammar, the part the bot uses: terms, "phrases", #tags, @users, (a OR b), -negation,
    from:, to:, is:retweet, is:reply, is:quote; juxtaposition is AND."""

    def __init__(self, text: str) -> None:
        self.tokens = re.findall(r'\(|\)|-?"[^"]*"|-?[^\s()]+', text)
        self.pos = 0
        self.tree = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected '{self.tokens[self.pos]}'")

    def _or(self) -> Any:
        parts = [self._and()]
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "OR":
            self.pos += 1
            parts.append(self._and())
        return ("or", parts)

    def _and(self) -> Any:
        parts = []
        while self.pos < len(self.tokens) and self.tokens[self.pos] not in (")", "OR"):
            token = self.tokens[self.pos]
            self.pos += 1
            if token == "(":
                parts.append(self._or())
                if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                    raise ValueError("missing ')'")
                self.pos += 1
            else:
                parts.append(("term", token))
        if not parts:
            raise ValueError("empty group")
        return ("and", parts)

    def matches(self, tweet: Json, author: Json) -> bool:
        return self._eval(self.tree, tweet, author)

    def _eval(self, node: Any, tweet: Json, author: Json) -> bool:
        kind, value = node
        if kind == "or":
            return any(self._eval(n, tweet, author) for n in value)
        if kind == "and":
            return all(self._eval(n, tweet, author) for n in value)
        negated = value.startswith("-")
        term = value[1:] if negated else value
        return bool(self._term(term, tweet, author) != negated)

    @staticmethod
    def _term(term: str, tweet: Json, author: Json) -> bool:
        text = tweet["text"].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").lower()
        references = {r["type"] for r in tweet.get("referenced_tweets", [])}
        lowered = term.lower()
        if lowered.startswith("from:"):
            return lowered[5:] in (tweet["author_id"], author["username"].lower())
        if lowered.startswith("is:"):
            return {"retweet": "retweeted", "reply": "replied_to", "quote": "quoted"}.get(lowered[3:]) in references
        if term.startswith('"'):
            return re.search(r"(?<!\w)" + re.escape(lowered.strip('"')) + r"(?!\w)", text) is not None
        if term.startswith("#"):
            return lowered[1:] in [t.lower() for t in _HASHTAG.findall(text)]
        if term.startswith("@"):
            return lowered[1:] in [m.lower() for m in _MENTION.findall(text)]
        return lowered in re.findall(r"\w+", text)


# ------------------------------------------------------------------------------------------ the fake

class FakeX(FakeHTTPServer):
    def __init__(self, *, user_token: str = "x-user-token", bearer_token: str = "x-bearer-token",
                 brand_username: str = "acme", brand_name: str = "Acme", brand_id: str = BRAND_ID,
                 consumer_secret: str = "x-consumer-secret", self_serve: bool = True,
                 client_id: str = "x-client-id", client_secret: str | None = "x-client-secret",
                 refresh_token: str = "x-refresh-token") -> None:
        super().__init__()
        self.user_token, self.bearer_token = user_token, bearer_token
        self.user_tokens = {user_token}
        self.bearer_tokens = {bearer_token}
        self.consumer_secret = consumer_secret
        self.client_id, self.client_secret = client_id, client_secret
        """The app's OAuth 2.0 client; client_secret None: a public client (client_id in the form)."""
        self.refresh_token = refresh_token
        """The refresh token the brand's first authorisation gave (valid until used once)."""
        self.refresh_tokens = {refresh_token}
        self.access_lifetime = ACCESS_LIFETIME_S
        """`expires_in` of the access tokens the token endpoint issues (they stop working after it)."""
        self._expiry: dict[str, float] = {}
        self._token_requests: list[Json] = []
        self.self_serve = self_serve
        """Self-serve plans may reply only to posts whose author mentioned or quoted the brand."""
        self._last_id = 0
        self._users: dict[str, Json] = {}
        self._tweets: dict[str, Json] = {}
        self._dm_events: list[Json] = []
        self._page_tokens: dict[str, tuple[str, int]] = {}
        self._requests: list[Json] = []
        self._sent: list[Json] = []
        self._limits: dict[tuple[str, str], list[float]] = {}
        self._failures: list[_Failure] = []
        self.brand_id = brand_id
        self._add_user(brand_username, brand_name, 5000, user_id=brand_id)

    def env(self) -> dict[str, str]:
        """The bot's environment for this fake (the default variable names of `sources.x`, and those of
        `refresh_settings()`)."""
        return {"X_USER_TOKEN": self.user_token, "X_BEARER_TOKEN": self.bearer_token,
                "X_CONSUMER_SECRET": self.consumer_secret, "X_REFRESH_TOKEN": self.refresh_token,
                "X_CLIENT_ID": self.client_id,
                **({"X_CLIENT_SECRET": self.client_secret} if self.client_secret is not None else {})}

    def refresh_settings(self) -> Json:
        """The `sources.x` keys that make the user token renew itself (variables as in `env()`)."""
        return {"refresh_token_env": "X_REFRESH_TOKEN", "client_id_env": "X_CLIENT_ID",
                "client_secret_env": "X_CLIENT_SECRET" if self.client_secret is not None else None}

    def source(self, **overrides: Any) -> Json:
        """A `sources.x` mapping pointing the bot at this fake."""
        return {"user_id": self.brand_id, "base_url": self.url, "poll_every": "0.3s", **overrides}

    def polled(self) -> bool:
        """The bot has read the mentions timeline at least once (its cursor is set)."""
        with self._lock:
            return any(r["path"].endswith("/mentions") and r["status"] == 200 for r in self._requests)

    # ---- test-side API: the world
    def add_user(self, username: str, name: str = "", followers: int = 10, *, accepts_dms: bool = True) -> Json:
        with self._lock:
            return _copy(self._public_user(self._add_user(username, name, followers, accepts_dms=accepts_dms)))

    def add_post(self, username: str, text: str, *, name: str = "", followers: int | None = None,
                 in_reply_to: str | None = None, quote_of: str | None = None) -> Json:
        """A post by `username` (created if new) as X stores it; returns its full v2 object."""
        with self._lock:
            user = self._user_by_name(username) or self._add_user(username, name, followers or 10)
            if name:
                user["name"] = name
            if followers is not None:
                user["public_metrics"]["followers_count"] = followers
            return _copy(self._new_post(user, text, in_reply_to=in_reply_to, quote_of=quote_of))

    def mention(self, username: str, text: str, **kwargs: Any) -> Json:
        """A post mentioning the brand (its @username is put in front unless the text has it)."""
        brand = self._users[self.brand_id]["username"]
        if f"@{brand}".lower() not in text.lower():
            text = f"@{brand} {text}"
        return self.add_post(username, text, **kwargs)

    def add_repost(self, username: str, post_id: str) -> Json:
        with self._lock:
            user = self._user_by_name(username) or self._add_user(username, "", 10)
            original = self._tweets[post_id]
            source = self._users[original["author_id"]]["username"]
            post = self._new_post(user, f"RT @{source}: " + self._raw_text(original), in_reply_to=None,
                                  quote_of=None)
            post["referenced_tweets"] = [{"type": "retweeted", "id": post_id}]
            return _copy(post)

    def add_dm(self, username: str, text: str, *, name: str = "", followers: int | None = None,
               conversation_id: str | None = None) -> Json:
        """A Direct Message from `username` to the brand (a group conversation when `conversation_id`)."""
        with self._lock:
            user = self._user_by_name(username) or self._add_user(username, name, followers or 10)
            if followers is not None:
                user["public_metrics"]["followers_count"] = followers
            return _copy(self._new_dm(user["id"], text, conversation_id=conversation_id))

    def add_dm_event(self, event_type: str, sender: str, participant_ids: list[str]) -> Json:
        with self._lock:
            event_id = self._new_id()
            event = {"id": event_id, "event_type": event_type, "sender_id": sender,
                     "participant_ids": participant_ids, "created_at": iso(snowflake_ms(event_id)),
                     "dm_conversation_id": event_id}
            self._dm_events.append(event)
            return _copy(event)

    def customer_says(self, text: str, *, name: str, handle: str) -> tuple[str, bytes, dict[str, str]] | None:
        """A new customer post mentioning the brand; the bot finds it by polling (None)."""
        self.mention(handle.lstrip("@"), text, name=name)
        return None

    # ---- test-side API: what happened
    def sent(self) -> list[str]:
        """Texts the brand posted or DMed through the API, in order (as the bot sent them)."""
        with self._lock:
            return [s["text"] for s in self._sent]

    def sent_requests(self) -> list[Json]:
        """Every accepted POST: {kind ("post"/"dm"), text, in_reply_to | participant_id, id}."""
        with self._lock:
            return _copy(self._sent)

    def posts_by_brand(self) -> list[Json]:
        with self._lock:
            return _copy([t for t in self._tweets.values() if t["author_id"] == self.brand_id])

    def dms_by_brand(self) -> list[Json]:
        with self._lock:
            return _copy([e for e in self._dm_events if e.get("sender_id") == self.brand_id])

    def get_post(self, post_id: str) -> Json | None:
        with self._lock:
            return _copy(self._tweets.get(post_id))

    def requests(self, path_prefix: str = "") -> list[Json]:
        """Every request: {method, path, query (lists), auth ("user"/"app"/None), body, status}."""
        with self._lock:
            return _copy([r for r in self._requests if r["path"].startswith(path_prefix)])

    # ---- test-side API: trouble
    def revoke_user_token(self) -> None:
        with self._lock:
            self.user_tokens.clear()

    def expire_user_tokens(self) -> None:
        """Every user access token issued so far has expired (their two hours are up): 401 from now on.
        Refresh tokens keep working."""
        with self._lock:
            self.user_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token stops working (the brand revoked the app, or they were used)."""
        with self._lock:
            self.refresh_tokens.clear()

    def authorize(self) -> Json:
        """The brand authorises the app again (Authorization Code with PKCE, offline.access): the token
        endpoint's answer to the code exchange, with a new access and refresh token."""
        with self._lock:
            return self._issue()

    def token_requests(self) -> list[Json]:
        """Every POST /2/oauth2/token: {form (dict), basic_client_id (from HTTP Basic, or None), status,
        issued (the answer's access_token, or None), error}."""
        with self._lock:
            return _copy(self._token_requests)

    def renewals(self) -> int:
        """How many refresh grants X granted."""
        with self._lock:
            return sum(1 for r in self._token_requests if r["status"] == 200)

    def revoke_bearer_token(self) -> None:
        with self._lock:
            self.bearer_tokens.clear()

    def rate_limit(self, endpoint: str, *, remaining: int, reset_in: float, limit: int | None = None,
                   auth: str = "user") -> None:
        """`endpoint`: users/me, users/mentions, search/recent, dm_events, tweets:create, dm_conversations:create."""
        with self._lock:
            full = limit if limit is not None else DEFAULT_LIMITS[(endpoint, auth)]
            self._limits[(endpoint, auth)] = [float(full), float(remaining), time.time() + reset_in]

    def fail_next(self, path_prefix: str, status: int = 429, times: int = 1, reset_in: float = 1.0) -> None:
        """The next `times` authenticated requests under `path_prefix` answer `status` (429: budget spent)."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, times, reset_in))

    def lose_next_answer(self, path_prefix: str, status: int = 500, times: int = 1) -> None:
        """The next `times` requests under `path_prefix` take effect, but answer `status` (e.g. a timeout
        at X's edge after the post was made)."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, times, 0.0, after=True))

    # ---- test-side API: Account Activity deliveries
    def activity_for_post(self, post_id: str, *, user_has_blocked: bool | None = None) -> Json:
        """The Account Activity body X would POST for this post (v1.1 post object)."""
        with self._lock:
            body: Json = {"for_user_id": self.brand_id}
            if user_has_blocked is not None:
                body["user_has_blocked"] = "true" if user_has_blocked else "false"
            body["tweet_create_events"] = [self._v1_tweet(self._tweets[post_id])]
            return _copy(body)

    def activity_for_dm(self, event_id: str) -> Json:
        with self._lock:
            event = next(e for e in self._dm_events if e["id"] == event_id)
            sender = self._users[event["sender_id"]]
            recipient = self.brand_id if sender["id"] != self.brand_id else event["dm_conversation_id"].replace(
                self.brand_id, "").strip("-")
            entities = {"hashtags": [], "symbols": [], "user_mentions": [],
                        "urls": [{k: u[k] for k in ("url", "expanded_url", "display_url")} | {"indices": [u["start"],
                                 u["end"]]} for u in event.get("urls", [])]}
            v1_event = {"type": "message_create", "id": event["id"],
                        "created_timestamp": str(snowflake_ms(event["id"])),
                        "message_create": {"target": {"recipient_id": recipient}, "sender_id": sender["id"],
                                           "message_data": {"text": event["text"], "entities": entities}}}
            users = {uid: self._v1_user(self._users[uid]) for uid in {sender["id"], recipient} if uid in self._users}
            return _copy({"for_user_id": self.brand_id, "direct_message_events": [v1_event], "users": users})

    def signed(self, body: Json | bytes, *, secret: str | None = None) -> tuple[str, bytes, dict[str, str]]:
        """(path, raw body, headers) of an Account Activity POST signed like X signs it."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        digest = hmac.new((secret or self.consumer_secret).encode(), raw, hashlib.sha256).digest()
        return "/webhooks/x", raw, {"content-type": "application/json",
                                    "x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode()}

    def crc_response(self, crc_token: str) -> str:
        digest = hmac.new(self.consumer_secret.encode(), crc_token.encode(), hashlib.sha256).digest()
        return "sha256=" + base64.b64encode(digest).decode()

    # ---- model
    def _new_id(self) -> str:
        ms = int(time.time() * 1000)
        value = max(snowflake(ms, random.randrange(1 << 12)), self._last_id + 1)
        self._last_id = value
        return str(value)

    def _add_user(self, username: str, name: str, followers: int, *, user_id: str | None = None,
                  accepts_dms: bool = True) -> Json:
        existing = self._user_by_name(username)
        if existing is not None:
            existing["name"] = name or existing["name"]
            return existing
        uid = user_id or self._new_id()
        user = {"id": uid, "name": name or username.title(), "username": username,
                "created_at": iso(int(time.time() * 1000) - 86_400_000 * 400), "protected": False,
                "description": "", "verified": False,
                "public_metrics": {"followers_count": followers, "following_count": 10, "tweet_count": 0,
                                   "listed_count": 0, "like_count": 0, "media_count": 0},
                "_accepts_dms": accepts_dms}
        self._users[uid] = user
        return user

    def _user_by_name(self, username: str) -> Json | None:
        return next((u for u in self._users.values() if u["username"].lower() == username.lower()), None)

    @staticmethod
    def _public_user(user: Json) -> Json:
        return {k: v for k, v in user.items() if not k.startswith("_")}

    def _store_text(self, raw: str) -> tuple[str, Json]:
        """Text as X stores it (t.co links, & < > escaped) and its v2 entities."""
        links: list[tuple[str, str]] = []

        def shorten(match: re.Match[str]) -> str:
            short = "https://t.co/" + "".join(random.choices(string.ascii_letters + string.digits, k=10))
            links.append((short, match.group(0)))
            return short

        text = _escape(_URL.sub(shorten, raw))
        entities: Json = {}
        urls = []
        for short, full in links:
            start = text.index(short)
            display = re.sub(r"^https?://(www\.)?", "", full)
            urls.append({"start": start, "end": start + len(short), "url": short, "expanded_url": full,
                         "display_url": display if len(display) <= 26 else display[:25] + "…"})
        mentions = []
        for match in _MENTION.finditer(text):
            user = self._user_by_name(match.group(1))
            mention = {"start": match.start(), "end": match.end(), "username": match.group(1)}
            if user is not None:
                mention["id"] = user["id"]
            mentions.append(mention)
        hashtags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _HASHTAG.finditer(text)]
        for key, value in (("urls", urls), ("mentions", mentions), ("hashtags", hashtags)):
            if value:
                entities[key] = value
        return text, entities

    @staticmethod
    def _raw_text(tweet: Json) -> str:
        text = tweet.get("note_tweet", {}).get("text", tweet["text"])
        for url in tweet.get("entities", {}).get("urls", []):
            text = text.replace(url["url"], url["expanded_url"])
        return str(text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _new_post(self, user: Json, raw: str, *, in_reply_to: str | None, quote_of: str | None) -> Json:
        post_id = self._new_id()
        text, entities = self._store_text(raw)
        post: Json = {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id], "author_id": user["id"],
                      "created_at": iso(snowflake_ms(post_id)), "conversation_id": post_id, "lang": "en",
                      "possibly_sensitive": False, "reply_settings": "everyone", "source": "Twitter Web App",
                      "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0,
                                         "bookmark_count": 0, "impression_count": 0}}
        if entities:
            post["entities"] = entities
        if x_length(raw) > MAX_POST:  # a long post: `text` is cut, the whole text is in note_tweet
            post["note_tweet"] = {"text": text, **({"entities": entities} if entities else {})}
            post["text"] = text[:275] + "…"
        references = []
        if in_reply_to is not None:
            parent = self._tweets[in_reply_to]
            post["conversation_id"] = parent["conversation_id"]
            post["in_reply_to_user_id"] = parent["author_id"]
            references.append({"type": "replied_to", "id": in_reply_to})
            parent["public_metrics"]["reply_count"] += 1
        if quote_of is not None:
            references.append({"type": "quoted", "id": quote_of})
        if references:
            post["referenced_tweets"] = references
        user["public_metrics"]["tweet_count"] += 1
        self._tweets[post_id] = post
        return post

    def _new_dm(self, sender: str, raw: str, *, conversation_id: str | None = None,
                recipient: str | None = None) -> Json:
        event_id = self._new_id()
        other = recipient or self.brand_id
        low, high = sorted([sender, other], key=int)
        text, entities = self._store_text(raw)
        event: Json = {"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
                       "created_at": iso(snowflake_ms(event_id)),
                       "dm_conversation_id": conversation_id or f"{low}-{high}"}
        if entities.get("urls"):
            event["urls"] = entities["urls"]
        self._dm_events.append(event)
        return event

    def _v1_user(self, user: Json) -> Json:
        metrics = user["public_metrics"]
        return {"id": int(user["id"]), "id_str": user["id"], "name": user["name"], "screen_name": user["username"],
                "location": None, "description": user["description"], "protected": False, "verified": False,
                "followers_count": metrics["followers_count"], "friends_count": metrics["following_count"],
                "statuses_count": metrics["tweet_count"], "created_at": v1_time(snowflake_ms(user["id"]))
                if len(user["id"]) > 15 else "Sat Dec 14 04:35:55 +0000 2013"}

    def _v1_tweet(self, tweet: Json) -> Json:
        full = tweet.get("note_tweet", {}).get("text", tweet["text"])
        entities = tweet.get("entities", {})
        v1_entities = {
            "hashtags": [{"text": h["tag"], "indices": [h["start"], h["end"]]} for h in entities.get("hashtags", [])],
            "urls": [{"url": u["url"], "expanded_url": u["expanded_url"], "display_url": u["display_url"],
                      "indices": [u["start"], u["end"]]} for u in entities.get("urls", [])],
            "user_mentions": [{"screen_name": m["username"], "name": self._users[m["id"]]["name"], "id": int(m["id"]),
                               "id_str": m["id"], "indices": [m["start"], m["end"]]}
                              for m in entities.get("mentions", []) if "id" in m],
            "symbols": []}
        parent = next((r["id"] for r in tweet.get("referenced_tweets", []) if r["type"] == "replied_to"), None)
        quoted = next((r["id"] for r in tweet.get("referenced_tweets", []) if r["type"] == "quoted"), None)
        truncated = len(full) > 140
        v1: Json = {
            "created_at": v1_time(snowflake_ms(tweet["id"])), "id": int(tweet["id"]), "id_str": tweet["id"],
            "text": full[:139] + "…" if truncated else full, "source": '<a href="https://mobile.twitter.com" '
            'rel="nofollow">Twitter Web App</a>', "truncated": truncated,
            "in_reply_to_status_id": int(parent) if parent else None, "in_reply_to_status_id_str": parent,
            "in_reply_to_user_id": int(tweet["in_reply_to_user_id"]) if parent else None,
            "in_reply_to_user_id_str": tweet.get("in_reply_to_user_id") if parent else None,
            "in_reply_to_screen_name": self._users[tweet["in_reply_to_user_id"]]["username"] if parent else None,
            "user": self._v1_user(self._users[tweet["author_id"]]), "geo": None, "coordinates": None, "place": None,
            "contributors": None, "is_quote_status": quoted is not None, "quote_count": 0, "reply_count": 0,
            "retweet_count": 0, "favorite_count": 0, "entities": v1_entities, "favorited": False,
            "retweeted": False, "filter_level": "low", "lang": "en", "timestamp_ms": str(snowflake_ms(tweet["id"])),
        }
        if truncated:
            v1["extended_tweet"] = {"full_text": full, "display_text_range": [0, len(full)], "entities": v1_entities}
        if quoted and quoted in self._tweets:
            v1["quoted_status_id_str"] = quoted
            v1["quoted_status"] = self._v1_tweet(self._tweets[quoted])
        if any(r["type"] == "retweeted" for r in tweet.get("referenced_tweets", [])):
            original = next(r["id"] for r in tweet["referenced_tweets"] if r["type"] == "retweeted")
            v1["retweeted_status"] = self._v1_tweet(self._tweets[original])
        return v1

    # ---- HTTP
    def handle(self, req: Request) -> Response:
        auth = self._auth(req)
        record: Json = {"method": req.method, "path": req.path, "query": req.query, "auth": auth, "body": None,
                        "status": None}
        if req.body:
            try:
                record["body"] = json.loads(req.body)
            except ValueError:
                record["body"] = req.body.decode(errors="replace")
        resp = self._route(req, auth)
        record["status"] = resp.status
        self._requests.append(record)
        return resp

    def _auth(self, req: Request) -> str | None:
        header = req.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token in self.user_tokens and time.time() < self._expiry.get(token, float("inf")):
            return "user"
        if token in self.bearer_tokens:
            return "app"
        return None

    def _route(self, req: Request, auth: str | None) -> Response:
        path = req.path.rstrip("/")
        if path == "/2/oauth2/token" and req.method == "POST":
            return self._oauth_token(req)
        routes: list[tuple[str, str, str, Callable[..., Response], tuple[str, ...]]] = [
            ("GET", r"/2/users/me", "users/me", self._me, ("user",)),
            ("GET", r"/2/users/(\d+)/mentions", "users/mentions", self._mentions, ("user", "app")),
            ("GET", r"/2/tweets/search/recent", "search/recent", self._search, ("user", "app")),
            ("GET", r"/2/dm_events", "dm_events", self._dm_list, ("user",)),
            ("POST", r"/2/tweets", "tweets:create", self._create_post, ("user",)),
            ("POST", r"/2/dm_conversations/with/(\d+)/messages", "dm_conversations:create", self._create_dm,
             ("user",)),
        ]
        for method, pattern, endpoint, handler, allowed in routes:
            match = re.fullmatch(pattern, path)
            if match is None or method != req.method:
                continue
            if auth is None:
                return Response(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                      "detail": "Unauthorized"})
            if auth not in allowed:
                return Response(403, {
                    "title": "Unsupported Authentication", "status": 403,
                    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                              "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                    "type": "https://api.twitter.com/2/problems/unsupported-authentication"})
            return self._limited(req, endpoint, auth, functools.partial(handler, req, *match.groups()))
        return Response(404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]})

    def _limited(self, req: Request, endpoint: str, auth: str, answer: Callable[[], Response]) -> Response:
        now = time.time()
        state = self._limits.get((endpoint, auth))
        if state is None or now >= state[2]:
            full = float(DEFAULT_LIMITS.get((endpoint, auth), 300))
            state = self._limits[(endpoint, auth)] = [full, full, now + WINDOW_S]
        remaining = state[1]
        for failure in self._failures:
            if failure.times > 0 and req.path.startswith(failure.prefix):
                failure.times -= 1
                if failure.after:
                    answer()
                if failure.status == 429:
                    state[1], state[2] = 0.0, now + failure.reset_in
                    return self._too_many(state)
                return Response(failure.status, _failure_body(failure.status), self._rate_headers(state))
        if remaining <= 0:
            return self._too_many(state)
        state[1] = remaining - 1
        resp = answer()
        resp.headers.update(self._rate_headers(state))
        return resp

    @staticmethod
    def _rate_headers(state: list[float]) -> dict[str, str]:
        return {"x-rate-limit-limit": str(int(state[0])), "x-rate-limit-remaining": str(int(state[1])),
                "x-rate-limit-reset": str(int(state[2] + 0.999))}

    def _too_many(self, state: list[float]) -> Response:
        return Response(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                              "status": 429}, self._rate_headers(state))

    # ---- field selection
    def _fields(self, req: Request, name: str, allowed: set[str]) -> tuple[list[str], Response | None]:
        raw = req.query.get(name, [""])[-1]
        values = [v for v in raw.split(",") if v] if raw else []
        for value in values:
            if value not in allowed:
                return [], _invalid(name, raw, f"The `{name}` query parameter value [{value}] is not one of "
                                               f"[{','.join(sorted(allowed))}]")
        return values, None

    def _tweet_view(self, tweet: Json, fields: list[str]) -> Json:
        view = {"id": tweet["id"], "text": tweet["text"], "edit_history_tweet_ids": tweet["edit_history_tweet_ids"]}
        for field in fields:
            if field in tweet:
                view[field] = tweet[field]
        return view

    def _user_view(self, user: Json, fields: list[str]) -> Json:
        view = {"id": user["id"], "name": user["name"], "username": user["username"]}
        for field in fields:
            if field in user:
                view[field] = user[field]
        return view

    def _number(self, req: Request, name: str, low: int, high: int, default: int) -> tuple[int, Response | None]:
        raw = req.query.get(name, [""])[-1]
        if not raw:
            return default, None
        if not raw.isdigit() or not low <= int(raw) <= high:
            return 0, _invalid(name, raw, f"The `{name}` query parameter value [{raw}] is not between {low} and "
                                          f"{high}")
        return int(raw), None

    def _id_param(self, req: Request, name: str) -> tuple[int | None, Response | None]:
        raw = req.query.get(name, [""])[-1]
        if not raw:
            return None, None
        if not raw.isdigit() or not 1 <= len(raw) <= 19:
            return None, _invalid(name, raw, f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$")
        return int(raw), None

    def _posts_page(self, req: Request, candidates: list[Json], *, token_names: tuple[str, ...],
                    low: int, high: int, reach: Callable[[list[Json]], list[Json]]) -> Response:
        tweet_fields, error = self._fields(req, "tweet.fields", TWEET_FIELDS)
        user_fields, error2 = self._fields(req, "user.fields", USER_FIELDS)
        expansions, error3 = self._fields(req, "expansions", TWEET_EXPANSIONS)
        max_results, error4 = self._number(req, "max_results", low, high, 10)
        since_id, error5 = self._id_param(req, "since_id")
        until_id, error6 = self._id_param(req, "until_id")
        for problem in (error, error2, error3, error4, error5, error6):
            if problem is not None:
                return problem
        selected = sorted(candidates, key=lambda t: int(t["id"]), reverse=True)
        selected = reach(selected)
        selected = [t for t in selected if (since_id is None or int(t["id"]) > since_id)
                    and (until_id is None or int(t["id"]) < until_id)]
        token = next((req.query[n][-1] for n in token_names if req.query.get(n)), None)
        previous = None
        if token is not None:
            if token not in self._page_tokens:
                return _invalid(token_names[0], token, f"The `{token_names[0]}` query parameter value [{token}] "
                                                       "is not valid")
            below = self._page_tokens[token][1]
            selected = [t for t in selected if int(t["id"]) < below]
            previous = self._token("previous", int(selected[0]["id"]) if selected else below)
        page, rest = selected[:max_results], selected[max_results:]
        body: Json = {}
        if page:
            body["data"] = [self._tweet_view(t, tweet_fields) for t in page]
            users: list[Json] = []
            for tweet in page:
                ids = []
                if "author_id" in expansions:
                    ids.append(tweet["author_id"])
                if "in_reply_to_user_id" in expansions and tweet.get("in_reply_to_user_id"):
                    ids.append(tweet["in_reply_to_user_id"])
                if "entities.mentions.username" in expansions:
                    ids += [m["id"] for m in tweet.get("entities", {}).get("mentions", []) if "id" in m]
                for uid in ids:
                    if uid in self._users and all(u["id"] != uid for u in users):
                        users.append(self._user_view(self._users[uid], user_fields))
            if users:
                body["includes"] = {"users": users}
        meta: Json = {"result_count": len(page)}
        if page:
            meta.update({"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]})
        if rest:
            meta["next_token"] = self._token("next", int(page[-1]["id"]))
        if previous and page:
            meta["previous_token"] = previous
        body["meta"] = meta
        return Response(200, body)

    def _token(self, kind: str, below: int) -> str:
        token = "".join(random.choices(string.ascii_lowercase + string.digits, k=45))
        self._page_tokens[token] = (kind, below)
        return token

    # ---- endpoints
    def _me(self, req: Request) -> Response:
        user_fields, error = self._fields(req, "user.fields", USER_FIELDS)
        if error is not None:
            return error
        return Response(200, {"data": self._user_view(self._users[self.brand_id], user_fields)})

    def _mentions(self, req: Request, user_id: str) -> Response:
        if user_id not in self._users:
            return Response(200, {"errors": [{"value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                                              "title": "Not Found Error", "resource_type": "user",
                                              "parameter": "id", "resource_id": user_id,
                                              "type": "https://api.twitter.com/2/problems/resource-not-found"}],
                                  "meta": {"result_count": 0}})
        candidates = [t for t in self._tweets.values()
                      if any(m.get("id") == user_id for m in t.get("entities", {}).get("mentions", []))]
        return self._posts_page(req, candidates, token_names=("pagination_token",), low=5, high=100,
                                reach=lambda posts: posts[:MENTIONS_REACH])

    def _search(self, req: Request) -> Response:
        query = req.query.get("query", [""])[-1]
        if not query:
            return _invalid("query", "", "The `query` query parameter can not be empty")
        if len(query) > 512:
            return _invalid("query", query, f"There were errors processing your request: Query is too long (max "
                                            f"length: 512, query length: {len(query)})")
        try:
            parsed = _Query(query)
        except ValueError as error:
            return _invalid("query", query, f"There were errors processing your request: {error}")
        since = req.query.get("since_id", [""])[-1]
        oldest = snowflake(int((time.time() - SEARCH_REACH_S) * 1000))
        if since.isdigit() and int(since) < oldest:
            return _invalid("since_id", since, f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id "
                                               f"created after {iso(snowflake_ms(oldest))}.")
        candidates = [t for t in self._tweets.values() if parsed.matches(t, self._users[t["author_id"]])]
        return self._posts_page(req, candidates, token_names=("next_token", "pagination_token"), low=10, high=100,
                                reach=lambda posts: [t for t in posts if int(t["id"]) >= oldest])

    def _dm_list(self, req: Request) -> Response:
        dm_fields, error = self._fields(req, "dm_event.fields", DM_FIELDS)
        user_fields, error2 = self._fields(req, "user.fields", USER_FIELDS)
        expansions, error3 = self._fields(req, "expansions", DM_EXPANSIONS)
        types, error4 = self._fields(req, "event_types", DM_EVENT_TYPES)
        max_results, error5 = self._number(req, "max_results", 1, 100, 100)
        for problem in (error, error2, error3, error4, error5):
            if problem is not None:
                return problem
        events = sorted(self._dm_events, key=lambda e: int(e["id"]), reverse=True)
        events = [e for e in events if not types or e["event_type"] in types]
        token = req.query.get("pagination_token", [""])[-1]
        if token:
            if token not in self._page_tokens:
                return _invalid("pagination_token", token, "The `pagination_token` query parameter value is not valid")
            events = [e for e in events if int(e["id"]) < self._page_tokens[token][1]]
        page, rest = events[:max_results], events[max_results:]
        body: Json = {}
        if page:
            views = []
            for event in page:
                view = {"id": event["id"], "event_type": event["event_type"]}
                if event["event_type"] == "MessageCreate":
                    view["text"] = event["text"]
                for field in dm_fields:
                    if field in event:
                        view[field] = event[field]
                views.append(view)
            body["data"] = views
            if "sender_id" in expansions:
                senders = list(dict.fromkeys(e["sender_id"] for e in page if e.get("sender_id") in self._users))
                if senders:
                    body["includes"] = {"users": [self._user_view(self._users[s], user_fields) for s in senders]}
        meta: Json = {"result_count": len(page)}
        if rest:
            meta["next_token"] = self._token("next", int(page[-1]["id"])).upper()[:24]
            self._page_tokens[meta["next_token"]] = ("next", int(page[-1]["id"]))
        body["meta"] = meta
        return Response(200, body)

    def _json_body(self, req: Request) -> Json | None:
        try:
            body = json.loads(req.body or b"")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _create_post(self, req: Request) -> Response:
        body = self._json_body(req)
        if body is None:
            return _invalid("body", "", "Request body is not valid JSON")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _invalid("text", str(text), "$.text: must not be empty")
        reply_to = str((body.get("reply") or {}).get("in_reply_to_tweet_id") or "")
        brand = self._users[self.brand_id]
        full = text
        if reply_to:
            parent = self._tweets.get(reply_to)
            if parent is None:
                return _forbidden("You attempted to reply to a Tweet that is deleted or not visible to you.")
            mentioned = any(m.get("id") == self.brand_id for m in parent.get("entities", {}).get("mentions", []))
            quoted = any(r["type"] == "quoted" and self._tweets.get(r["id"], {}).get("author_id") == self.brand_id
                         for r in parent.get("referenced_tweets", []))
            if self.self_serve and parent["author_id"] != self.brand_id and not (mentioned or quoted):
                return _forbidden("Reply to this conversation is not allowed because you have not been mentioned or "
                                  "otherwise engaged by the author of the post you are replying to.")
            names = [self._users[parent["author_id"]]["username"]] + [
                m["username"] for m in parent.get("entities", {}).get("mentions", []) if m.get("id") != self.brand_id]
            prefix = " ".join(f"@{n}" for n in dict.fromkeys(names) if n.lower() != brand["username"].lower())
            full = f"{prefix} {text}" if prefix else text
        if x_length(text) > MAX_POST:
            return _forbidden("Your Tweet text is too long. For more information on how X counts characters, "
                              "visit https://docs.x.com/fundamentals/counting-characters")
        stored, _ = self._store_text(full)
        if any(t["author_id"] == self.brand_id and t["text"] == stored for t in self._tweets.values()):
            return _forbidden("You are not allowed to create a Tweet with duplicate content.")
        post = self._new_post(brand, full, in_reply_to=reply_to or None, quote_of=None)
        self._sent.append({"kind": "post", "text": text, "in_reply_to": reply_to or None, "id": post["id"]})
        return Response(201, {"data": {"edit_history_tweet_ids": [post["id"]], "id": post["id"],
                                       "text": post["text"]}})

    def _create_dm(self, req: Request, participant_id: str) -> Response:
        body = self._json_body(req)
        if body is None:
            return _invalid("body", "", "Request body is not valid JSON")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _invalid("text", str(text), "$.text: must not be empty")
        if len(text) > MAX_DM:
            return _invalid("text", text[:20], f"$.text: length must be at most {MAX_DM}")
        user = self._users.get(participant_id)
        if user is None or participant_id == self.brand_id:
            return _invalid("participant_id", participant_id, f"Could not find user with id: [{participant_id}].")
        if not user["_accepts_dms"]:
            return _forbidden("You cannot send messages to this user.")
        event = self._new_dm(self.brand_id, text, recipient=participant_id)
        self._sent.append({"kind": "dm", "text": text, "participant_id": participant_id, "id": event["id"]})
        return Response(201, {"data": {"dm_conversation_id": event["dm_conversation_id"],
                                       "dm_event_id": event["id"]}})

    # ---- OAuth 2.0 token endpoint
    def _issue(self) -> Json:
        access = "".join(random.choices(string.ascii_letters + string.digits, k=80))
        refresh = "".join(random.choices(string.ascii_letters + string.digits, k=80))
        self.user_tokens.add(access)
        self._expiry[access] = time.time() + self.access_lifetime
        self.refresh_tokens.add(refresh)
        return {"token_type": "bearer", "expires_in": self.access_lifetime, "access_token": access, "scope": SCOPES,
                "refresh_token": refresh}

    def _oauth_token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode(errors="replace")).items()}
        basic = _basic_client(req.headers.get("authorization", ""))
        record: Json = {"form": form, "basic_client_id": basic[0] if basic else None, "status": 0, "issued": None,
                        "error": None}
        resp = self._token_answer(req, form, basic)
        record["status"] = resp.status
        if resp.status == 200:
            record["issued"] = resp.body["access_token"]
        else:
            record["error"] = resp.body.get("error")
        self._token_requests.append(record)
        return resp

    def _token_answer(self, req: Request, form: dict[str, str], basic: tuple[str, str] | None) -> Response:
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return Response(400, {"error": "invalid_request", "error_description": "Missing required parameter "
                                                                                   "[grant_type]."})
        if self.client_secret is not None and basic != (self.client_id, self.client_secret):
            return Response(401, {"error": "unauthorized_client",
                                  "error_description": "Missing valid authorization header"})
        if self.client_secret is None and form.get("client_id") != self.client_id:
            return Response(400, {"error": "invalid_request",
                                  "error_description": "Missing required parameter [client_id]."})
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "invalid_request",
                                  "error_description": "Missing required parameter [grant_type]."})
        refresh = form.get("refresh_token", "")
        if refresh not in self.refresh_tokens:
            return Response(400, {"error": "invalid_request",
                                  "error_description": "Value passed for the token was invalid."})
        self.refresh_tokens.discard(refresh)  # X rotates: each refresh token works once
        return Response(200, self._issue())


def _basic_client(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret
