"""Fake "listening tool" endpoint receiving SocialOps replies for generic-webhook cases.

Request: POST <any path>, JSON {in_reply_to, conversation, text, idempotency_key}, headers
`X-SocialOps-Timestamp: <unix seconds>`, `X-SocialOps-Signature: sha256=<hex HMAC-SHA256(secret,
"<timestamp>.<raw body>")>`, `Idempotency-Key` (must equal the body's idempotency_key).
Answer: 200 {"id": "msg-<n>", "url": "<url>/messages/<n>"}; a repeated key returns the first answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from .mastodon import FakeHTTPServer, Json, Request, Response

TOLERANCE_SECONDS = 300
BODY_FIELDS = ("in_reply_to", "conversation", "text", "idempotency_key")


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The X-SocialOps-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float | str | None


class FakeReceiver(FakeHTTPServer):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self._messages: list[Json] = []
        self._answers: dict[str, Json] = {}
        self._requests: list[Json] = []
        self._failures: list[_Failure] = []

    def fail_next(self, status: int = 500, times: int = 1, retry_after: float | str | None = None) -> None:
        """The next `times` correctly signed requests answer `status` (with Retry-After if given)."""
        with self._lock:
            self._failures.append(_Failure(status, times, retry_after))

    def messages(self) -> list[Json]:
        """Distinct delivered messages: the body fields plus "id"."""
        with self._lock:
            return list(json.loads(json.dumps(self._messages)))

    def requests(self) -> list[Json]:
        """Every request: {method, path, headers, body (raw text), json (parsed or None), status}."""
        with self._lock:
            return list(json.loads(json.dumps(self._requests)))

    def handle(self, req: Request) -> Response:
        try:
            parsed = json.loads(req.body)
        except ValueError:
            parsed = None
        resp = self._handle(req, parsed)
        self._requests.append({"method": req.method, "path": req.path, "headers": dict(req.headers),
                               "body": req.body.decode(errors="replace"), "json": parsed,
                               "status": resp.status})
        return resp

    def _handle(self, req: Request, body: object) -> Response:
        if req.method != "POST":
            return Response(405, {"error": "method not allowed"})
        timestamp = req.headers.get("x-socialops-timestamp", "")
        expected = sign(self.secret, timestamp, req.body)
        if not hmac.compare_digest(expected, req.headers.get("x-socialops-signature", "")):
            return Response(401, {"error": "invalid signature"})
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return Response(401, {"error": "timestamp outside the 5 minute tolerance"})
        for failure in self._failures:
            if failure.times > 0:
                failure.times -= 1
                headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
                return Response(failure.status, {"error": "injected failure"}, headers)
        if not isinstance(body, dict) or any(f not in body for f in BODY_FIELDS) or not body["text"]:
            return Response(400, {"error": f"body must be a JSON object with {', '.join(BODY_FIELDS)}"})
        key = req.headers.get("idempotency-key")
        if not key or key != body["idempotency_key"]:
            return Response(400, {"error": "Idempotency-Key header missing or different from body"})
        if key not in self._answers:  # first delivery: store; repeats get the same answer
            n = len(self._messages) + 1
            self._answers[key] = {"id": f"msg-{n}", "url": f"{self.url}/messages/{n}"}
            self._messages.append({**body, "id": f"msg-{n}"})
        return Response(200, self._answers[key])
