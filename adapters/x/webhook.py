"""The optional Account Activity webhook at GET|POST /webhooks/x.

- GET `?crc_token=…` (X's challenge-response check, at registration and about hourly): answer
  `{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, crc_token))}`; no token → 400.
- POST: `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer secret, raw body)>`, checked over the
  raw bytes in constant time before anything is read (forged or missing → 403, nothing stored); bodies over
  1 MiB → 413; malformed JSON → 400. Mentions, replies and DMs from others become items, answered 200 only
  after `intake.ingest` committed them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.http import BodyTooLarge, read_body
from adapters.source import Endpoint, Intake
from adapters.x.parse import parse_activity

log = logging.getLogger("socialops.x")

SIGNATURE_HEADER = "x-twitter-webhooks-signature"


def signature(consumer_secret: str, payload: bytes) -> str:
    """`sha256=<base64 HMAC-SHA256>`: the CRC response token (payload = crc_token) and the POST signature."""
    digest = hmac.new(consumer_secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def verify(consumer_secret: str, header: str | None, body: bytes) -> bool:
    if not header:
        return False
    return hmac.compare_digest(signature(consumer_secret, body).encode(), header.strip().encode("utf-8", "replace"))


def make_endpoint(intake: Intake, *, consumer_secret: str, brand_id: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            token = request.query_params.get("crc_token")
            if not token:
                return JSONResponse({"error": "crc_token is missing"}, status_code=400)
            return JSONResponse({"response_token": signature(consumer_secret, token.encode())})
        if request.method != "POST":
            return Response(status_code=405)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not verify(consumer_secret, request.headers.get(SIGNATURE_HEADER), body):
            log.warning("X webhook: refused a delivery with a missing or wrong signature")
            return JSONResponse({"error": "signature does not match"}, status_code=403)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body is not a JSON object"}, status_code=400)
        items = parse_activity(payload, brand_id=brand_id)
        if items:
            await intake.ingest(items)
        return JSONResponse({"accepted": len(items)})

    return endpoint
