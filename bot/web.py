"""The one web app: Slack's endpoint, platform webhooks, health and metrics, on Starlette."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.services.health import metrics as read_metrics
from storage.db import ping

Endpoint = Callable[[Request], Awaitable[Response]]


def build_web(*, engine: Engine, slack: Endpoint | None, webhooks: dict[str, Endpoint],
              lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
              extra_routes: Sequence[BaseRoute] = (), middleware: Sequence[Middleware] = ()) -> Starlette:
    async def healthz(_: Request) -> Response:
        if await asyncio.to_thread(ping, engine):
            return PlainTextResponse("ok")
        return PlainTextResponse("database unreachable", status_code=503)

    async def metrics(_: Request) -> Response:
        body = await asyncio.to_thread(read_metrics, engine)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
    if slack is not None:
        routes.append(Route("/slack/events", slack, methods=["POST"]))
    for name, endpoint in webhooks.items():
        routes.append(Route(f"/webhooks/{name}", endpoint, methods=["GET", "POST"]))
    routes.extend(extra_routes)

    async def not_found(request: Request, _exc: Exception) -> Response:
        return JSONResponse({"error": f"no such endpoint: {request.method} {request.url.path}"}, status_code=404)

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found},
                     middleware=list(middleware))


__all__ = ["build_web"]
