"""A thin X API v2 client: one method per call, errors mapped, rate limits honoured per endpoint.

Rate limits: every answer carries `x-rate-limit-limit`, `-remaining` and `-reset` (Unix seconds). When the
budget of an endpoint is spent (remaining 0) or X answers 429, that endpoint pauses until the reset: a call
during the pause raises `SendError(retry_after=<seconds left>)` without reaching X.

X takes no idempotency key. A post that fails before X saw it (no connection, 429) is safe to retry; when
the answer is lost (timeout, dropped connection, 5xx) X may have posted it: a retry of the same reply is
then refused by X's duplicate-content check, and the sender says so on the card.

The user token is either fixed (a string) or a `RefreshingToken` (OAuth 2.0 user tokens last two hours):
then every user-context call takes the token from `get()`, and a 401 renews it (`refused`) and repeats the
call once — safe for posts too, because X did nothing with a request it answered 401. Only a second 401,
or a refused renewal, is a CredentialsError. The app-only bearer token does not expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from adapters.oauth import RefreshingToken
from bot.core.errors import CredentialsError, SendError

log = logging.getLogger("socialops.x")

Auth = Literal["user", "app"]
Json = dict[str, Any]
Params = dict[str, str | int]

TWEET_FIELDS = "created_at,conversation_id,in_reply_to_user_id,referenced_tweets,author_id,entities,note_tweet"
USER_FIELDS = "name,username,public_metrics"
DM_FIELDS = "id,event_type,text,sender_id,created_at,dm_conversation_id"
MAX_PAUSE_S = 960.0
"""X's windows are 15 minutes (some 24 hours: those pause for at most this long and are asked again)."""
_CREDENTIAL_PROBLEMS = ("unsupported-authentication", "client-forbidden", "oauth1-permissions", "not-authorized-for")


class Ambiguous(SendError):
    """The request may have reached X, but its answer was lost: whether it took effect is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


def problem(response: httpx.Response) -> str:
    """X's explanation from an error body (`detail`, `errors[].message` or `title`), else the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = [e.get("message") or e.get("detail") for e in body.get("errors") or [] if isinstance(e, dict)]
        for text in (body.get("detail"), *errors, body.get("title"), body.get("reason")):
            if isinstance(text, str) and text.strip():
                return text.strip()[:300]
    return response.reason_phrase or f"HTTP {response.status_code}"


