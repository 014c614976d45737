"""Shared helpers for the benchmarks: child servers, signed requests, load generation and statistics.

Load is generated with aiohttp (never httpx: its pool degrades under concurrency, see
/work/shared/recipes/benchmarking.md). Servers run as child processes (`bench/serve.py`), so the load
generator does not share a CPU/GIL with the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters import signing  # noqa: E402
from tests.kit.slack import SIGNING_SECRET, block_action, signed_headers  # noqa: E402
from tests.kit.webhook import GENERIC_SECRET  # noqa: E402

PYTHON = sys.executable
SERVE = str(ROOT / "bench" / "serve.py")
SLACK_TOKEN = "xoxb-bench"
CASES_CHANNEL = "C0CASES"

__all__ = ["CASES_CHANNEL", "GENERIC_SECRET", "SIGNING_SECRET", "SLACK_TOKEN", "block_action", "signed_headers"]

Request = tuple[bytes, dict[str, str]]


# ---- child processes ------------------------------------------------------------------------------------------

class Child:
    """`bench/serve.py <mode> …` in a subprocess; `start()` returns what it printed after READY."""

    def __init__(self, mode: str, *args: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.argv = [PYTHON, SERVE, mode, *args]
        self.log_path = log_dir / f"{mode}-{time.monotonic_ns()}.log"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 60.0) -> str:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                cwd=str(ROOT), env=self.env)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        except TimeoutError:
            line = b""
        text = line.decode().strip()
        if not text.startswith("READY "):
            await self.stop()
            raise RuntimeError(f"{' '.join(self.argv)} did not start; log:\n{self.log()}")
        return text.removeprefix("READY ")

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Child:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


async def start_fake_slack(log_dir: Path) -> tuple[Child, str]:
    """The fake Slack Web API (tests/fakes/slack_api.py) in its own process; returns (child, base url)."""
    child = Child("slack", log_dir=log_dir)
    url = await child.start()
    return child, url


async def start_bot(log_dir: Path, database_url: str, slack_url: str, *, slack_pace: float,
                    config: dict[str, Any] | None = None) -> tuple[Child, str]:
    """The real app (app.build) on uvicorn in its own process; returns (child, http://127.0.0.1:PORT).
    `config`: top-level configuration keys added to the benchmark's configuration (e.g. storms)."""
    extra = ["--config-json", json.dumps(config)] if config else []
    child = Child("bot", "--database-url", database_url, "--slack-url", slack_url, "--slack-pace", str(slack_pace),
                  *extra, log_dir=log_dir)
    port = await child.start()
    return child, f"http://127.0.0.1:{port}"


# ---- requests -------------------------------------------------------------------------------------------------

def webhook_request(event: dict[str, Any], now: float | None = None) -> Request:
    """A generic-webhook delivery signed like production (adapters/signing.py)."""
    raw = json.dumps(event).encode()
    return raw, {"Content-Type": "application/json", **signing.headers(GENERIC_SECRET, raw, now)}


def event(event_id: str, *, conversation: str, kind: str = "mention", platform: str = "x", author: int = 1,
          text: str = "My order never arrived and nobody answers the phone") -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "text": text, "platform": platform, "conversation": conversation,
            "author": {"id": f"cust-{author}", "name": f"Customer {author}", "handle": f"@cust{author}",
                       "followers": 100 + author % 5000},
            "url": f"https://{platform}.example/status/{event_id}", "created_at": "2026-12-01T10:00:00Z"}


def slack_form(payload: dict[str, Any]) -> Request:
    """An interaction exactly as Slack posts it: form-encoded `payload=` and signed."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, signed_headers(body)


def slash_command(text: str, *, user_id: str = "U0ALICE", name: str = "alice") -> Request:
    body = urlencode({
        "token": "legacy", "team_id": "T0FAKE", "team_domain": "acme", "channel_id": CASES_CHANNEL,
        "channel_name": "cases", "user_id": user_id, "user_name": name, "command": "/social", "text": text,
        "api_app_id": "AFAKE", "response_url": "https://hooks.slack.test/commands/1",
        "trigger_id": f"trigger-{time.monotonic_ns()}",
    }).encode()
    return body, signed_headers(body)


def session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))


async def timed_post(http: aiohttp.ClientSession, url: str, request: Request) -> tuple[int, float, bytes]:
    """(status, seconds from sending to having read the whole answer, body)."""
    body, headers = request
    started = time.perf_counter()
    async with http.post(url, data=body, headers=headers) as response:
        content = await response.read()
    return response.status, time.perf_counter() - started, content


async def blast(http: aiohttp.ClientSession, url: str, requests: Sequence[Request], concurrency: int,
                ) -> tuple[float, dict[int, int]]:
    """Send all `requests` over `concurrency` workers (keep-alive connections); (seconds, count per status)."""
    statuses: dict[int, int] = {}
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(requests):
            body, headers = requests[position]
            position += 1
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, statuses


# ---- fake Slack, read over its HTTP API (it runs in another process) --------------------------------------------

async def slack_history(http: aiohttp.ClientSession, slack_url: str, channel: str) -> list[dict[str, Any]]:
    """Top-level messages in `channel` (newest first), with their metadata."""
    async with http.post(slack_url + "conversations.history",
                         data={"channel": channel, "limit": "100000", "include_all_metadata": "true"},
                         headers={"Authorization": f"Bearer {SLACK_TOKEN}"}) as response:
        answer = await response.json()
    assert answer.get("ok"), answer
    return list(answer["messages"])


def card_case_id(message: dict[str, Any]) -> int | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "case.claim" or element.get("action_id") == "case.release":
                return int(element["value"])
    return None


def outbox_pending(db_path: Path) -> int:
    """Undelivered outbox rows, read straight from the SQLite file (WAL readers never block the bot)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute("SELECT count(*) FROM outbox WHERE done = 0").fetchone()[0])
    finally:
        connection.close()


async def wait_until_settled(db_path: Path, within: float = 60.0) -> None:
    """Until the bot's outbox has delivered everything (or `within` seconds passed)."""
    for _ in range(int(within / 0.05)):
        if not outbox_pending(db_path):
            return
        await asyncio.sleep(0.05)


# ---- statistics and output --------------------------------------------------------------------------------------

def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
