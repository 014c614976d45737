"""`POST /webhooks/generic`: any listening tool can feed SocialOps through this endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from adapters import signing
from adapters.generic.parse import parse_event
from adapters.http import BodyTooLarge, read_body
from bot.core.errors import InvalidInput
from bot.core.model import Item
from bot.services.ingest import Accepted

Accept = Callable[[Item], Awaitable[Accepted]]


def generic_webhook(*, secret: str, accept: Accept) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body larger than 1 MiB"}, status_code=413)
        problem = signing.verify(secret, request.headers.get("x-socialops-timestamp"),
                                 request.headers.get("x-socialops-signature"), body)
        if problem:
            return JSONResponse({"error": problem}, status_code=401)
        try:
            item = parse_event(body)
        except InvalidInput as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        accepted = await accept(item)
        status = 200 if accepted.duplicate else 202
        return JSONResponse({"case": accepted.case_id, "duplicate": accepted.duplicate}, status_code=status)

    return endpoint