def _problem_type(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return f"{body.get('type') or ''} {body.get('reason') or ''}"


class XClient:
    def __init__(self, *, http: httpx.AsyncClient, base_url: str, user_token: str | RefreshingToken | None,
                 bearer_token: str | None = None, user_token_env: str = "X_USER_TOKEN",
                 bearer_token_env: str = "X_BEARER_TOKEN") -> None:
        """`user_token_env`: the variable to fix when X refuses the user token (with a `RefreshingToken`, the
        one holding the refresh token)."""
        self._http = http
        self._base = base_url.rstrip("/")
        self._renewing: RefreshingToken | None = None
        if isinstance(user_token, RefreshingToken):
            self._renewing, user_token = user_token, None
        self._tokens: dict[Auth, str | None] = {"user": user_token, "app": bearer_token}
        self._envs: dict[Auth, str] = {"user": user_token_env, "app": bearer_token_env}
        self._paused_until: dict[str, float] = {}

    # ---- rate limits
    def pause_left(self, endpoint: str) -> float:
        return max(0.0, self._paused_until.get(endpoint, 0.0) - time.monotonic())

    def _note_limits(self, endpoint: str, response: httpx.Response) -> None:
        remaining = response.headers.get("x-rate-limit-remaining")
        if response.status_code != 429 and (remaining is None or remaining.strip() != "0"):
            return
        wait = 60.0
        reset = response.headers.get("x-rate-limit-reset")
        if reset:
            try:
                wait = float(reset) - time.time()
            except ValueError:
                pass
        wait = max(1.0, min(wait, MAX_PAUSE_S))
        self._paused_until[endpoint] = time.monotonic() + wait
        log.warning("X rate limit reached on %s; pausing it %.0fs", endpoint, wait)

    # ---- one request
    def _refused(self, auth: Auth, status: int, detail: str) -> CredentialsError:
        env = self._envs[auth]
        if auth == "user" and self._renewing is not None:
            fix = ("authorise the app again as the brand account (OAuth 2.0 with PKCE, scopes tweet.read users.read "
                   f"tweet.write dm.read dm.write offline.access) and set the new refresh token in {env}")
            what = "the user token (renewed just now)" if status == 401 else "the user token"
        elif auth == "user":
            fix = ("create a new one (OAuth 2.0 user context, scopes tweet.read users.read tweet.write dm.read "
                   f"dm.write offline.access) and set it in {env}")
            what = "the user token"
        else:
            fix = f"regenerate the app's bearer token in the X developer console and set it in {env}"
            what = "the bearer (app-only) token"
        if status == 401:
            return CredentialsError(f"X: {what} was refused (401): {fix}")
        return CredentialsError(f"X: {what} may not do this (403: {detail}): check the app's access level "
                                f"and permissions in the X developer console, then {fix}")

    async def _call(self, method: str, path: str, *, endpoint: str, auth: Auth, what: str,
                    params: Mapping[str, str | int] | None = None, body: Json | None = None) -> Json:
        left = self.pause_left(endpoint)
        if left:
            raise SendError(f"{what}: X rate limit, waiting for the reset", permanent=False, retry_after=left)
        renewing = self._renewing if auth == "user" else None
        token = await renewing.get() if renewing is not None else self._tokens[auth]
        if not token:
            raise CredentialsError(f"{what}: no X {auth} token is configured (set {self._envs[auth]})")
        response = await self._send(method, path, params=params, body=body, token=token, what=what)
        if response.status_code == 401 and renewing is not None:
            log.info("%s: X refused the user token (401); renewing it and asking again", what)
            token = await renewing.refused(token)
            response = await self._send(method, path, params=params, body=body, token=token, what=what)
        self._note_limits(endpoint, response)
        status = response.status_code
        if status == 401:
            raise self._refused(auth, 401, problem(response))
        if status == 403 and (method == "GET" or any(p in _problem_type(response) for p in _CREDENTIAL_PROBLEMS)):
            raise self._refused(auth, 403, problem(response))
        if status == 429:
            raise SendError(f"{what}: X rate limit (429)", permanent=False,
                            retry_after=self.pause_left(endpoint) or 60.0)
        if status >= 500:
            message = f"{what}: X answered {status} {problem(response)}"
            if method == "GET" or status == 503:
                raise SendError(message, permanent=False)
            raise Ambiguous(message)
        if not response.is_success:
            raise SendError(f"{what}: X refused it ({status}): {problem(response)}", permanent=True)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if method == "GET":
                raise SendError(f"{what}: X answered something that is not a JSON object", permanent=False)
            raise Ambiguous(f"{what}: X answered {status} without a JSON object")
        return answer

    async def _send(self, method: str, path: str, *, params: Mapping[str, str | int] | None, body: Json | None,
                    token: str, what: str) -> httpx.Response:
        try:
            return await self._http.request(method, f"{self._base}{path}", params=params, json=body,
                                            headers={"Authorization": f"Bearer {token}"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise SendError(f"{what}: X unreachable: {type(error).__name__}", permanent=False) from None
        except httpx.HTTPError as error:
            if method == "GET":
                raise SendError(f"{what}: {type(error).__name__}: {error}", permanent=False) from None
            raise Ambiguous(f"{what}: X did not answer ({type(error).__name__})") from None

    # ---- calls
    async def me(self) -> Json:
        """GET /2/users/me: who the user token acts for."""
        return await self._call("GET", "/2/users/me", endpoint="users/me", auth="user", what="X users/me",
                                params={"user.fields": USER_FIELDS})

    async def mentions(self, user_id: str, *, since_id: str | None = None, until_id: str | None = None,
                       pagination_token: str | None = None, max_results: int = 100) -> Json:
        """GET /2/users/:id/mentions: posts mentioning the brand, newest first."""
        params: Params = {"max_results": max_results, "tweet.fields": TWEET_FIELDS, "expansions": "author_id",
                          "user.fields": USER_FIELDS}
        params.update({k: v for k, v in (("since_id", since_id), ("until_id", until_id),
                                         ("pagination_token", pagination_token)) if v})
        return await self._call("GET", f"/2/users/{user_id}/mentions", endpoint="users/mentions", auth="user",
                                what="X mentions", params=params)

    async def search_recent(self, query: str, *, since_id: str | None = None, until_id: str | None = None,
                            next_token: str | None = None, max_results: int = 100) -> Json:
        """GET /2/tweets/search/recent (app-only bearer token): posts of the last 7 days, newest first."""
        params: Params = {"query": query, "max_results": max_results, "tweet.fields": TWEET_FIELDS,
                          "expansions": "author_id", "user.fields": USER_FIELDS}
        params.update({k: v for k, v in (("since_id", since_id), ("until_id", until_id),
                                         ("next_token", next_token)) if v})
        return await self._call("GET", "/2/tweets/search/recent", endpoint="search/recent", auth="app",
                                what="X recent search", params=params)

    async def dm_events(self, *, pagination_token: str | None = None, max_results: int = 100) -> Json:
        """GET /2/dm_events: the brand's DM events (sent and received) of the last 30 days, newest first."""
        params: Params = {"max_results": max_results, "event_types": "MessageCreate",
                          "dm_event.fields": DM_FIELDS, "expansions": "sender_id", "user.fields": USER_FIELDS}
        if pagination_token:
            params["pagination_token"] = pagination_token
        return await self._call("GET", "/2/dm_events", endpoint="dm_events", auth="user", what="X DM events",
                                params=params)

    async def create_post(self, *, text: str, in_reply_to: str | None) -> Json:
        """POST /2/tweets as a reply, or (in_reply_to None) a post of the brand's own; answers
        {"data": {"id", "text"}}."""
        body: Json = {"text": text}
        if in_reply_to is not None:
            body["reply"] = {"in_reply_to_tweet_id": in_reply_to}
        return await self._call("POST", "/2/tweets", endpoint="tweets:create", auth="user",
                                what="X reply" if in_reply_to is not None else "X statement", body=body)

    async def send_dm(self, *, participant_id: str, text: str) -> Json:
        """POST /2/dm_conversations/with/:participant_id/messages; answers {"data": {"dm_event_id", ...}}."""
        return await self._call("POST", f"/2/dm_conversations/with/{participant_id}/messages",
                                endpoint="dm_conversations:create", auth="user", what="X DM", body={"text": text})
