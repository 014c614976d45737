"""A thin AT Protocol (XRPC) client for one Bluesky account: session, notifications, search, posts.

Sessions: `com.atproto.server.createSession` (handle + app password) is rate limited (30 per 5 minutes,
300 a day), so the session lives in memory and is renewed with `com.atproto.server.refreshSession` when a
call answers `ExpiredToken`/`InvalidToken` (HTTP 400) or 401; only when the refresh is refused does the
client sign in again, and only a refused sign-in is a `CredentialsError`.

Rate limits: every XRPC answer carries `RateLimit-Limit/-Remaining/-Reset` (reset: epoch seconds). A 429,
or a spent budget, pauses that method until the reset: calls raise `SendError(retry_after=…)` without
reaching the server. Errors are XRPC's `{"error": name, "message": …}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.http import json_object, network_error, retry_after
from bot.core.errors import CredentialsError, SendError

log = logging.getLogger("socialops.bluesky")
Params = list[tuple[str, str | int | float | bool | None]]

CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
LIST_NOTIFICATIONS = "app.bsky.notification.listNotifications"
SEARCH_POSTS = "app.bsky.feed.searchPosts"
GET_PROFILE = "app.bsky.actor.getProfile"
CREATE_RECORD = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
MAX_PAUSE = 86_400.0
APP_PASSWORDS = "Settings → Privacy and security → App passwords"


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access: str
    refresh: str


def xrpc_error(response: httpx.Response) -> tuple[str, str]:
    """(error name, message) of an XRPC error answer; empty strings when the body says nothing."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200].strip()
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("message") or "")


def _describe(response: httpx.Response) -> str:
    name, message = xrpc_error(response)
    return f"HTTP {response.status_code}" + (f" {name}" if name else "") + (f": {message}" if message else "")


def _token_refused(response: httpx.Response) -> bool:
    """The access token is expired, revoked or unknown: renew the session and try once more."""
    if response.status_code == 401:
        return True
    return response.status_code == 400 and xrpc_error(response)[0] in TOKEN_ERRORS


