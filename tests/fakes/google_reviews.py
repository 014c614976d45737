"""In-process fake of the Google Business Profile reviews API (My Business v4) on 127.0.0.1.

Wire format from tests/fixtures/google_reviews/*.json (Google's documented Review, ListReviewsResponse and
ReviewReply shapes): `GET /v4/{account}/{location}/reviews` pages (pageSize ≤ 50, opaque pageToken,
orderBy `updateTime desc` by default, proto3 JSON: empty fields left out), `PUT /v4/{review}/reply`
creates or replaces the owner's reply. Timestamps are RFC 3339 "Zulu" with 0, 3, 6 or 9 fractional
digits like Google's, strictly increasing by the nanosecond. Errors are Google's
`{"error": {"code", "message", "status"}}`.

The OAuth token endpoint is served at `POST /token` (point `token_url` there): the refresh grant with
`client_id` and `client_secret` in the form answers `{"access_token", "expires_in", "scope", "token_type"}`
— Google does not rotate refresh tokens, the same one keeps working until revoked (then 400
`invalid_grant` "Token has been expired or revoked."); a wrong client is 401 `invalid_client`. Access
tokens stop working after `access_lifetime` seconds or on demand (`expire_access_tokens`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from tests.fakes.mastodon import FakeHTTPServer, Request, Response

Json = dict[str, Any]
T = TypeVar("T")
STAR_NAMES = {1: "ONE", 2: "TWO", 3: "THREE", 4: "FOUR", 5: "FIVE"}
STAR_NAMES_INV = {name: stars for stars, name in STAR_NAMES.items()}
MAX_PAGE_SIZE = 50
SCOPE = "https://www.googleapis.com/auth/business.manage"
ACCESS_LIFETIME_S = 3599
MAX_REPLY_BYTES = 4096
ORDERS = ("updateTime desc", "rating", "rating desc")
_KEEP = object()
_REVIEWS = re.compile(r"/v4/(accounts/[^/]+)/(locations/[^/]+)/reviews")
_REPLY = re.compile(r"/v4/(accounts/[^/]+)/(locations/[^/]+)/reviews/([^/]+)/reply")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
         "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
         "'mybusiness.googleapis.com' for consumer 'project_number:123456789012'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


def rfc3339(ns: int) -> str:
    """Google's Timestamp JSON: seconds, then 0, 3, 6 or 9 fractional digits, then Z."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def google_error(code: int, message: str | None = None) -> Json:
    return {"error": {"code": code, "message": message or _MESSAGES.get(code, "Error"),
                      "status": _STATUS.get(code, "UNKNOWN")}}


def _copy(value: T) -> T:
    return cast(T, json.loads(json.dumps(value)))


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: float | None


