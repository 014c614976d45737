"""A thin Graph API client: the Send API, comment replies, Instagram mention look-ups, profiles, /me.

The Page access token travels in the Authorization header (never in a URL that could be logged), with
`appsecret_proof` (HMAC-SHA256 of the token with the app secret) so the calls also work when the app
requires it. Graph errors are `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`,
mapped by code (Meta answers most of them with HTTP 400, whatever they mean).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from adapters.http import json_object, network_error
from adapters.http import retry_after as retry_after_header
from bot.core.errors import CredentialsError, SendError

log = logging.getLogger("socialops.meta")

Json = dict[str, Any]

TOKEN_CODES = frozenset({102, 190})
"""Invalid, expired or revoked access token (OAuthException)."""
RATE_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
"""App, user, Page and business-use-case throttling."""
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
UNREACHABLE_CODES = frozenset({551, 1545041, 2018108, 2018278, 2534022})
"""The person is unavailable (blocked the Page, deactivated) or the message falls outside the allowed window;
matched against both `code` and `error_subcode`."""
TRANSIENT_CODES = frozenset({1, 2})
DEFAULT_PAUSE_S = 60.0
MAX_PAUSE_S = 3600.0


def appsecret_proof(app_secret: str, token: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def _json_header(response: httpx.Response, name: str) -> Any:
    value = response.headers.get(name)
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def usage_pause(response: httpx.Response) -> float | None:
    """Seconds to stay away, from X-Business-Use-Case-Usage / X-App-Usage: `estimated_time_to_regain_access`
    (minutes) when Meta gives one, a minute when a usage figure reached 100 %, else None."""
    records: list[Any] = []
    business = _json_header(response, "X-Business-Use-Case-Usage")
    if isinstance(business, dict):
        for value in business.values():
            records.extend(value if isinstance(value, list) else [value])
    app = _json_header(response, "X-App-Usage")
    if app is not None:
        records.append(app)
    pause: float | None = None
    for record in records:
        if not isinstance(record, dict):
            continue
        minutes = record.get("estimated_time_to_regain_access")
        if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
            pause = max(pause or 0.0, float(minutes) * 60)
        elif any(isinstance(record.get(k), int | float) and record[k] >= 100
                 for k in ("call_count", "total_time", "total_cputime")):
            pause = max(pause or 0.0, DEFAULT_PAUSE_S)
    return pause


def graph_error(response: httpx.Response, what: str, *, token_env: str) -> SendError:
    """Meta's error → CredentialsError (bad token), a retried SendError (rate limits, outages) or a permanent
    one carrying Meta's message (permissions, the person cannot be reached, invalid requests)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or response.text[:200].strip() or response.reason_phrase)
    numbers = f"HTTP {response.status_code}" if code is None else f"code {code}" + (f"/{subcode}" if subcode else "")
    trace = f", fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else ""
    detail = f"{message} ({numbers}{trace})"
    if code in TOKEN_CODES or (response.status_code == 401 and code not in RATE_CODES):
        return CredentialsError(f"Meta refused the Page access token: {detail}. Create a new Page access token "
                                f"and put it in {token_env}.")
    if code in UNREACHABLE_CODES or subcode in UNREACHABLE_CODES:
        return SendError(f"{what}: Meta cannot deliver this to the customer now: {detail}. They are unavailable "
                         "(blocked the Page or left) or outside the messaging window; wait until they write again.",
                         permanent=True)
    if code in RATE_CODES or response.status_code == 429:
        wait = usage_pause(response) or retry_after_header(response) or DEFAULT_PAUSE_S
        return SendError(f"{what}: Meta rate limit: {detail}", permanent=False, retry_after=min(wait, MAX_PAUSE_S))
    if response.status_code >= 500 or code in TRANSIENT_CODES or error.get("is_transient") is True:
        return SendError(f"{what}: Meta is having trouble: {detail}", permanent=False)
    if code in PERMISSION_CODES:
        return SendError(f"{what}: Meta refused the permission: {detail}. Check the app's permissions (and App "
                         "Review) and that the token's user has the MESSAGE / MODERATE task on the Page.",
                         permanent=True)
    return SendError(f"{what}: Meta refused: {detail}", permanent=response.status_code != 408)