class BlueskyClient:
    def __init__(self, *, http: httpx.AsyncClient, service: str, identifier: str, password: str,
                 password_env: str = "BLUESKY_APP_PASSWORD") -> None:
        self._http = http
        self._base = service.rstrip("/")
        self._identifier = identifier.removeprefix("@")
        self._password = password
        self._password_env = password_env
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self._paused: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ limits

    def pause_left(self, nsid: str | None = None) -> float:
        """Seconds until `nsid` (or any method, when None) may be called again."""
        now = time.monotonic()
        deadlines = [self._paused.get(nsid, 0.0)] if nsid else list(self._paused.values())
        return max([0.0, *(deadline - now for deadline in deadlines)])

    def _note_limits(self, nsid: str, response: httpx.Response) -> None:
        remaining = (response.headers.get("ratelimit-remaining") or "").strip()
        if response.status_code != 429 and remaining != "0":
            return
        wait: float | None = None
        reset = response.headers.get("ratelimit-reset")
        if reset:
            try:
                wait = float(reset) - time.time()
            except ValueError:
                wait = None
        if wait is None:
            wait = retry_after(response) or 60.0
        self._paused[nsid] = time.monotonic() + max(1.0, min(wait, MAX_PAUSE))
        log.warning("Bluesky rate limit reached for %s; pausing it %.0fs", nsid, self.pause_left(nsid))

    def _check_pause(self, nsid: str, what: str) -> None:
        left = self.pause_left(nsid)
        if left > 0:
            raise SendError(f"Bluesky {what}: rate limit reached, it resets in {left:.0f}s", permanent=False,
                            retry_after=left)

    def _error(self, nsid: str, response: httpx.Response, what: str) -> SendError:
        message = f"Bluesky {what}: {_describe(response)}"
        if response.status_code == 429:
            return SendError(message, permanent=False, retry_after=self.pause_left(nsid) or None)
        return SendError(message, permanent=response.status_code < 500 and response.status_code != 408)

    # ------------------------------------------------------------------------------------------ transport

    async def _raw(self, method: str, nsid: str, *, token: str | None,
                   params: Params | None = None, body: dict[str, Any] | None = None,
                   ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.request(method, f"{self._base}/xrpc/{nsid}", params=params, json=body,
                                                 headers=headers)
        except httpx.HTTPError as error:
            raise network_error(error, f"Bluesky {nsid}") from None
        self._note_limits(nsid, response)
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        return json_object(response, f"Bluesky {what}" if not what.startswith("Bluesky") else what)

    async def _call(self, method: str, nsid: str, what: str, *, params: Params | None = None,
                    body: dict[str, Any] | None = None) -> httpx.Response:
        """An authenticated call; an expired or refused token renews the session once."""
        self._check_pause(nsid, what)
        session = await self.session()
        response = await self._raw(method, nsid, token=session.access, params=params, body=body)
        if _token_refused(response):
            await self._renew(session.access)
            session = await self.session()
            response = await self._raw(method, nsid, token=session.access, params=params, body=body)
            if _token_refused(response):
                raise CredentialsError(f"Bluesky {what}: refused with a fresh session ({_describe(response)}); "
                                       f"check the account and the app password in {self._password_env}")
        return response

    async def _xrpc(self, method: str, nsid: str, what: str, *, params: Params | None = None,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self._call(method, nsid, what, params=params, body=body)
        if not response.is_success:
            raise self._error(nsid, response, what)
        return self._json(response, what)

    # ------------------------------------------------------------------------------------------ session

    async def session(self) -> Session:
        """The cached session; signs in only when there is none."""
        if self._session is None:
            async with self._lock:
                if self._session is None:
                    self._session = await self._create_session()
        return self._session

    def _parse_session(self, response: httpx.Response, what: str) -> Session:
        body = self._json(response, what)
        values = [body.get(key) for key in ("did", "handle", "accessJwt", "refreshJwt")]
        if not all(isinstance(value, str) and value for value in values):
            raise SendError(f"Bluesky {what}: the answer has no session", permanent=False)
        did, handle, access, refresh = (str(value) for value in values)
        return Session(did=did, handle=handle, access=access, refresh=refresh)

    async def _create_session(self) -> Session:
        self._check_pause(CREATE_SESSION, "sign-in")
        response = await self._raw("POST", CREATE_SESSION, token=None,
                                   body={"identifier": self._identifier, "password": self._password})
        if response.status_code in (400, 401, 403):
            name = xrpc_error(response)[0]
            hint = (" This is the account password with two-factor sign-in: use an app password."
                    if name == "AuthFactorTokenRequired" else "")
            raise CredentialsError(
                f"Bluesky: signing in as {self._identifier} was refused ({_describe(response)}).{hint} "
                f"Create an app password ({APP_PASSWORDS}) and put it in {self._password_env}; "
                f"sources.bluesky.handle must be the account's handle.")
        if not response.is_success:
            raise self._error(CREATE_SESSION, response, "sign-in")
        session = self._parse_session(response, "sign-in")
        log.info("Bluesky: signed in as @%s (%s)", session.handle, session.did)
        return session

    async def _renew(self, refused_access: str) -> None:
        """Refresh the session whose access token was refused (unless another call already did); sign in
        again only when the refresh itself is refused."""
        async with self._lock:
            current = self._session
            if current is not None and current.access != refused_access:
                return
            if current is not None:
                self._check_pause(REFRESH_SESSION, "session refresh")
                response = await self._raw("POST", REFRESH_SESSION, token=current.refresh)
                if response.is_success:
                    self._session = self._parse_session(response, "session refresh")
                    return
                if response.status_code not in (400, 401, 403):
                    raise self._error(REFRESH_SESSION, response, "session refresh")
                log.info("Bluesky: session refresh refused (%s); signing in again", _describe(response))
                self._session = None
            self._session = await self._create_session()

    # ------------------------------------------------------------------------------------------ calls

    async def list_notifications(self, *, cursor: str | None = None, limit: int = 50,
                                 reasons: tuple[str, ...] = ("mention", "reply", "quote")) -> dict[str, Any]:
        """One page, newest first. `priority=false`: every account's notifications, not only followed ones."""
        params: Params = [("limit", limit), ("priority", "false")]
        params += [("reasons", reason) for reason in reasons]
        if cursor:
            params.append(("cursor", cursor))
        return await self._xrpc("GET", LIST_NOTIFICATIONS, "notifications", params=params)

    async def search_posts(self, *, q: str, cursor: str | None = None, limit: int = 25) -> dict[str, Any]:
        """One page of posts matching `q`, newest first."""
        params: Params = [("q", q), ("sort", "latest"), ("limit", limit)]
        if cursor:
            params.append(("cursor", cursor))
        return await self._xrpc("GET", SEARCH_POSTS, "search", params=params)

    async def get_profile(self, actor: str) -> dict[str, Any]:
        return await self._xrpc("GET", GET_PROFILE, "profile", params=[("actor", actor)])

    async def create_record(self, *, collection: str, record: dict[str, Any], rkey: str | None = None,
                            ) -> dict[str, Any]:
        """Writes `record` to the signed-in account's repo; returns {uri, cid, …}."""
        session = await self.session()
        body: dict[str, Any] = {"repo": session.did, "collection": collection, "record": record}
        if rkey:
            body["rkey"] = rkey
        answer = await self._xrpc("POST", CREATE_RECORD, "post", body=body)
        if not isinstance(answer.get("uri"), str) or not isinstance(answer.get("cid"), str):
            raise SendError("Bluesky post: the answer has no uri and cid", permanent=False)
        return answer

    async def get_record(self, *, repo: str, collection: str, rkey: str) -> dict[str, Any] | None:
        """The record {uri, cid, value}, or None when it does not exist (RecordNotFound)."""
        params: Params = [("repo", repo), ("collection", collection), ("rkey", rkey)]
        response = await self._call("GET", GET_RECORD, "record lookup", params=params)
        if (response.status_code == 400 and xrpc_error(response)[0] == "RecordNotFound") or response.status_code == 404:
            return None
        if not response.is_success:
            raise self._error(GET_RECORD, response, "record lookup")
        return self._json(response, "record lookup")
