"""A local fake of the Microsoft Bot Framework **Bot Connector** REST API (what Teams' ``serviceUrl`` serves).

Speaks the subset a Teams desk built on botbuilder-core needs
(https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference):

- ``POST   /v3/conversations/{conversationId}/activities``               send to conversation  -> 201 ``{"id"}``
- ``POST   /v3/conversations/{conversationId}/activities/{activityId}``  reply to activity     -> 201 ``{"id"}``
- ``PUT    /v3/conversations/{conversationId}/activities/{activityId}``  update activity      -> 200 ``{"id"}``
- ``DELETE /v3/conversations/{conversationId}/activities/{activityId}``  delete activity      -> 200, empty body

Path segments are percent-decoded (Teams ids such as ``19:cases@thread.tacv2`` or ``a:...`` are often encoded
by clients). Errors use the connector's ``ErrorResponse`` shape ``{"error": {"code", "message"}}``; a missing or
wrong bearer token answers 401 the way the connector's ASP.NET front end does (``{"message": ...}``).

Order of checks per request: auth (401) -> injected failure (``fail_next``) -> body size (413, Teams' documented
100 KB per-message limit) -> routing / validation. Built on the shared ``FakeHTTPServer`` (127.0.0.1 only,
ephemeral port, ``handle`` runs under the lock).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.fakes.mastodon import FakeHTTPServer, Request, Response, _copy

if TYPE_CHECKING:
    from tests.fakes.teams_auth import FakeBotFrameworkAuth

Json = dict[str, Any]

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 100 * 1024  # Teams: "message size limit is 100 KB" -> 413 MessageSizeTooBig
_ERROR_CODES = {
    400: "BadArgument",
    404: "NotFound",
    405: "MethodNotAllowed",
    412: "PreconditionFailed",
    413: "MessageSizeTooBig",
    429: "Throttled",
    500: "InternalServerError",
    502: "ServiceError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def error_body(status: int, message: str, code: str | None = None) -> Json:
    """The Bot Connector ``ErrorResponse`` JSON."""
    return {"error": {"code": code or _ERROR_CODES.get(status, "ServiceError"), "message": message}}


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    times: int
    code: str | None


@dataclass
class _Stored:
    id: str
    conversation: str
    activity: Json
    updated: int = 0
    reply_to: str | None = None

    def as_json(self) -> Json:
        return {"id": self.id, "conversation": self.conversation, "activity": self.activity,
                "updated": self.updated, "reply_to": self.reply_to}


class FakeBotConnector(FakeHTTPServer):
    """Fake Bot Connector service; use as a context manager. ``.url`` is the ``serviceUrl`` (trailing slash)."""

    def __init__(self, max_body: int = MAX_MESSAGE_BYTES, *, anonymous: bool = False) -> None:
        """`anonymous`: accept requests without a token, as a local client does for a bot without an App ID."""
        super().__init__()
        self.url += "/"
        self.max_body = max_body
        self.anonymous = anonymous
        self._token: str | None = None  # None: any non-empty bearer token
        self._auth: FakeBotFrameworkAuth | None = None  # set: only tokens that fake issued (and still valid)
        self._next_id = 1_700_000_000_000  # Teams message ids look like epoch milliseconds
        self._activities: dict[str, _Stored] = {}  # insertion-ordered
        self._calls: list[Json] = []
        self._failures: list[_Failure] = []

    # ---- test-side API -----------------------------------------------------------------------
    def require_token(self, token: str | None) -> None:
        """Accept only ``Authorization: Bearer <token>`` (401 otherwise); None: any non-empty bearer token."""
        with self._lock:
            self._token = token
            self._auth = None

    def require_token_from(self, auth: FakeBotFrameworkAuth | None) -> None:
        """Accept only bearer tokens ``auth`` issued and still valid (``auth.accepts``), 401 otherwise;
        None: back to any non-empty bearer token. Replaces a ``require_token`` setting."""
        with self._lock:
            self._auth = auth
            self._token = None

    def fail_next(self, status: int = 429, retry_after: int | None = None, times: int = 1,
                  code: str | None = None) -> None:
        """The next ``times`` authenticated requests answer ``status`` (e.g. 429/412/502/504) with an
        ``ErrorResponse`` body, plus ``Retry-After: <retry_after>`` when given. Nothing is stored."""
        if status < 400:
            raise ValueError(f"fail_next needs an error status, got {status}")
        with self._lock:
            self._failures.append(_Failure(status, retry_after, times, code))

    def activities(self, conversation: str | None = None) -> list[Json]:
        """Current (not deleted) activities, oldest first: {id, conversation, activity, updated, reply_to}."""
        with self._lock:
            return _copy([s.as_json() for s in self._activities.values()
                          if conversation is None or s.conversation == conversation])

    def activity(self, activity_id: str) -> Json | None:
        with self._lock:
            stored = self._activities.get(activity_id)
            return None if stored is None else _copy(stored.as_json())

    def cards(self, conversation: str | None = None) -> list[Json]:
        """The Adaptive Card contents attached to current activities, in order."""
        with self._lock:
            return _copy([a["content"] for s in self._activities.values()
                          if conversation is None or s.conversation == conversation
                          for a in s.activity.get("attachments") or []
                          if isinstance(a, dict) and a.get("contentType") == ADAPTIVE_CARD])

    def calls(self, *, with_times: bool = False) -> list[Json]:
        """Every request received: {method, path (as sent, undecoded), status} (and `at`, time.monotonic(), when
        asked `with_times`)."""
        with self._lock:
            calls = _copy(self._calls)
        if not with_times:
            for call in calls:
                del call["at"]
        return calls

    def reset(self) -> None:
        with self._lock:
            self._activities.clear()
            self._calls.clear()
            self._failures.clear()

    # ---- server side -------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        self._calls.append({"method": req.method, "path": req.path, "status": resp.status, "at": time.monotonic()})
        return resp

    def _authorized(self, req: Request) -> bool:
        if self.anonymous and not req.headers.get("authorization"):
            return True
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self._auth is not None:
            return self._auth.accepts(token)
        return self._token is None or token == self._token

    def _route(self, req: Request) -> Response:
        if not self._authorized(req):
            return Response(401, {"message": "Authorization has been denied for this request."})
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
            return Response(failure.status, error_body(failure.status, "Injected failure", failure.code), headers)
        if len(req.body) > self.max_body:
            return Response(413, error_body(413, f"Message size {len(req.body)} bytes exceeds {self.max_body}"))

        parts = req.path.split("/")  # split before decoding: an encoded %2F stays inside its segment
        if len(parts) not in (5, 6) or parts[:3] != ["", "v3", "conversations"] or parts[4] != "activities":
            return Response(404, error_body(404, f"No route for {req.method} {req.path}"))
        conversation = unquote(parts[3])
        activity_id = unquote(parts[5]) if len(parts) == 6 else None
        if not conversation or activity_id == "":
            return Response(404, error_body(404, "Empty conversation or activity id"))

        if activity_id is None:
            if req.method != "POST":
                return Response(405, error_body(405, f"{req.method} not allowed here"))
            return self._create(req, conversation, reply_to=None)
        if req.method == "POST":
            return self._create(req, conversation, reply_to=activity_id)
        if req.method == "PUT":
            return self._update(req, conversation, activity_id)
        if req.method == "DELETE":
            if self._lookup(conversation, activity_id) is None:
                return _not_found(activity_id)
            del self._activities[activity_id]
            return Response(200)
        return Response(405, error_body(405, f"{req.method} not allowed here"))

    def _lookup(self, conversation: str, activity_id: str) -> _Stored | None:
        stored = self._activities.get(activity_id)
        return stored if stored is not None and stored.conversation == conversation else None

    def _create(self, req: Request, conversation: str, reply_to: str | None) -> Response:
        activity = _parse_activity(req.body)
        if isinstance(activity, Response):
            return activity
        self._next_id += 1
        activity_id = str(self._next_id)
        activity["id"] = activity_id
        if reply_to is not None:
            activity["replyToId"] = reply_to
        self._activities[activity_id] = _Stored(activity_id, conversation, activity, reply_to=reply_to)
        return Response(201, {"id": activity_id})

    def _update(self, req: Request, conversation: str, activity_id: str) -> Response:
        stored = self._lookup(conversation, activity_id)
        if stored is None:
            return _not_found(activity_id)
        activity = _parse_activity(req.body)
        if isinstance(activity, Response):
            return activity
        activity["id"] = activity_id
        if stored.reply_to is not None:
            activity.setdefault("replyToId", stored.reply_to)
        stored.activity = activity
        stored.updated += 1
        return Response(200, {"id": activity_id})


def _not_found(activity_id: str) -> Response:
    return Response(404, error_body(404, f"Activity {activity_id} not found in this conversation"))


def _parse_activity(body: bytes) -> Json | Response:
    """The request's Activity, or a 400 response. A message needs text or attachments."""
    try:
        activity = json.loads(body) if body else None
    except ValueError:
        return Response(400, error_body(400, "Request body is not valid JSON"))
    if not isinstance(activity, dict):
        return Response(400, error_body(400, "Request body must be an Activity object"))
    if not isinstance(activity.get("type"), str) or not activity["type"]:
        return Response(400, error_body(400, "Activity.type is required"))
    attachments = activity.get("attachments")
    if attachments is not None and (
        not isinstance(attachments, list)
        or not all(isinstance(a, dict) and isinstance(a.get("contentType"), str) for a in attachments)
    ):
        return Response(400, error_body(400, "Activity.attachments must be a list of {contentType, content}"))
    if activity["type"] == "message" and not activity.get("text") and not attachments:
        return Response(400, error_body(400, "A message activity needs text or attachments"))
    return activity
