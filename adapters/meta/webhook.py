"""`GET|POST /webhooks/meta`: the subscription handshake and signed deliveries, over HTTP only.

GET answers Meta's `hub.challenge` when `hub.verify_token` matches. POST is verified first: the body's
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`, over the bytes exactly as received
(Meta escapes non-ASCII as `\\u00e9`; re-serialised JSON would not match). What the body means is the
`collect` function's business; the answer is 200 only after `intake.ingest` has committed the items.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from adapters.http import BodyTooLarge, read_body
from adapters.meta.parse import load
from adapters.source import Endpoint, Intake
from bot.core.errors import InvalidInput
from bot.core.model import Item

log = logging.getLogger("socialops.meta")

SIGNATURE_HEADER = "X-Hub-Signature-256"

Collect = Callable[[Any], Awaitable[list[Item]]]


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, header: str | None, body: bytes) -> bool:
    """True when `header` is the app's signature of exactly these bytes (compared in constant time)."""
    if not header:
        return False
    expected = signature(app_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().lower().encode("utf-8", "surrogateescape"))


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def meta_webhook(*, app_secret: str, verify_token: str, collect: Collect) -> Callable[[Intake], Endpoint]:
    """The endpoint factory for `SourceParts.webhook`."""

    def bind(intake: Intake) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                return handshake(request, verify_token)
            try:
                body = await read_body(request)
            except BodyTooLarge:
                return PlainTextResponse("body larger than 1 MiB", status_code=413)
            if not verify_signature(app_secret, request.headers.get(SIGNATURE_HEADER), body):
                log.warning("Meta webhook: refused a delivery with a missing or wrong %s", SIGNATURE_HEADER)
                return PlainTextResponse(f"missing or wrong {SIGNATURE_HEADER}", status_code=403)
            try:
                payload = load(body)
            except InvalidInput as error:
                return PlainTextResponse(str(error), status_code=400)
            items = await collect(payload)
            if items:
                await intake.ingest(items)
            return PlainTextResponse("EVENT_RECEIVED")

        return endpoint

    return bind


def handshake(request: Request, verify_token: str) -> Response:
    """Meta's subscription check: echo `hub.challenge` only for our verify token."""
    query = request.query_params
    if query.get("hub.mode") != "subscribe" or not token_matches(verify_token, query.get("hub.verify_token")):
        return PlainTextResponse("verify token does not match", status_code=403)
    challenge = query.get("hub.challenge")
    if not challenge:
        return PlainTextResponse("hub.challenge is missing", status_code=400)
    return PlainTextResponse(challenge)
