"""Webhook ingest throughput: signed events/s through `POST /webhooks/generic` into SQLite, with deduplication.

Per run, against fresh databases:
  * ceiling: `POST /noop` on a bare Starlette app (uvicorn + aiohttp client, no work at all);
  * floor:   a bare Starlette endpoint doing only HMAC verify + JSON parse + one SQLite insert
             (WAL, synchronous=NORMAL, ON CONFLICT DO NOTHING into an items-like table);
  * real:    the bot built by app.build(), its outbox worker running against the fake Slack.
The same pre-signed events (about 10% repeated ids, about 18% follow-ups in an existing conversation)
go to the floor and the real endpoint over 32 keep-alive aiohttp connections. Prints each run and the
medians. Run: .venv/bin/python bench/ingest.py [--events 5000] [--runs 3] [--slack-pace 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CASES_CHANNEL,
    Child,
    Request,
    blast,
    machine,
    median,
    session,
    slack_history,
    start_bot,
    start_fake_slack,
    table,
    webhook_request,
)

PLATFORMS = ["x"] * 8 + ["facebook"] * 5 + ["instagram"] * 4 + ["trustpilot"] * 2 + ["tiktok"]
KINDS = ["mention"] * 10 + ["comment"] * 5 + ["dm"] * 3 + ["review"] * 2
TEXTS = ["My order never arrived", "Where is my refund? It has been two weeks.",
         "Love the new app, but the login keeps failing on Android",
         "Your support line hangs up on me every time. Order #88123.", "Great service today, thanks!"]


def workload(prefix: str, count: int, seed: int) -> tuple[list[Request], int, int]:
    """`count` signed deliveries: (requests, unique events, repeated deliveries)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    requests: list[Request] = []
    duplicates = 0
    for i in range(count):
        if events and rng.random() < 0.10:  # a tool re-delivering an event it sent earlier
            original = events[max(0, len(events) - 1 - rng.randrange(64, 4000))] if len(events) > 64 else events[0]
            requests.append(webhook_request(original))
            duplicates += 1
            continue
        platform, kind = rng.choice(PLATFORMS), rng.choice(KINDS)
        author = rng.randrange(1, 100_000)
        conversation = f"{prefix}-conv-{i}"
        if len(events) > 100 and rng.random() < 0.2:  # the customer writes again in an open conversation
            earlier = events[len(events) - 1 - rng.randrange(1, 100)]
            platform, kind, conversation = earlier["platform"], earlier["kind"], earlier["conversation"]
            author = int(earlier["author"]["id"].removeprefix("cust-"))
        body = {"id": f"{prefix}-evt-{i}", "kind": kind, "text": rng.choice(TEXTS), "platform": platform,
                "conversation": conversation,
                "author": {"id": f"cust-{author}", "name": f"Customer {author}", "handle": f"@cust{author}",
                           "followers": rng.randrange(0, 50_000)},
                "url": f"https://{platform}.example/status/{prefix}-{i}", "created_at": "2026-12-01T10:00:00Z"}
        events.append(body)
        requests.append(webhook_request(body))
    return requests, len(events), duplicates


def count_rows(db: Path, sql: str) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


async def measure(url: str, requests: list[Request], warmup: list[Request], concurrency: int,
                  ) -> tuple[float, dict[int, int]]:
    async with session(concurrency) as http:
        await blast(http, url, warmup, concurrency)
        seconds, statuses = await blast(http, url, requests, concurrency)
    return len(requests) / seconds, statuses


async def one_run(run: int, args: argparse.Namespace, tmp: Path, slack_url: str) -> dict[str, float]:
    warmup, warm_unique, _ = workload(f"w{run}", 200, seed=1000 + run)
    requests, unique, duplicates = workload(f"r{run}", args.events, seed=run)
    expected = {202: unique, 200: duplicates}
    rates: dict[str, float] = {}

    async def floor() -> None:
        db = tmp / f"floor-{run}.db"
        async with Child("floor", "--db", str(db), log_dir=tmp) as child:
            base = f"http://127.0.0.1:{await child.start()}"
            rates["ceiling"], _ = await measure(base + "/noop", requests, warmup, args.concurrency)
            rates["floor"], statuses = await measure(base + "/webhooks/generic", requests, warmup, args.concurrency)
        if statuses != expected:
            print(f"  floor answered {statuses}, expected {expected}")

    async def real() -> None:
        db = tmp / f"bot-{run}.db"
        child, base = await start_bot(tmp, f"sqlite:///{db}", slack_url, slack_pace=args.slack_pace)
        async with child:
            async with session(4) as http:
                cards_before = len(await slack_history(http, slack_url, CASES_CHANNEL))
            started = time.perf_counter()
            rates["real"], statuses = await measure(base + "/webhooks/generic", requests, warmup, args.concurrency)
            elapsed = time.perf_counter() - started
            async with session(4) as http:
                cards = len(await slack_history(http, slack_url, CASES_CHANNEL)) - cards_before
        if statuses != expected:
            print(f"  real answered {statuses}, expected {expected}")
        items = count_rows(db, "SELECT count(*) FROM items")
        pending = count_rows(db, "SELECT count(*) FROM outbox WHERE done = 0")
        if items != unique + warm_unique:
            print(f"  real stored {items} items for {unique + warm_unique} unique events")
        print(f"  run {run}: bot stored {items} items ({count_rows(db, 'SELECT count(*) FROM cases')} cases); "
              f"the outbox posted {cards} cards to {CASES_CHANNEL} in {elapsed:.1f}s, {pending} outbox rows pending")

    steps = [floor, real] if run % 2 else [real, floor]
    for step in steps:
        await step()
    rates["ratio"] = rates["real"] / rates["floor"]
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--slack-pace", type=float, default=1.0,
                        help="seconds between Slack posts per channel (production: 1.0; 0 = outbox drains flat out)")
    args = parser.parse_args()
    print(f"webhook ingest: {args.events} signed events per run (~10% repeated ids), {args.concurrency} connections, "
          f"{args.runs} runs, slack pace {args.slack_pace}s; {machine()}")
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="socialops-bench-") as directory:
        tmp = Path(directory)
        slack, slack_url = await start_fake_slack(tmp)
        async with slack:
            for run in range(1, args.runs + 1):
                rates = await one_run(run, args, tmp, slack_url)
                results.append(rates)
                print(f"  run {run}: ceiling {rates['ceiling']:,.0f}/s  floor {rates['floor']:,.0f}/s  "
                      f"real {rates['real']:,.0f}/s  real/floor {rates['ratio']:.2f}", flush=True)
    rows = [[name, f"{median([r[key] for r in results]):,.0f}", ", ".join(f"{r[key]:,.0f}" for r in results)]
            for name, key in [("empty endpoint (HTTP ceiling)", "ceiling"), ("floor: verify + 1 insert", "floor"),
                              ("real POST /webhooks/generic", "real")]]
    rows.append(["real / floor", f"{median([r['ratio'] for r in results]):.2f}",
                 ", ".join(f"{r['ratio']:.2f}" for r in results)])
    print()
    print(table(["events/s", "median", "runs"], rows))
    print("target: real >= 2,000 events/s")


if __name__ == "__main__":
    asyncio.run(main())
