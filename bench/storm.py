"""A storm through the webhook: 10,000 alike mentions (plus some unrelated chatter) into the real bot.

The bot (app.build, storms on: threshold 10 within 15 minutes, card updates at most every 5 s) runs in its own
process on SQLite with Slack's production pace (one message per second per channel); the fake Slack runs in this
process so that every Web API call it receives is timed. Prints:
  * ingest: how fast the storm was accepted (events/s), and how many members the incident has;
  * Slack calls per channel: the most in any 60-second window and in any 1-second window (chat.postMessage and
    chat.update, the calls Slack paces per channel), over the whole observation;
  * time from the last accepted mention until the incident card shows the final count;
  * grouping cost per item: the storm detector alone (bot.core.storms via bot.services.incidents.Storms) on the
    same texts, in this process.
Run: .venv/bin/python bench/storm.py [--events 10000] [--observe 75]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.common import CASES_CHANNEL, blast, machine, session, start_bot, table, webhook_request
from bot.config import StormsConfig
from bot.services.incidents import Storms
from tests.fakes.slack_api import FakeSlack

STORMS = {"threshold": 10, "window": "15m"}
PLATFORMS = ["x"] * 6 + ["facebook"] * 2 + ["instagram"] + ["mastodon"]
OPENINGS = ["@acme", "hey @acme", "@acme_help", "@acme why", "omg @acme", ""]
COMPLAINTS = ["your app crashes at checkout and my payment of {n} euros is stuck",
              "your app crashes at checkout again and my payment of {n} euros is stuck",
              "your app crashes at checkout and my payment of {n} EUR is stuck!!"]
ENDINGS = ["", " #acmedown", " this is the third time today", " unacceptable", " 😡", " please help"]
WORDS = ("ship iceland love colours summer range invoice berlin store open sunday warranty headphones size "
         "jacket return policy gift card voucher newsletter student discount opening hours parking delivery "
         "express tracking number parcel locker recycle packaging vegan leather shoes black friday sale price "
         "match cancel subscription password email address change billing invoice copy receipt loyalty points "
         "birthday coupon colour blue green red medium large small refund exchange stock restock when where how "
         "why thanks great team kind helpful quick answer question store nearest city london paris madrid rome").split()


def storm_texts(count: int, seed: int) -> list[tuple[str, bool]]:
    """(text, part of the storm): 98% copies of one complaint (people copy a viral post and change a word, the
    amount, the greeting, a hashtag), 2% unrelated questions in between."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        if rng.random() < 0.02:
            texts.append((" ".join(rng.sample(WORDS, 9)).capitalize() + "?", False))  # unrelated to anything
            continue
        text = f"{rng.choice(OPENINGS)} {rng.choice(COMPLAINTS).format(n=rng.randrange(10, 999))}{rng.choice(ENDINGS)}"
        texts.append((text.strip(), True))
    return texts


