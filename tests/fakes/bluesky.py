"""In-process fake Bluesky: a PDS with its AppView behind it, speaking XRPC as the lexicons say.

Endpoints (under /xrpc/): com.atproto.server.createSession / refreshSession, com.atproto.repo.createRecord /
getRecord, app.bsky.notification.listNotifications / updateSeen, app.bsky.feed.searchPosts,
app.bsky.actor.getProfile. Shapes follow tests/fixtures/bluesky/ (the AppView's listNotifications snapshot,
the docs' createRecord reply request and mention-facet record) and the lexicons at bluesky-social/atproto.

Behaviour copied from the reference PDS/AppView:
- errors are `{"error": name, "message": …}`: an expired access token is 400 ExpiredToken, an unknown one 400
  InvalidToken, no token 401 AuthMissing, a refused sign-in 401 AuthenticationRequired;
- every answer has RateLimit-Limit/-Remaining/-Reset (epoch seconds)/-Policy; createSession allows 30 per
  5 minutes per identifier (then 429 RateLimitExceeded), everything else 3000 per 5 minutes;
- notifications are made like the AppView makes them: a mention facet → `mention`, a quote → `quote`, a reply
  → `reply` for the authors of the parent and its ancestors (each account notified once per post, mention
  first); their indexedAt is the post's sortAt (the earlier of createdAt and indexedAt); pages newest first;
- createRecord validates a post (300 graphemes, 3000 bytes, TID record key, strong refs) and answers a
  repeated record key with 500 InternalServerError, as the PDS does today.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .mastodon import FakeHTTPServer, Json, Request, Response, _copy

POST = "app.bsky.feed.post"
TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
B32 = "234567abcdefghijklmnopqrstuvwxyz"
SESSION_LIMIT, GLOBAL_LIMIT, WINDOW = 30, 3000, 300
REPLY_NOTIF_DEPTH = 5


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _b64(data: Json) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tid(micros: int, clock: int = 0) -> str:
    value = (micros << 10) | (clock & 0x3FF)
    return "".join(B32[(value >> (5 * (12 - i))) & 31] for i in range(13))


def _cid(data: Any) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def count_graphemes(text: str) -> int:
    """The fake PDS's own (simplified) grapheme count: a mark, ZWJ + next, variation selector, skin tone, tag
    or the second regional indicator of a pair joins the previous character."""
    count, previous, ri_open = 0, "", False
    for char in text:
        cp = ord(char)
        joins = previous != "" and (
            unicodedata.category(char) in ("Mn", "Me", "Mc") or cp in (0x200C, 0x200D) or previous == "\u200d"
            or 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F
            or (previous == "\r" and char == "\n") or (0x1F1E6 <= cp <= 0x1F1FF and ri_open))
        ri_open = 0x1F1E6 <= cp <= 0x1F1FF and not (joins and ri_open)
        if not joins:
            count += 1
        previous = char
    return count


def _error(status: int, name: str, message: str) -> Response:
    return Response(status, {"error": name, "message": message})


@dataclass
class _Failure:
    nsid: str
    status: int
    times: int
    reset_in: float
    error: str
    message: str
    after: bool


@dataclass
class _Window:
    limit: int
    used: int
    reset_at: float


class FakeBluesky(FakeHTTPServer):
    def __init__(self, handle: str = "acme.test", password: str = "abcd-efgh-ijkl-mnop",
                 display_name: str = "ACME Support") -> None:
        super().__init__()
        self.brand_handle = handle
        self.password = password
        self.access_ttl = 7200.0
        self._accounts: dict[str, Json] = {}  # did → account
        self._dids: dict[str, str] = {}  # handle → did
        self._passwords: dict[str, set[str]] = {}
        self._access: dict[str, Json] = {}  # token → {did, exp}
        self._refresh: dict[str, Json] = {}  # token → {did, revoked}
        self._posts: dict[str, Json] = {}  # uri → {uri, cid, did, rkey, record, indexedAt, sortAt}
        self._notifications: list[Json] = []
        self._seen_at: dict[str, str] = {}
        self._sent: list[str] = []  # uris of posts the brand made through createRecord
        self._requests: list[Json] = []
        self._failures: list[_Failure] = []
        self._windows: dict[str, _Window] = {}
        self._last_micros = 0
        self.did = self._account(handle, display_name)["did"]
        self._passwords[self.did] = {password}

    # ------------------------------------------------------------------------------------------ test API

    def config(self, **overrides: Any) -> Json:
        """`sources.bluesky` for the bot's config file."""
        return {"service": self.url, "handle": self.brand_handle, "app_password_env": "BLUESKY_APP_PASSWORD",
                "poll_every": "1s", **overrides}

    def env(self) -> dict[str, str]:
        return {"BLUESKY_APP_PASSWORD": self.password}

    def account(self, handle: str, display_name: str = "", followers: int = 0) -> str:
        """A customer's account (created when new); returns its DID."""
        with self._lock:
            account = self._account(handle, display_name)
            account["followersCount"] = followers or account["followersCount"]
            return str(account["did"])

    def customer_says(self, text: str, *, name: str, handle: str) -> None:
        """A customer's post mentioning the brand; the bot finds it by polling listNotifications. `handle` may
        start with "@"; the bot's reply starts with "@<handle> "."""
        self.post(text if f"@{self.brand_handle}" in text else f"@{self.brand_handle} {text}", handle=handle, name=name)
        return None

    def post(self, text: str, *, handle: str, name: str = "", reply_to: str | None = None, quote: str | None = None,
             created_at: str | None = None, indexed_at: str | None = None, langs: list[str] | None = None,
             embed: Json | None = None) -> Json:
        """A post by `handle` (an account is made for a new handle); every `@handle` of a known account in the
        text becomes a mention facet (UTF-8 byte offsets). `reply_to`/`quote`: an at-uri. Returns the post
        as searchPosts shows it."""
        with self._lock:
            did = self._account(handle, name)["did"]
            now = self._now()
            record: Json = {"$type": POST, "text": text, "createdAt": created_at or _iso(now)}
            facets = self._mention_facets(text)
            if facets:
                record["facets"] = facets
            if reply_to is not None:
                parent = self._posts[reply_to]
                root = parent["record"].get("reply", {}).get("root") or {"uri": parent["uri"], "cid": parent["cid"]}
                record["reply"] = {"root": root, "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
            if quote is not None:
                quoted = self._posts[quote]
                record["embed"] = {"$type": "app.bsky.embed.record",
                                   "record": {"uri": quoted["uri"], "cid": quoted["cid"]}}
            if embed is not None:
                record["embed"] = embed
            if langs:
                record["langs"] = langs
            post = self._index(did, record, rkey=None, indexed_at=_ts(indexed_at) if indexed_at else now)
            return self._post_view(post)

    def brand_post(self, text: str) -> Json:
        """A post by the brand itself (an announcement), made directly (not through the API)."""
        return self.post(text, handle=self.brand_handle)

    def like(self, uri: str, *, handle: str, name: str = "") -> None:
        self._interaction("like", "app.bsky.feed.like", uri, handle, name)

    def repost(self, uri: str, *, handle: str, name: str = "") -> None:
        self._interaction("repost", "app.bsky.feed.repost", uri, handle, name)

    def follow(self, *, handle: str, name: str = "") -> None:
        self._interaction("follow", "app.bsky.graph.follow", None, handle, name)

    def sent(self) -> list[str]:
        """Texts the brand posted through the API, in order."""
        with self._lock:
            return [self._posts[uri]["record"]["text"] for uri in self._sent]

    def brand_records(self) -> list[Json]:
        """The brand's posts made through the API: {uri, cid, rkey, record}, in order."""
        with self._lock:
            return _copy([{key: self._posts[uri][key] for key in ("uri", "cid", "rkey", "record")}
                          for uri in self._sent])

    def get_post(self, uri: str) -> Json | None:
        with self._lock:
            post = self._posts.get(uri)
            return _copy(post) if post else None

    def requests(self, nsid: str | None = None) -> list[Json]:
        """Every request: {method, nsid, params, json, auth ("access" | "refresh" | None), status}."""
        with self._lock:
            return _copy([r for r in self._requests if nsid is None or r["nsid"] == nsid])

    def create_session_count(self) -> int:
        return len(self.requests("com.atproto.server.createSession"))

    def expire_access_tokens(self) -> None:
        """Every access token issued so far has expired (the next use answers 400 ExpiredToken)."""
        with self._lock:
            for token in self._access.values():
                token["exp"] = 0.0

    def revoke(self) -> None:
        """The app password is revoked: sign-in with it is refused and its sessions end."""
        with self._lock:
            self._passwords[self.did] = set()
            self._access.clear()
            for token in self._refresh.values():
                token["revoked"] = True

    def new_app_password(self, password: str) -> None:
        with self._lock:
            self.password = password
            self._passwords[self.did] = {password}

    def fail_next(self, nsid: str, status: int = 429, times: int = 1, reset_in: float = 2.0,
                  error: str | None = None, message: str | None = None, after: bool = False) -> None:
        """The next `times` calls of `nsid` answer `status` (429: RateLimitExceeded with RateLimit-Reset in
        `reset_in` seconds and RateLimit-Remaining 0). `after`: the call is carried out first and only its
        answer is replaced (a post written, but the answer lost on the way)."""
        names = {429: ("RateLimitExceeded", "Rate Limit Exceeded"), 500: ("InternalServerError", "Internal Server Error"),
                 502: ("UpstreamFailure", "Upstream Failure"), 503: ("NotEnoughResources", "Not Enough Resources")}
        name, text = names.get(status, ("InvalidRequest", "Invalid Request"))
        with self._lock:
            self._failures.append(_Failure(nsid, status, times, reset_in, error or name, message or text, after))

    def spend_budget(self, left: int = 1) -> None:
        """Use up the general rate-limit budget but `left` calls (the last one answers RateLimit-Remaining 0)."""
        with self._lock:
            now = time.time()
            window = self._windows.get("global")
            if window is None or now >= window.reset_at:
                window = self._windows["global"] = _Window(GLOBAL_LIMIT, 0, now + WINDOW)
            window.used = GLOBAL_LIMIT - left

    def end_sessions(self) -> None:
        """Every session ends (access tokens unknown, refresh tokens revoked); the app password still works."""
        with self._lock:
            self._access.clear()
            for token in self._refresh.values():
                token["revoked"] = True

    def notifications(self) -> list[Json]:
        """The brand's notifications, newest first, as listNotifications shows them."""
        with self._lock:
            return _copy([self._notification_view(n) for n in self._notifications_of(self.did)])

    # ------------------------------------------------------------------------------------------ model

    def _now(self) -> float:
        """Wall-clock time, strictly increasing by at least a millisecond between posts."""
        micros = max(int(time.time() * 1000) * 1000, self._last_micros + 1000)
        self._last_micros = micros
        return micros / 1e6

    def _account(self, handle: str, display_name: str = "") -> Json:
        handle = handle.removeprefix("@").lower()
        did = self._dids.get(handle)
        if did is not None:
            account = self._accounts[did]
            if display_name:
                account["displayName"] = display_name
            return account
        digest = base64.b32encode(hashlib.sha256(handle.encode()).digest()).decode().lower()
        did = f"did:plc:{digest[:24]}"
        now = _iso(time.time())
        account = {"did": did, "handle": handle, "displayName": display_name, "createdAt": now,
                   "indexedAt": now, "followersCount": 0, "followsCount": 0, "postsCount": 0}
        self._accounts[did], self._dids[handle] = account, did
        return account

    def _profile_view(self, did: str, detailed: bool = False) -> Json:
        account = self._accounts[did]
        view: Json = {"did": did, "handle": account["handle"]}
        if account["displayName"]:
            view["displayName"] = account["displayName"]
        view.update({"associated": {"activitySubscription": {"allowSubscriptions": "followers"}},
                     "labels": [], "createdAt": account["createdAt"], "indexedAt": account["indexedAt"],
                     "viewer": {"blockedBy": False, "muted": False, "mutedOnlyQuoteposts": False,
                                "mutedOnlyReposts": False}})
        if detailed:
            view.update({"description": "", "followersCount": account["followersCount"],
                         "followsCount": account["followsCount"], "postsCount": account["postsCount"]})
        return view

    def _mention_facets(self, text: str) -> list[Json]:
        facets = []
        for match in re.finditer(r"@([a-zA-Z0-9.-]+[a-zA-Z0-9])", text):
            did = self._dids.get(match.group(1).lower())
            if did is None:
                continue
            start = len(text[:match.start()].encode())
            facets.append({"$type": "app.bsky.richtext.facet",
                           "index": {"byteStart": start, "byteEnd": start + len(match.group(0).encode())},
                           "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}]})
        return facets

    def _index(self, did: str, record: Json, *, rkey: str | None, indexed_at: float) -> Json:
        rkey = rkey or _tid(int(indexed_at * 1e6), secrets.randbelow(1024))
        uri = f"at://{did}/{POST}/{rkey}"
        sort_at = min(indexed_at, _ts(record["createdAt"]))
        post = {"uri": uri, "cid": _cid(record), "did": did, "rkey": rkey, "record": record,
                "indexedAt": _iso(indexed_at), "sortAt": _iso(sort_at)}
        self._posts[uri] = post
        self._accounts[did]["postsCount"] += 1
        self._notify(post)
        return post

    def _notify(self, post: Json) -> None:
        notified = {post["did"]}

        def maybe(recipient: str, reason: str, subject: str | None = None) -> None:
            if recipient in notified or recipient not in self._accounts:
                return
            notified.add(recipient)
            self._notifications.append({"did": recipient, "uri": post["uri"], "cid": post["cid"],
                                        "author": post["did"], "reason": reason, "reasonSubject": subject,
                                        "record": post["record"], "sortAt": post["sortAt"]})

        record = post["record"]
        for facet in record.get("facets") or []:
            for feature in facet.get("features") or []:
                if feature.get("$type") == "app.bsky.richtext.facet#mention":
                    maybe(str(feature.get("did")), "mention")
        embed = record.get("embed") or {}
        quoted = (embed.get("record") or {}).get("uri") if embed.get("$type") == "app.bsky.embed.record" else None
        if quoted:
            maybe(quoted.split("/")[2], "quote", quoted)
        ancestor = (record.get("reply") or {}).get("parent", {}).get("uri")
        for _ in range(REPLY_NOTIF_DEPTH):
            if not ancestor:
                break
            maybe(ancestor.split("/")[2], "reply", ancestor)
            parent = self._posts.get(ancestor)
            ancestor = ((parent or {}).get("record", {}).get("reply") or {}).get("parent", {}).get("uri")

    def _interaction(self, reason: str, collection: str, subject: str | None, handle: str, name: str) -> None:
        with self._lock:
            did = self._account(handle, name)["did"]
            now = self._now()
            record: Json = {"$type": collection, "createdAt": _iso(now)}
            if subject is not None:
                record["subject"] = {"uri": subject, "cid": self._posts[subject]["cid"]}
            else:
                record["subject"] = self.did
            uri = f"at://{did}/{collection}/{_tid(int(now * 1e6))}"
            self._notifications.append({"did": self.did, "uri": uri, "cid": _cid(record), "author": did,
                                        "reason": reason, "reasonSubject": subject, "record": record,
                                        "sortAt": _iso(now)})

    def _notifications_of(self, did: str) -> list[Json]:
        return sorted((n for n in self._notifications if n["did"] == did),
                      key=lambda n: (n["sortAt"], n["cid"]), reverse=True)

    def _notification_view(self, n: Json) -> Json:
        view: Json = {"uri": n["uri"], "cid": n["cid"], "author": self._profile_view(n["author"]),
                      "reason": n["reason"]}
        if n["reasonSubject"]:
            view["reasonSubject"] = n["reasonSubject"]
        seen = self._seen_at.get(n["did"])
        view.update({"record": n["record"], "isRead": bool(seen and seen >= n["sortAt"]),
                     "indexedAt": n["sortAt"], "labels": []})
        return view

    def _post_view(self, post: Json) -> Json:
        replies = sum(1 for p in self._posts.values()
                      if (p["record"].get("reply") or {}).get("parent", {}).get("uri") == post["uri"])
        return {"uri": post["uri"], "cid": post["cid"], "author": self._profile_view(post["did"]),
                "record": post["record"], "bookmarkCount": 0, "replyCount": replies, "repostCount": 0,
                "likeCount": 0, "quoteCount": 0, "indexedAt": post["sortAt"], "viewer": {}, "labels": []}

    def _tokens(self, did: str) -> Json:
        now = time.time()
        access = ".".join((_b64({"typ": "at+jwt", "alg": "ES256K"}),
                           _b64({"scope": "com.atproto.appPass", "sub": did, "iat": int(now),
                                 "exp": int(now + self.access_ttl), "aud": "did:web:127.0.0.1"}),
                           secrets.token_urlsafe(32)))
        refresh = ".".join((_b64({"typ": "refresh+jwt", "alg": "ES256K"}),
                            _b64({"scope": "com.atproto.refresh", "sub": did, "jti": secrets.token_urlsafe(16),
                                  "iat": int(now), "exp": int(now + 90 * 86400)}),
                            secrets.token_urlsafe(32)))
        self._access[access] = {"did": did, "exp": now + self.access_ttl}
        self._refresh[refresh] = {"did": did, "revoked": False}
        account = self._accounts[did]
        return {"accessJwt": access, "refreshJwt": refresh, "handle": account["handle"], "did": did,
                "didDoc": {"id": did, "alsoKnownAs": [f"at://{account['handle']}"],
                           "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                                        "serviceEndpoint": self.url}]},
                "email": f"{account['handle']}@example.com", "emailConfirmed": True, "active": True}

    # ------------------------------------------------------------------------------------------ HTTP

    def handle(self, req: Request) -> Response:
        nsid = req.path.removeprefix("/xrpc/") if req.path.startswith("/xrpc/") else ""
        body: Any = None
        if req.method == "POST" and req.body:
            try:
                body = json.loads(req.body)
            except ValueError:
                body = {"_raw": req.body.decode(errors="replace")}
        entry: Json = {"method": req.method, "nsid": nsid, "params": req.query, "json": body, "auth": None,
                       "status": None}
        self._requests.append(entry)
        resp = self._limited(req, nsid, body, entry)
        entry["status"] = resp.status
        return resp

    def _limited(self, req: Request, nsid: str, body: Any, entry: Json) -> Response:
        now = time.time()
        if nsid == "com.atproto.server.createSession":
            key, limit = f"session:{(body or {}).get('identifier')}", SESSION_LIMIT
        else:
            key, limit = "global", GLOBAL_LIMIT
        window = self._windows.get(key)
        if window is None or now >= window.reset_at:
            window = self._windows[key] = _Window(limit, 0, now + WINDOW)
        headers = {"RateLimit-Limit": str(limit), "RateLimit-Reset": str(int(window.reset_at)),
                   "RateLimit-Policy": f"{limit};w={WINDOW}"}
        for failure in self._failures:
            if failure.times > 0 and failure.nsid == nsid:
                failure.times -= 1
                if failure.after:
                    self._dispatch(req, nsid, body, entry)
                if failure.status == 429:
                    headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(now + failure.reset_in))})
                else:
                    headers["RateLimit-Remaining"] = str(max(0, limit - window.used))
                return Response(failure.status, {"error": failure.error, "message": failure.message}, headers)
        if window.used >= limit:
            headers["RateLimit-Remaining"] = "0"
            return Response(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)
        window.used += 1
        headers["RateLimit-Remaining"] = str(limit - window.used)
        resp = self._dispatch(req, nsid, body, entry)
        resp.headers.update(headers)
        return resp

    def _bearer(self, req: Request, entry: Json) -> tuple[str | None, Response | None]:
        """(did, None) for a valid access token, else (None, the PDS's error answer)."""
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return None, _error(401, "AuthMissing", "Authentication Required")
        token = auth.removeprefix("Bearer ")
        if token in self._refresh:
            entry["auth"] = "refresh"
            return None, _error(400, "InvalidToken", "Bad token scope")
        access = self._access.get(token)
        if access is None:
            return None, _error(400, "InvalidToken", "Token could not be verified")
        entry["auth"] = "access"
        if time.time() >= access["exp"]:
            return None, _error(400, "ExpiredToken", "Token has expired")
        return str(access["did"]), None

    def _dispatch(self, req: Request, nsid: str, body: Any, entry: Json) -> Response:
        params: Json = {k: v[-1] for k, v in req.query.items()}
        if nsid == "com.atproto.server.createSession" and req.method == "POST":
            return self._create_session(body)
        if nsid == "com.atproto.server.refreshSession" and req.method == "POST":
            return self._refresh_session(req, entry)
        if nsid == "com.atproto.repo.getRecord" and req.method == "GET":
            return self._get_record(params)
        known = {"app.bsky.notification.listNotifications": "GET", "app.bsky.feed.searchPosts": "GET",
                 "app.bsky.actor.getProfile": "GET", "com.atproto.repo.createRecord": "POST",
                 "app.bsky.notification.updateSeen": "POST"}
        if known.get(nsid) != req.method:
            return _error(501, "MethodNotImplemented", "Method Not Implemented")
        did, refused = self._bearer(req, entry)
        if refused is not None or did is None:
            return refused or _error(401, "AuthMissing", "Authentication Required")
        if nsid == "app.bsky.notification.listNotifications":
            return self._list_notifications(did, req.query)
        if nsid == "app.bsky.feed.searchPosts":
            return self._search_posts(params)
        if nsid == "app.bsky.actor.getProfile":
            actor = str(params.get("actor") or "")
            target = actor if actor in self._accounts else self._dids.get(actor)
            if target is None:
                return _error(400, "InvalidRequest", "Profile not found")
            return Response(200, self._profile_view(target, detailed=True))
        if nsid == "app.bsky.notification.updateSeen":
            self._seen_at[did] = str((body or {}).get("seenAt") or _iso(time.time()))
            return Response(200)
        return self._create_record(did, body)

    def _create_session(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("identifier"), str) \
                or not isinstance(body.get("password"), str):
            return _error(400, "InvalidRequest", 'Input must have the property "identifier"')
        identifier = body["identifier"].removeprefix("@").lower()
        did = identifier if identifier in self._accounts else self._dids.get(identifier)
        if did is None or body["password"] not in self._passwords.get(did, set()):
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return Response(200, self._tokens(did))

    def _refresh_session(self, req: Request, entry: Json) -> Response:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "AuthMissing", "Authentication Required")
        token = auth.removeprefix("Bearer ")
        if token in self._access:
            entry["auth"] = "access"
            return _error(400, "InvalidToken", "Bad token scope")
        refresh = self._refresh.get(token)
        if refresh is None:
            return _error(400, "InvalidToken", "Token could not be verified")
        entry["auth"] = "refresh"
        if refresh["revoked"]:
            return _error(400, "ExpiredToken", "Token has been revoked")
        refresh["revoked"] = True  # rotated
        return Response(200, self._tokens(str(refresh["did"])))

    def _list_notifications(self, did: str, query: dict[str, list[str]]) -> Response:
        if query.get("seenAt"):
            return _error(400, "InvalidRequest", "The seenAt parameter is unsupported")
        try:
            limit = int(query.get("limit", ["50"])[-1])
        except ValueError:
            return _error(400, "InvalidRequest", "limit must be an integer")
        if not 1 <= limit <= 100:
            return _error(400, "InvalidRequest", f"limit can not be {'less than 1' if limit < 1 else 'greater than 100'}")
        reasons = set(query.get("reasons", []))
        items = [n for n in self._notifications_of(did) if not reasons or n["reason"] in reasons]
        cursor = query.get("cursor", [""])[-1]
        if cursor:
            sort_at, _, cid = cursor.partition("::")
            items = [n for n in items if (n["sortAt"], n["cid"]) < (sort_at, cid)]
        page = items[:limit]
        answer: Json = {"notifications": [self._notification_view(n) for n in page], "priority": False}
        if len(items) > limit:
            answer["cursor"] = f"{page[-1]['sortAt']}::{page[-1]['cid']}"
        if did in self._seen_at:
            answer["seenAt"] = self._seen_at[did]
        return Response(200, answer)

    def _search_posts(self, params: Json) -> Response:
        q = str(params.get("q") or "")
        if not q:
            return _error(400, "InvalidRequest", 'Error: Params must have the property "q"')
        limit = int(params.get("limit") or 25)
        if not 1 <= limit <= 100:
            return _error(400, "InvalidRequest", "limit must be between 1 and 100")
        offset = int(params.get("cursor") or 0)
        hits = sorted((p for p in self._posts.values() if q.lower() in p["record"]["text"].lower()),
                      key=lambda p: (p["sortAt"], p["cid"]), reverse=True)
        page = hits[offset:offset + limit]
        answer: Json = {"posts": [self._post_view(p) for p in page], "hitsTotal": len(hits)}
        if offset + limit < len(hits):
            answer["cursor"] = str(offset + limit)
        return Response(200, answer)

    def _get_record(self, params: Json) -> Response:
        repo, collection, rkey = (str(params.get(k) or "") for k in ("repo", "collection", "rkey"))
        did = repo if repo in self._accounts else self._dids.get(repo, repo)
        uri = f"at://{did}/{collection}/{rkey}"
        post = self._posts.get(uri)
        if post is None:
            return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return Response(200, {"uri": uri, "cid": post["cid"], "value": post["record"]})

    def _create_record(self, did: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return _error(400, "InvalidRequest", "Request body must be JSON")
        repo = body.get("repo")
        if (repo if repo in self._accounts else self._dids.get(str(repo))) != did:
            return _error(401, "AuthRequired", "Authentication Required")
        if body.get("collection") != POST:
            return _error(400, "InvalidRequest", f"Unsupported collection in this fake: {body.get('collection')}")
        record = body.get("record")
        problem = _post_problem(record)
        if problem:
            return _error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {problem}")
        rkey = body.get("rkey")
        if rkey is not None and (not isinstance(rkey, str) or not TID_RE.match(rkey)):
            return _error(400, "InvalidRequest", f"Invalid record key for app.bsky.feed.post: {rkey!r} is not a TID")
        if rkey and f"at://{did}/{POST}/{rkey}" in self._posts:
            return _error(500, "InternalServerError", "Internal Server Error")
        assert isinstance(record, dict)
        post = self._index(did, record, rkey=rkey, indexed_at=self._now())
        if did == self.did:
            self._sent.append(post["uri"])
        return Response(200, {"uri": post["uri"], "cid": post["cid"],
                              "commit": {"cid": _cid(post["uri"]), "rev": _tid(int(time.time() * 1e6))},
                              "validationStatus": "valid"})


def _post_problem(record: Any) -> str | None:
    """Why the PDS's lexicon validation refuses this app.bsky.feed.post record, or None."""
    if not isinstance(record, dict) or record.get("$type") != POST:
        return "Record/$type must be app.bsky.feed.post"
    text = record.get("text")
    if not isinstance(text, str):
        return 'Record must have the property "text"'
    if len(text.encode()) > 3000:
        return f"string too long (maximum 3000, got {len(text.encode())}) at $.record.text"
    if count_graphemes(text) > 300:  # the reference PDS's words
        return f"grapheme too big (maximum 300, got {count_graphemes(text)}) at $.record.text"
    try:
        _ts(str(record.get("createdAt")))
    except ValueError:
        return "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
    reply = record.get("reply")
    if reply is not None:
        for key in ("root", "parent"):
            ref = reply.get(key) if isinstance(reply, dict) else None
            if not isinstance(ref, dict) or not str(ref.get("uri", "")).startswith("at://") \
                    or not isinstance(ref.get("cid"), str):
                return f"Record/reply/{key} must be a com.atproto.repo.strongRef"
    for i, facet in enumerate(record.get("facets") or []):
        index = facet.get("index") if isinstance(facet, dict) else None
        if not isinstance(index, dict) or not all(isinstance(index.get(k), int) and index[k] >= 0
                                                  for k in ("byteStart", "byteEnd")):
            return f"Record/facets/{i}/index must be a byteSlice"
        features = facet.get("features")
        if not isinstance(features, list) or not features:
            return f"Record/facets/{i}/features must be an array"
        for feature in features:
            if feature.get("$type") == "app.bsky.richtext.facet#mention" and \
                    not str(feature.get("did", "")).startswith("did:"):
                return f"Record/facets/{i}/features/0/did must be a valid did"
    return None
