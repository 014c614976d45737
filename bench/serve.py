"""Child processes for the benchmarks (started by bench/common.py; not a benchmark itself).

    serve.py slack                         the fake Slack Web API (tests/fakes/slack_api.py); prints READY <url>
    serve.py bot --database-url URL --slack-url URL [--slack-pace S] [--profile FILE]
                                           the real app: app.build(...) served by uvicorn; prints READY <port>
    serve.py floor --db PATH               bare Starlette: POST /webhooks/generic does only HMAC verify + JSON
                                           parse + one SQLite insert (WAL, synchronous=NORMAL); POST /noop
                                           answers at once (HTTP ceiling); prints READY <port>
    serve.py bolt-floor --slack-url URL    a bare Bolt app whose Claim listener only acks; prints READY <port>

Everything binds 127.0.0.1 on a free port. SIGTERM stops the process; --profile writes a cProfile of the
event-loop thread (not the worker threads running the SQL) on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from adapters import signing  # noqa: E402
from tests.kit.slack import SIGNING_SECRET  # noqa: E402
from tests.kit.webhook import GENERIC_SECRET  # noqa: E402

SLACK_TOKEN = "xoxb-bench"


def bench_config() -> dict[str, Any]:
    """Like the tests' configuration: one case channel, an escalation channel, a DM route, one check-in."""
    return {
        "slack": {"channel": "C0CASES", "escalation_channel": "C0ESC", "oncall": "U0CAROL"},
        "routes": [{"when": {"kind": "dm"}, "channel": "C0DMS"}],
        "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}},
        "followups": [{"after": "1d", "text": "Hi {first_name}, checking in: is everything sorted now?"}],
        "saved_replies": [{"title": "Sorry", "text": "Hi {first_name}, sorry about that. Could you DM us?"}],
    }


def listening_socket() -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when it sees that proto;
    # with proto 0 every response waits ~40 ms for a delayed ACK (Nagle) and the benchmark measures that.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(app: Any) -> None:
    sock = listening_socket()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=2048)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await task


# ---- the real bot ---------------------------------------------------------------------------------------------

def build_bot(database_url: str, slack_url: str, slack_pace: float, extra: dict[str, Any] | None = None) -> Any:
    from app import build
    from bot.config import Settings, config_from_mapping

    settings = Settings(database_url=database_url, slack_bot_token=SLACK_TOKEN, slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=slack_url, host="127.0.0.1", port=0)
    env = {"GENERIC_WEBHOOK_SECRET": GENERIC_SECRET}
    return build(settings, config_from_mapping({**bench_config(), **(extra or {})}), env, slack_pace=slack_pace)


# ---- floor: the same work as the webhook, and nothing else -------------------------------------------------------

FLOOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, platform VARCHAR(40) NOT NULL, platform_id VARCHAR(400) NOT NULL,
    kind VARCHAR(20) NOT NULL, author_id VARCHAR(200) NOT NULL, author_name VARCHAR(200) NOT NULL,
    text VARCHAR NOT NULL, url VARCHAR, raw JSON NOT NULL, received_at DATETIME NOT NULL,
    CONSTRAINT uq_item_platform_id UNIQUE (platform, platform_id))
"""
FLOOR_INSERT = """
INSERT INTO items (platform, platform_id, kind, author_id, author_name, text, url, raw, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, platform_id) DO NOTHING RETURNING id
"""


def floor_app(db_path: str) -> Starlette:
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(db_path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            local.conn = conn
        return conn

    setup = connection()
    setup.execute(FLOOR_SCHEMA)
    setup.commit()

    def insert(data: dict[str, Any]) -> bool:
        conn = connection()
        author = data.get("author") or {}
        row = conn.execute(FLOOR_INSERT, (
            data.get("platform") or "generic", str(data["id"]), str(data["kind"]), str(author.get("id")),
            str(author.get("name") or ""), str(data["text"]), data.get("url"), json.dumps(data),
            time.strftime("%Y-%m-%d %H:%M:%S"),
        )).fetchone()
        conn.commit()
        return row is None

    async def webhook(request: Request) -> Response:
        body = await request.body()
        problem = signing.verify(GENERIC_SECRET, request.headers.get("x-socialops-timestamp"),
                                 request.headers.get("x-socialops-signature"), body)
        if problem:
            return JSONResponse({"error": problem}, status_code=401)
        data = json.loads(body)
        duplicate = await asyncio.to_thread(insert, data)
        return JSONResponse({"duplicate": duplicate}, status_code=200 if duplicate else 202)

    async def noop(request: Request) -> Response:
        await request.body()
        return JSONResponse({"duplicate": False}, status_code=202)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/webhooks/generic", webhook, methods=["POST"]),
                             Route("/noop", noop, methods=["POST"]), Route("/healthz", healthz)])


def bolt_floor_app(slack_url: str) -> Starlette:
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=SLACK_TOKEN, base_url=slack_url, retry_handlers=[])
    bolt = AsyncApp(signing_secret=SIGNING_SECRET, client=client, process_before_response=False)

    async def claim(ack: AsyncAck) -> None:
        await ack()

    bolt.action("case.claim")(claim)
    bolt.action("case.release")(claim)
    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz)])


# ---- fake Slack -----------------------------------------------------------------------------------------------

def run_fake_slack() -> None:
    from tests.fakes import slack_api

    server_class = getattr(slack_api, "_Server", None)
    if server_class is not None:  # the stdlib default backlog (5) drops bursts of connections
        server_class.request_queue_size = 128
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with slack_api.FakeSlack(token=SLACK_TOKEN) as fake:
        print(f"READY {fake.url}", flush=True)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["slack", "bot", "floor", "bolt-floor"])
    parser.add_argument("--database-url")
    parser.add_argument("--db")
    parser.add_argument("--slack-url")
    parser.add_argument("--slack-pace", type=float, default=1.0)
    parser.add_argument("--profile")
    parser.add_argument("--config-json", help="top-level configuration keys to add (JSON), e.g. storms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.mode == "slack":
        run_fake_slack()
        return
    # uvicorn handles SIGTERM, then re-raises it after a clean shutdown: let that re-raise end main() normally.
    signal.signal(signal.SIGTERM, lambda *_: None)
    if args.mode == "bot":
        import json

        extra = json.loads(args.config_json) if args.config_json else None
        app = build_bot(args.database_url, args.slack_url, args.slack_pace, extra).web
    elif args.mode == "floor":
        app = floor_app(args.db)
    else:
        app = bolt_floor_app(args.slack_url)
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(serve(app))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        from app import run_async

        run_async(serve(app))  # the event loop the product runs on (app.main)


if __name__ == "__main__":
    main()
