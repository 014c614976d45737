"""In-process fake Mastodon instance speaking the documented / recorded wire format.

JSON shapes mirror tests/fixtures/mastodon/*.json (recorded from a real Mastodon 4.x server).
Also hosts the small HTTP-server base class shared with receiver.py.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar, cast
from urllib.parse import parse_qs, urlencode, urlsplit

Json = dict[str, Any]
T = TypeVar("T")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, None = empty body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait (outside the lock) before answering


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeHTTPServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True), headers, body)
        resp, data = fake._respond(req)
        if resp.delay:
            time.sleep(resp.delay)
        try:
            self.send_response(resp.status)
            if resp.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in resp.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts, crash tests)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeHTTPServer:
    """ThreadingHTTPServer on 127.0.0.1:<ephemeral> in a daemon thread. Subclasses implement
    `handle`, which always runs under `self._lock`. The port is bound at construction, so `.url`
    is valid before `start()`. HTTP/1.0 (one request per connection) so `stop()` is final."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server = _Server(self)
        self._thread: threading.Thread | None = None
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=type(self).__name__, daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def _respond(self, req: Request) -> tuple[Response, bytes]:
        with self._lock:
            try:
                resp = self.handle(req)
            except Exception:
                traceback.print_exc()
                resp = Response(500, {"error": f"{type(self).__name__} crashed, see stderr"})
            return resp, b"" if resp.body is None else json.dumps(resp.body).encode()

    @staticmethod
    def wait_for(
        predicate: Callable[[], T], timeout: float = 10, interval: float = 0.02, message: str = ""
    ) -> T:
        """Poll `predicate` until it returns something truthy (returned); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                what = message or getattr(predicate, "__qualname__", repr(predicate))
                raise AssertionError(f"wait_for: {what} still falsy after {timeout}s (last: {result!r})")
            time.sleep(interval)


# ---------------------------------------------------------------------------------------------- Mastodon

MAX_CHARS = 500
URL_CHARS = 23  # StatusLengthValidator::URL_PLACEHOLDER_CHARS
VISIBILITIES = ("public", "unlisted", "private", "direct")
_URL_RE = re.compile(r"https?://[^\s<>\"]+")
_MENTION_RE = re.compile(r"(?<![/\w])@(\w+)(?:@([\w.-]*\w))?")
_ERRORS = {
    429: "Too many requests",
    503: "There was a temporary problem serving your request, please try again",
}


def _iso(ts: float | None = None, micro: bool = False) -> str:
    text = datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text if micro else text[:-3]) + "Z"  # created_at: milliseconds; X-RateLimit-Reset: microseconds


def _copy(value: T) -> T:
    return cast(T, json.loads(json.dumps(value)))


def countable_length(text: str, spoiler_text: str = "") -> int:
    """Mastodon's StatusLengthValidator: spoiler + text; a URL counts 23, `@user@domain` counts as `@user`.
    (Counts code points; Mastodon counts grapheme clusters, so this is never more lenient.)"""
    text = _URL_RE.sub("x" * URL_CHARS, text)
    text = _MENTION_RE.sub(lambda m: "@" + m.group(1), text)
    return len(spoiler_text) + len(text) if text.strip() else len(spoiler_text)


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    reset_in: float


class FakeMastodon(FakeHTTPServer):
    def __init__(self, token: str = "mastodon-test-token", brand_acct: str = "acme") -> None:
        super().__init__()
        self.token = token
        self._next_id = 110_000_000_000_000_000
        self._accounts: dict[str, Json] = {}
        self._statuses: dict[str, Json] = {}
        self._notifications: list[Json] = []  # ascending id
        self._brand_ids: list[str] = []
        self._idempotency: dict[str, str] = {}
        self._posts: list[Json] = []
        self._requests: list[Json] = []
        self._failures: list[_Failure] = []
        self._post_delay = 0.0
        self._rl_limit, self._rl_remaining, self._rl_reset = 300, 299, 0.0
        self.brand = self._account(brand_acct, brand_acct.title(), 100)

    # ---- test-side API
    def add_mention(self, *, acct: str, display_name: str, content_html: str, visibility: str = "public",
                    followers: int = 10, in_reply_to_id: str | None = None) -> Json:
        """A status by `acct` mentioning the brand, plus its `mention` notification (returned)."""
        with self._lock:
            account = self._account(acct, display_name, followers)
            status = self._new_status(account, content_html, visibility=visibility,
                                      in_reply_to_id=in_reply_to_id, mentions=[_mention(self.brand)])
            return self.add_notification("mention", acct=acct, display_name=display_name,
                                         followers=followers, status_id=status["id"])

    def add_notification(self, type: str, *, acct: str, display_name: str = "", followers: int | None = None,
                         status_id: str | None = None) -> Json:
        """Any notification type (favourite, follow, reblog...); `status_id` must exist if given."""
        with self._lock:
            nid = self._new_id()
            notification: Json = {"id": nid, "type": type, "created_at": _iso(),
                                  "group_key": f"ungrouped-{nid}",
                                  "account": self._account(acct, display_name, followers)}
            if status_id is not None:
                notification["status"] = self._statuses[status_id]
            self._notifications.append(notification)
            return _copy(notification)

    def rate_limit(self, remaining: int, reset_in: float, limit: int = 300) -> None:
        """Headers report these values until `reset_in` seconds pass, then the full limit again."""
        with self._lock:
            self._rl_limit, self._rl_remaining, self._rl_reset = limit, remaining, time.time() + reset_in

    def fail_next(self, path_prefix: str, status: int = 429, times: int = 1, reset_in: float = 1.0) -> None:
        """The next `times` authenticated requests under `path_prefix` answer `status` (429: remaining 0)."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, times, reset_in))

    def delay_posts(self, seconds: float) -> None:
        """POST /api/v1/statuses stores the status, then waits `seconds` before answering."""
        with self._lock:
            self._post_delay = seconds

    def statuses_by_brand(self) -> list[Json]:
        with self._lock:
            return _copy([self._statuses[i] for i in self._brand_ids])

    def get_status(self, status_id: str) -> Json | None:
        with self._lock:
            return _copy(self._statuses.get(status_id))

    def post_requests(self) -> list[Json]:
        """Every POST received: {path, params, idempotency_key, status} (status = HTTP code answered)."""
        with self._lock:
            return _copy(self._posts)

    def requests(self) -> list[Json]:
        """Every request received: {method, path, query, status}."""
        with self._lock:
            return _copy(self._requests)

    # ---- model
    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _account(self, acct: str, display_name: str = "", followers: int | None = None) -> Json:
        if acct in self._accounts:  # same account: refresh the profile data, like a re-fetch would
            account = self._accounts[acct]
            account["display_name"] = display_name or account["display_name"]
            account["followers_count"] = account["followers_count"] if followers is None else followers
            return account
        aid = self._new_id()
        username, _, domain = acct.partition("@")
        url = f"https://{domain}/@{username}" if domain else f"{self.url}/@{username}"
        uri = f"https://{domain}/users/{username}" if domain else f"{self.url}/ap/users/{aid}"
        avatar = f"{self.url}/avatars/original/missing.png"
        header = f"{self.url}/headers/original/missing.png"
        account = self._accounts[acct] = {
            "id": aid, "username": username, "acct": acct, "display_name": display_name, "locked": False,
            "bot": False, "discoverable": None, "indexable": False, "group": False,
            "created_at": _iso(), "note": "", "url": url, "uri": uri,
            "avatar": avatar, "avatar_static": avatar, "avatar_description": "",
            "header": header, "header_static": header, "header_description": "",
            "followers_count": followers or 0, "following_count": 0, "statuses_count": 0,
            "last_status_at": None, "hide_collections": None, "show_media": True, "show_media_replies": True,
            "show_featured": True, "noindex": False,
            "feature_approval": {"automatic": [], "manual": [], "current_user": "denied"},
            "emojis": [], "roles": [], "fields": [],
        }
        return account

    def _new_status(self, account: Json, content: str, *, visibility: str, in_reply_to_id: str | None,
                    mentions: list[Json], spoiler_text: str = "", sensitive: bool = False,
                    language: str | None = "en") -> Json:
        sid = self._new_id()
        parent = self._statuses.get(in_reply_to_id) if in_reply_to_id else None
        if parent is not None:
            parent["replies_count"] += 1
        account["statuses_count"] += 1
        account["last_status_at"] = _iso()[:10]
        status: Json = {
            "id": sid, "created_at": _iso(), "in_reply_to_id": in_reply_to_id,
            "in_reply_to_account_id": parent["account"]["id"] if parent else None,
            "sensitive": sensitive, "spoiler_text": spoiler_text, "visibility": visibility,
            "language": language, "uri": f"{account['uri']}/statuses/{sid}", "url": f"{account['url']}/{sid}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "quotes_count": 0,
            "edited_at": None,
            "favourited": False, "reblogged": False, "muted": False, "bookmarked": False,
            "content": content, "filtered": [], "reblog": None,
            "application": {"name": "Web", "website": None}, "account": account, "media_attachments": [],
            "mentions": mentions, "tags": [], "emojis": [], "tagged_collections": [], "quote": None,
            "card": None, "poll": None,
            "quote_approval": {"automatic": ["public"], "manual": [], "current_user": "automatic"},
        }
        if account is self.brand:
            status["pinned"] = False  # only present on the caller's own statuses
            self._brand_ids.append(sid)
        self._statuses[sid] = status
        return status

    def _format(self, text: str) -> tuple[str, list[Json]]:
        """Plain text -> Mastodon HTML (escaped, <p>/<br />, h-card links for known accounts)."""
        mentions: list[Json] = []

        def link(m: re.Match[str]) -> str:
            account = self._accounts.get(m.group(1) + (f"@{m.group(2)}" if m.group(2) else ""))
            if account is None:
                return m.group(0)
            if all(x["id"] != account["id"] for x in mentions):
                mentions.append(_mention(account))
            return (f'<span class="h-card" translate="no"><a href="{account["url"]}" class="u-url mention">'
                    f'@<span>{account["username"]}</span></a></span>')

        escaped = html.escape(text.strip()).replace("&#x27;", "&#39;")
        paragraphs = [p.replace("\n", "<br />") for p in re.split(r"\n{2,}", _MENTION_RE.sub(link, escaped))]
        return "".join(f"<p>{p}</p>" for p in paragraphs), mentions

    # ---- HTTP
    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        self._requests.append(
            {"method": req.method, "path": req.path, "query": req.query, "status": resp.status}
        )
        return resp

    def _route(self, req: Request) -> Response:
        params: Json = {k: v[-1] for k, v in req.query.items()}
        if req.method == "POST":
            try:
                if "json" in req.headers.get("content-type", ""):
                    params.update(json.loads(req.body or b"{}"))
                else:
                    form = parse_qs(req.body.decode(), keep_blank_values=True)
                    params.update({k: v[-1] for k, v in form.items()})
            except (ValueError, TypeError, AttributeError):
                params = {"_raw": req.body.decode(errors="replace")}
            self._posts.append({"path": req.path, "params": params,
                                "idempotency_key": req.headers.get("idempotency-key"), "status": None})
        resp = self._authenticated(req, params)
        if req.method == "POST":
            self._posts[-1]["status"] = resp.status
        return resp

    def _authenticated(self, req: Request, params: Json) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, {"error": "The access token is invalid"})
        now = time.time()
        if now >= self._rl_reset:  # window over: full budget, next reset at the 5-minute boundary
            self._rl_remaining, self._rl_reset = self._rl_limit - 1, now + 300 - now % 300
        rate = {"X-RateLimit-Limit": str(self._rl_limit), "X-RateLimit-Remaining": str(self._rl_remaining),
                "X-RateLimit-Reset": _iso(self._rl_reset, micro=True)}
        for failure in self._failures:
            if failure.times > 0 and req.path.startswith(failure.prefix):
                failure.times -= 1
                if failure.status == 429:
                    rate.update({"X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": _iso(now + failure.reset_in, micro=True)})
                error = _ERRORS.get(failure.status) or HTTPStatus(failure.status).phrase
                return Response(failure.status, {"error": error}, rate)
        resp = self._dispatch(req, params)
        resp.headers.update(rate)
        return resp

    def _dispatch(self, req: Request, params: Json) -> Response:
        path, method = req.path.rstrip("/"), req.method
        if method == "GET" and path == "/api/v1/notifications":
            return self._notifications_page(req)
        if method == "POST" and path == "/api/v1/statuses":
            return self._post_status(req, params)
        m = re.fullmatch(r"/api/v1/statuses/(\d+)", path)
        if method == "GET" and m and m[1] in self._statuses:
            return Response(200, self._statuses[m[1]])
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            source = {"privacy": "public", "sensitive": False, "language": None, "note": "", "fields": [],
                      "follow_requests_count": 0}
            return Response(200, {**self.brand, "source": source})
        return Response(404, {"error": "Record not found"})

    def _notifications_page(self, req: Request) -> Response:
        q = req.query
        types = set(q.get("types[]", []) + q.get("types", []))
        excluded = set(q.get("exclude_types[]", []) + q.get("exclude_types", []))

        def num(name: str) -> int | None:
            value = q.get(name, [""])[-1]
            return int(value) if value else None

        limit = min(abs(v), 80) if (v := num("limit")) is not None else 40
        max_id, since_id, min_id = num("max_id"), num("since_id"), num("min_id")
        items = [n for n in self._notifications
                 if (not types or n["type"] in types) and n["type"] not in excluded
                 and (max_id is None or int(n["id"]) < max_id)]
        if min_id is not None:  # the page right above min_id (since_id ignored, like Mastodon)
            page = [n for n in items if int(n["id"]) > min_id][:limit][::-1]
        else:
            page = [n for n in items if since_id is None or int(n["id"]) > since_id][::-1][:limit]
        headers = {}
        if page:
            kept = [(k, v) for k in ("exclude_types[]", "limit", "types[]") for v in q.get(k, [])]

            def link(key: str, value: str) -> str:
                query = "&".join(sorted(urlencode([*kept, (key, value)]).split("&")))  # Rails' to_query sorts
                return f"{self.url}/api/v1/notifications?{query}"

            headers["Link"] = (f'<{link("max_id", page[-1]["id"])}>; rel="next", '
                               f'<{link("min_id", page[0]["id"])}>; rel="prev"')
        return Response(200, page, headers)

    def _post_status(self, req: Request, params: Json) -> Response:
        if "_raw" in params:
            return Response(400, {"error": "Error occurred while parsing request parameters"})
        reply_to = str(params.get("in_reply_to_id") or "") or None
        if reply_to is not None and reply_to not in self._statuses:
            return Response(404, {"error": "Record not found"})
        key = req.headers.get("idempotency-key")
        if key and key in self._idempotency:  # Mastodon: same key -> the first status, nothing new
            return Response(200, self._statuses[self._idempotency[key]], delay=self._post_delay)
        text, spoiler = str(params.get("status") or ""), str(params.get("spoiler_text") or "")
        visibility = str(params.get("visibility") or "public")
        if not text.strip():
            return Response(422, {"error": "Validation failed: Text can't be blank"})
        if countable_length(text, spoiler) > MAX_CHARS:
            error = f"Validation failed: Text character limit of {MAX_CHARS} exceeded"
            return Response(422, {"error": error})
        if visibility not in VISIBILITIES:
            return Response(422, {"error": f"'{visibility}' is not a valid visibility"})
        content, mentions = self._format(text)
        sensitive = bool(spoiler) or str(params.get("sensitive", "")).lower() in ("true", "1")
        status = self._new_status(self.brand, content, visibility=visibility, in_reply_to_id=reply_to,
                                  mentions=mentions, spoiler_text=spoiler, sensitive=sensitive,
                                  language=str(params.get("language") or "en"))
        if key:
            self._idempotency[key] = status["id"]
        return Response(200, status, delay=self._post_delay)


def _mention(account: Json) -> Json:
    return {key: account[key] for key in ("id", "username", "url", "acct")}