def events(texts: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for i, (text, _) in enumerate(texts):
        platform = rng.choice(PLATFORMS)
        out.append({"id": f"storm-{i}", "kind": "mention", "text": text, "platform": platform,
                    "conversation": f"storm-conv-{i}",
                    "author": {"id": f"cust-{i}", "name": f"Customer {i}", "handle": f"@cust{i}", "followers": 50},
                    "url": f"https://{platform}.example/status/storm-{i}", "created_at": "2026-12-01T10:00:00Z"})
    return out


def grouping_cost(texts: list[tuple[str, bool]]) -> float:
    """Microseconds per item for the detector alone (what ingest adds per new case), median of 3."""
    runs = []
    for _ in range(3):
        storms = Storms(StormsConfig(threshold=10, window=900))
        start = datetime(2026, 12, 1, 10, tzinfo=UTC)
        began = time.perf_counter()
        for i, (text, _) in enumerate(texts):
            storms.observe(i + 1, text, "x", start + timedelta(milliseconds=i))
        runs.append((time.perf_counter() - began) / len(texts) * 1e6)
    return sorted(runs)[1]


def incident_count(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT max(count) FROM incidents").fetchone()
        return int(row[0] or 0)
    finally:
        connection.close()


def shown_count(slack: FakeSlack) -> int:
    """The member count the incident card shows now (0 before it is posted)."""
    for message in slack.messages(CASES_CHANNEL):
        blob = str(message.get("blocks"))
        if ":cyclone: *Incident #" in blob:
            match = re.search(r"\*([\d,]+)\* alike messages", blob)
            return int(match.group(1).replace(",", "")) if match else 0
    return 0


def per_channel_windows(slack: FakeSlack) -> dict[str, tuple[int, int, float]]:
    """Per channel: (calls, most in any 60 s window, closest two calls in seconds) of chat.postMessage and
    chat.update, as the fake Slack received them."""
    times: dict[str, list[float]] = defaultdict(list)
    for call in slack.calls():
        if call["method"] in ("chat.postMessage", "chat.update") and call.get("ok"):
            times[str(call["params"].get("channel"))].append(float(call["time"]))
    result = {}
    for channel, stamps in times.items():
        stamps.sort()

        def most(width: float, stamps: list[float] = stamps) -> int:
            best, left = 0, 0
            for right, stamp in enumerate(stamps):
                while stamp - stamps[left] >= width:
                    left += 1
                best = max(best, right - left + 1)
            return best

        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        result[channel] = (len(stamps), most(60.0), min(gaps, default=float("nan")))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--observe", type=float, default=75.0,
                        help="seconds to keep watching Slack after the storm (at least 60 for a per-minute figure)")
    parser.add_argument("--verbose", action="store_true", help="print every incident card call")
    args = parser.parse_args()
    texts = storm_texts(args.events, seed=1)
    storm_items = sum(1 for _, part in texts if part)
    print(f"storm: {args.events:,} mentions ({storm_items:,} variants of one complaint, "
          f"{args.events - storm_items:,} unrelated), threshold 10 in 15 min, Slack pace 1 s/channel; {machine()}")
    requests = [webhook_request(body) for body in events(texts)]
    with tempfile.TemporaryDirectory(prefix="socialops-storm-") as directory, FakeSlack(token="xoxb-bench") as slack:
        tmp = Path(directory)
        db = tmp / "storm.db"
        child, base = await start_bot(tmp, f"sqlite:///{db}", slack.url, slack_pace=1.0, config={"storms": STORMS})
        async with child:
            async with session(args.concurrency) as http:
                seconds, statuses = await blast(http, base + "/webhooks/generic", requests, args.concurrency)
            accepted_at = time.perf_counter()
            print(f"  accepted {args.events:,} mentions in {seconds:.1f}s ({args.events / seconds:,.0f}/s): {statuses}")
            final = 0
            for _ in range(200):  # the last batch is committed before its answers went out; read the final count
                final = incident_count(db)
                if final:
                    break
                await asyncio.sleep(0.05)
            shown_at = None
            deadline = accepted_at + max(args.observe, 60.0)
            while time.perf_counter() < deadline:
                if shown_at is None and final and shown_count(slack) == final:
                    shown_at = time.perf_counter()
                await asyncio.sleep(0.05)
        windows = per_channel_windows(slack)
        if args.verbose:
            for call in slack.calls():
                blob = str(call["params"].get("blocks"))
                if ":cyclone: *Incident #" in blob:
                    match = re.search(r"\*([\d,]+)\* alike messages", blob)
                    print(f"    {call['time'] - slack.calls()[0]['time']:7.2f}s {call['method']} "
                          f"{match.group(1) if match else '?'} {call['status']}")
        cards = Counter("incident" if ":cyclone: *Incident #" in str(m.get("blocks")) else "case"
                        for m in slack.messages(CASES_CHANNEL))
    cost = grouping_cost(texts)
    print(f"  incident members: {final:,}; cards in {CASES_CHANNEL}: {cards['incident']} incident card, "
          f"{cards['case']} case cards (the members before the threshold and the unrelated questions)")
    rows = [[channel, f"{calls:,}", minute, f"{gap:.3f}s"] for channel, (calls, minute, gap) in sorted(windows.items())]
    print()
    print(table(["channel", "post+update calls", "max in any 60 s", "closest two calls"], rows))
    print()
    until = f"{shown_at - accepted_at:.1f}s" if shown_at else f"not within {args.observe:.0f}s"
    print(f"time from the last accepted mention until the incident card shows the final count ({final:,}): {until}")
    print(f"grouping cost per item (storm detector alone, median of 3): {cost:.1f} µs")
    print("targets: ≤ 60 Slack calls per minute per channel; the final count shows within a few seconds")


if __name__ == "__main__":
    asyncio.run(main())