class FakeGoogleReviews(FakeHTTPServer):
    def __init__(self, token: str = "google-test-token", account: str = "accounts/123",
                 locations: tuple[str, ...] = ("locations/456",),
                 client_id: str = "123456789012-fake.apps.googleusercontent.com",
                 client_secret: str = "GOCSPX-google-client-secret", refresh_token: str = "1//google-refresh-token") -> None:
        super().__init__()
        self.token = token
        self.account = account
        self.reply_touches_review = False
        """True: a reply also stamps the review's updateTime (to prove the bot ignores that stamp)."""
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        self.refresh_tokens = {refresh_token}
        self.access_lifetime = ACCESS_LIFETIME_S
        """`expires_in` of the access tokens the token endpoint issues (they stop working after it)."""
        self._access: dict[str, float] = {token: float("inf")}  # valid access token -> expiry (Unix seconds)
        self._token_requests: list[Json] = []
        self._reviews: dict[str, list[Json]] = {location: [] for location in locations}
        self._update_ns: dict[str, int] = {}  # review id -> updateTime in ns (the list's sort key)
        self._denied: set[str] = set()
        self._failures: list[_Failure] = []
        self._requests: list[Json] = []
        self._puts: list[Json] = []
        self._last_ns = 0
        self._next = 0

    # ---- test-side API
    def add_review(self, comment: str | None = "Great place", *, rating: int | None = 5, name: str = "Jane Doe",
                   anonymous: bool = False, location: str | None = None, created: datetime | None = None,
                   reply: str | None = None) -> Json:
        """A customer's review (returned). `created`: when it was written (default now); `rating` None is
        STAR_RATING_UNSPECIFIED; `comment` None is a rating-only review; `reply`: the owner already answered."""
        with self._lock:
            location = location or next(iter(self._reviews))
            self._next += 1
            review_id = "AbFvOq" + base64.urlsafe_b64encode(
                hashlib.sha256(f"review-{self._next}".encode()).digest()[:24]).decode()
            ns = self._stamp(created)
            if anonymous:
                reviewer: Json = {"displayName": "A Google User", "isAnonymous": True}
            else:
                photo = hashlib.sha256(name.encode()).hexdigest()[:40]
                reviewer = {"profilePhotoUrl": f"https://lh3.googleusercontent.com/a-/ALV-Uj{photo}=s120-c-rp-mo-br100",
                            "displayName": name, "isAnonymous": False}
            review: Json = {"name": f"{self.account}/{location}/reviews/{review_id}", "reviewId": review_id,
                            "reviewer": reviewer, "starRating": STAR_NAMES.get(rating or 0, "STAR_RATING_UNSPECIFIED")}
            if comment is not None:
                review["comment"] = comment
            review["createTime"] = review["updateTime"] = rfc3339(ns)
            if reply is not None:
                review["reviewReply"] = {"comment": reply, "updateTime": rfc3339(self._stamp(None))}
            self._reviews[location].append(review)
            self._update_ns[review_id] = ns
            return _copy(review)

    def edit_review(self, review_id: str, *, comment: Any = _KEEP, rating: Any = _KEEP,
                    at: datetime | None = None) -> Json:
        """The customer edits the review: new comment and/or rating (None removes the comment), new updateTime."""
        with self._lock:
            review = self._find(review_id)
            assert review is not None, f"no review {review_id}"
            if comment is None:
                review.pop("comment", None)
            elif comment is not _KEEP:
                review["comment"] = comment
            if rating is not _KEEP:
                review["starRating"] = STAR_NAMES.get(rating or 0, "STAR_RATING_UNSPECIFIED")
            ns = self._stamp(at)
            review["updateTime"] = rfc3339(ns)
            self._update_ns[review_id] = ns
            return _copy(review)

    def delete_review(self, review_id: str) -> None:
        with self._lock:
            for reviews in self._reviews.values():
                reviews[:] = [r for r in reviews if r["reviewId"] != review_id]

    def customer_says(self, text: str, *, name: str, handle: str) -> tuple[str, bytes, dict[str, str]] | None:
        """A new two-star review with `text`; None: the bot finds it by polling (Google has no handles)."""
        self.add_review(text, rating=2, name=name)
        return None

    def sent(self) -> list[str]:
        """The reply comments the brand put, in order (a later one replaced an earlier one on the same review)."""
        with self._lock:
            return [p["body"]["comment"] for p in self._puts if p["status"] == 200]

    def puts(self) -> list[Json]:
        """Every PUT …/reply received: {review, body, status}."""
        with self._lock:
            return _copy(self._puts)

    def requests(self) -> list[Json]:
        """Every request: {method, path, query, authorization, status}."""
        with self._lock:
            return _copy(self._requests)

    def review(self, review_id: str) -> Json | None:
        with self._lock:
            return _copy(self._find(review_id))

    def revoke_token(self) -> None:
        """Every access token issued so far stops working (revoked or an hour old): 401 UNAUTHENTICATED with
        them. The token endpoint still issues new ones for a valid refresh token."""
        with self._lock:
            self._access.clear()

    def expire_access_tokens(self) -> None:
        """The hour is up for every access token issued so far (the same as `revoke_token`)."""
        self.revoke_token()

    def revoke_refresh_token(self) -> None:
        """The owner removed the app's access (or it was unused for six months): refreshes are refused."""
        with self._lock:
            self.refresh_tokens.clear()

    def authorize(self) -> str:
        """The owner consents again (offline access): a new refresh token."""
        with self._lock:
            refresh = "1//" + "".join(random.choices(string.ascii_letters + string.digits, k=60))
            self.refresh_tokens.add(refresh)
            return refresh

    def env(self) -> dict[str, str]:
        """Environment variables for `refresh_settings()` (the access token under GOOGLE_TOKEN)."""
        return {"GOOGLE_TOKEN": self.token, "GOOGLE_CLIENT_ID": self.client_id,
                "GOOGLE_CLIENT_SECRET": self.client_secret, "GOOGLE_REFRESH_TOKEN": self.refresh_token}

    def refresh_settings(self) -> Json:
        """The `sources.google_reviews` keys that make the access token renew itself against this fake."""
        return {"client_id_env": "GOOGLE_CLIENT_ID", "client_secret_env": "GOOGLE_CLIENT_SECRET",
                "refresh_token_env": "GOOGLE_REFRESH_TOKEN", "token_url": f"{self.url}/token"}

    def token_requests(self) -> list[Json]:
        """Every POST /token: {form (dict), authorization header, status, issued (access token or None), error}."""
        with self._lock:
            return _copy(self._token_requests)

    def renewals(self) -> int:
        """How many access tokens the token endpoint issued."""
        with self._lock:
            return sum(1 for r in self._token_requests if r["status"] == 200)

    def deny(self, location: str) -> None:
        """The token's account loses access to `location`: 403 PERMISSION_DENIED."""
        with self._lock:
            self._denied.add(location)

    def fail_next(self, path_prefix: str, status: int = 429, times: int = 1,
                  retry_after: float | None = None) -> None:
        """The next `times` authenticated requests under `path_prefix` answer `status` (Retry-After if given)."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, times, retry_after))

    # ---- model
    def _stamp(self, at: datetime | None) -> int:
        if at is not None:
            return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1_000
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def _find(self, review_id: str) -> Json | None:
        return next((r for reviews in self._reviews.values() for r in reviews if r["reviewId"] == review_id), None)

    # ---- HTTP
    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        self._requests.append({"method": req.method, "path": req.path, "query": req.query,
                               "authorization": req.headers.get("authorization"), "status": resp.status})
        return resp

    def _route(self, req: Request) -> Response:
        if req.method == "POST" and req.path == "/token":
            return self._oauth_token(req)
        put = _REPLY.fullmatch(req.path) if req.method == "PUT" else None
        if put:
            self._puts.append({"review": f"{put[1]}/{put[2]}/reviews/{put[3]}", "body": None, "status": 0})
            try:
                self._puts[-1]["body"] = json.loads(req.body)
            except ValueError:
                self._puts[-1]["body"] = {"_raw": req.body.decode(errors="replace")}
        resp = self._authenticated(req)
        if put:
            self._puts[-1]["status"] = resp.status
        return resp

    def _authenticated(self, req: Request) -> Response:
        header = req.headers.get("authorization") or ""
        token = header[7:] if header.startswith("Bearer ") else ""
        if time.time() >= self._access.get(token, 0.0):
            return Response(401, google_error(401),
                            {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})
        for failure in self._failures:
            if failure.times > 0 and req.path.startswith(failure.prefix):
                failure.times -= 1
                headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
                return Response(failure.status, google_error(failure.status), headers)
        if req.method == "GET" and (m := _REVIEWS.fullmatch(req.path)):
            return self._located(m[1], m[2]) or self._list(m[2], req.query)
        if req.method == "PUT" and (m := _REPLY.fullmatch(req.path)):
            return self._located(m[1], m[2]) or self._reply(m[3], req.body)
        return Response(404, google_error(404))

    def _located(self, account: str, location: str) -> Response | None:
        if account != self.account or location not in self._reviews:
            return Response(404, google_error(404))
        if location in self._denied:
            return Response(403, google_error(403))
        return None

    def _list(self, location: str, query: dict[str, list[str]]) -> Response:
        size_text = query.get("pageSize", [""])[-1]
        order = query.get("orderBy", ["updateTime desc"])[-1]
        if size_text and not re.fullmatch(r"-?\d+", size_text):
            return Response(400, google_error(400, f'Invalid value at \'page_size\' (TYPE_INT32), "{size_text}"'))
        size = int(size_text) if size_text else 0
        if size > MAX_PAGE_SIZE or size < 0:
            return Response(400, google_error(400, "Request contains an invalid argument."))
        if order not in ORDERS:
            return Response(400, google_error(400, "Request contains an invalid argument."))
        reviews = self._reviews[location]
        if order == "updateTime desc":
            ordered = sorted(reviews, key=lambda r: self._update_ns[r["reviewId"]], reverse=True)
        else:
            ordered = sorted(reviews, key=lambda r: (STAR_NAMES_INV.get(r["starRating"], 0),
                                                     self._update_ns[r["reviewId"]]), reverse=order.endswith("desc"))
        start = 0
        if token := query.get("pageToken", [""])[-1]:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, token_order = int(state["o"]), str(state["s"])
            except (ValueError, KeyError, TypeError):
                return Response(400, google_error(400, "Request contains an invalid argument."))
            if token_order != order:
                return Response(400, google_error(400, "Request contains an invalid argument."))
        size = size or MAX_PAGE_SIZE
        page = ordered[start:start + size]
        body: Json = {}
        if page:
            body["reviews"] = page
        rated = [STAR_NAMES_INV[r["starRating"]] for r in reviews if r["starRating"] in STAR_NAMES_INV]
        if rated:
            body["averageRating"] = round(sum(rated) / len(rated), 1)
        if reviews:
            body["totalReviewCount"] = len(reviews)
        if start + size < len(ordered):
            state_text = json.dumps({"o": start + size, "s": order}).encode()
            body["nextPageToken"] = base64.urlsafe_b64encode(state_text).decode()
        return Response(200, body)

    def _reply(self, review_id: str, raw: bytes) -> Response:
        review = self._find(review_id)
        if review is None:
            return Response(404, google_error(404))
        try:
            body = json.loads(raw)
        except ValueError:
            return Response(400, google_error(400, "Invalid JSON payload received."))
        comment = body.get("comment") if isinstance(body, dict) else None
        if not isinstance(comment, str) or not comment.strip():
            return Response(400, google_error(400, "Request contains an invalid argument."))
        if len(comment.encode()) > MAX_REPLY_BYTES:
            return Response(400, google_error(400, "Request contains an invalid argument."))
        ns = self._stamp(None)
        reply = {"comment": comment, "updateTime": rfc3339(ns)}
        review["reviewReply"] = reply
        if self.reply_touches_review:
            review["updateTime"] = reply["updateTime"]
            self._update_ns[review_id] = ns
        return Response(200, dict(reply))


    # ---- OAuth token endpoint (oauth2.googleapis.com/token)
    def _oauth_token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode(errors="replace")).items()}
        resp = self._token_answer(req, form)
        self._token_requests.append({"form": form, "authorization": req.headers.get("authorization"),
                                     "status": resp.status, "error": resp.body.get("error"),
                                     "issued": resp.body.get("access_token")})
        return resp

    def _token_answer(self, req: Request, form: dict[str, str]) -> Response:
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return Response(400, {"error": "invalid_request", "error_description": "Required parameter is missing: "
                                                                                   "grant_type"})
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "
                                                                                          + form.get("grant_type", "")})
        if form.get("client_id") != self.client_id:
            return Response(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("client_secret") != self.client_secret:
            return Response(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        if form.get("refresh_token") not in self.refresh_tokens:
            return Response(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        access = "ya29." + "".join(random.choices(string.ascii_letters + string.digits + "-_", k=100))
        self._access[access] = time.time() + self.access_lifetime
        return Response(200, {"access_token": access, "expires_in": self.access_lifetime, "scope": SCOPE,
                              "token_type": "Bearer"})