class GraphClient:
    def __init__(self, *, http: httpx.AsyncClient, graph_url: str, token: str, app_secret: str,
                 token_env: str = "META_PAGE_TOKEN", page_id: str | None = None) -> None:
        self._http = http
        self._base = graph_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._proof = appsecret_proof(app_secret, token)
        self._token_env = token_env
        self._messages_path = f"/{page_id}/messages" if page_id else "/me/messages"
        self._paused_until = 0.0

    def pause_left(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def _note_usage(self, response: httpx.Response, error: SendError | None) -> None:
        pause = usage_pause(response)
        if error is not None and error.retry_after is not None:
            pause = max(pause or 0.0, error.retry_after)
        if pause:
            self._paused_until = max(self._paused_until, time.monotonic() + min(pause, MAX_PAUSE_S))
            log.warning("Meta rate limit reached; pausing Graph calls for %.0fs", self.pause_left())

    async def _call(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None,
                    json_body: Json | None = None) -> Json:
        if self.pause_left():
            raise SendError(f"{what}: Meta rate limit, waiting", permanent=False, retry_after=self.pause_left())
        query = {**(params or {}), "appsecret_proof": self._proof}
        try:
            response = await self._http.request(method, f"{self._base}{path}", params=query, json=json_body,
                                                headers=self._headers)
        except httpx.HTTPError as error:
            raise network_error(error, what) from None
        failure = None if response.is_success else graph_error(response, what, token_env=self._token_env)
        self._note_usage(response, failure)
        if failure is not None:
            raise failure
        return json_object(response, what)

    # ---- reads
    async def node(self, node_id: str, fields: str, what: str) -> Json:
        """GET /{node}?fields=…: one object (the Page, the Instagram account, a profile)."""
        return await self._call("GET", f"/{node_id}", what, params={"fields": fields})

    async def mentioned_comment(self, ig_user_id: str, comment_id: str) -> Json:
        fields = f"mentioned_comment.comment_id({comment_id}){{id,text,username,timestamp}}"
        answer = await self.node(ig_user_id, fields, "Instagram mentioned comment")
        found = answer.get("mentioned_comment")
        return found if isinstance(found, dict) else {}

    async def mentioned_media(self, ig_user_id: str, media_id: str) -> Json:
        fields = f"mentioned_media.media_id({media_id}){{id,caption,username,timestamp,permalink}}"
        answer = await self.node(ig_user_id, fields, "Instagram mentioned media")
        found = answer.get("mentioned_media")
        return found if isinstance(found, dict) else {}

    # ---- writes
    async def send_message(self, *, recipient: dict[str, str], text: str, messaging_type: str | None,
                           tag: str | None = None) -> Json:
        """The Send API: a Messenger / Instagram message, or a private reply (recipient {comment_id})."""
        body: Json = {"recipient": recipient, "message": {"text": text}}
        if messaging_type:
            body["messaging_type"] = messaging_type
        if tag:
            body["tag"] = tag
        return await self._call("POST", self._messages_path, "Meta Send API", json_body=body)

    async def facebook_comment_reply(self, comment_id: str, text: str) -> Json:
        return await self._call("POST", f"/{comment_id}/comments", "Facebook comment reply",
                                json_body={"message": text})

    async def instagram_comment_reply(self, comment_id: str, text: str) -> Json:
        return await self._call("POST", f"/{comment_id}/replies", "Instagram comment reply",
                                json_body={"message": text})

    async def instagram_mention_reply(self, *, ig_user_id: str, media_id: str, comment_id: str | None,
                                      text: str) -> Json:
        body = {"media_id": media_id, "message": text, **({"comment_id": comment_id} if comment_id else {})}
        return await self._call("POST", f"/{ig_user_id}/mentions", "Instagram mention reply", json_body=body)
