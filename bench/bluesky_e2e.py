"""End to end on Bluesky's reference network: a customer's mention → the case card in Slack.

Starts the network (tests/kit/bluesky_net.py: PLC + PDS + AppView, `bash tests/bluesky_net/install.sh`),
creates acme.test (the brand) and customer.test, then:
  * floor: the customer posts mentions before the bot runs; the time from just before createRecord to the
    mention in acme.test's listNotifications (asked again 10 ms after each answer): how long the network itself
    takes to show it, the part no poller can avoid;
  * real:  the bot (app.build, Bluesky source polling every 1 s) in its own process, served by uvicorn, with
    the fake Slack (tests/fakes/slack_api.py) in this process; the customer posts mentions one at a time,
    1.5–2.5 s apart at random, each with a unique text; latency is from just before the createRecord call to
    the moment a card containing that text is among FakeSlack's messages (looked at every 10 ms).
Prints how long the network took to start, the floor, median / p95 / max of the real latency, and the real
latency in stages: createRecord; until the bot stored the item (its received_at, read from its SQLite file
afterwards); until FakeSlack received the card's chat.postMessage (its call log).

Run: .venv/bin/python bench/bluesky_e2e.py [--posts 50] [--floor-posts 10] [--poll-every 1s] [--slack-pace 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CASES_CHANNEL,
    PYTHON,
    SIGNING_SECRET,
    SLACK_TOKEN,
    Child,
    machine,
    median,
    percentile,
    table,
)
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.kit.bluesky_net import Json, Network, Session, local_bluesky, mention_facet  # noqa: E402

BRAND = "acme.test"
BRAND_PASSWORD = "brand-app-password"
CUSTOMER = "customer.test"
CURSOR = "bluesky:notifications"
LOOK_EVERY = 0.010
TARGET_P95 = 2.0
TEXTS = ["my order never arrived 📦", "سفارش من هنوز نرسیده — لطفاً کمک کنید", "where is my refund? 😡",
         "the app logs me out every time 👩🏽‍💻", "wrong size again, cafe\u0301 ☕"]


# ---- the bot, in its own process ------------------------------------------------------------------------------

def run_bot(args: argparse.Namespace) -> None:
    """Child: the real app with a Bluesky source, served by uvicorn on loopback; prints READY <port>."""
    import logging
    import os
    import signal

    from app import build, run_async
    from bench.serve import serve
    from bot.config import Settings, config_from_mapping

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn handles it (as in bench/serve.py)
    settings = Settings(database_url=args.database_url, slack_bot_token=SLACK_TOKEN,
                        slack_signing_secret=SIGNING_SECRET, slack_api_url=args.slack_url, host="127.0.0.1", port=0)
    config = {"slack": {"channel": CASES_CHANNEL, "escalation_channel": "C0ESC"},
              "sources": {"bluesky": {"service": args.pds, "handle": BRAND, "poll_every": args.poll_every}}}
    env = {"BLUESKY_APP_PASSWORD": os.environ["BLUESKY_APP_PASSWORD"]}
    runtime = build(settings, config_from_mapping(config), env, slack_pace=args.slack_pace)
    run_async(serve(runtime.web))


class BotChild(Child):
    """`bench/bluesky_e2e.py bot …` in a subprocess (bench/common.py's Child runs bench/serve.py)."""

    def __init__(self, *args: str, log_dir: Path, env: dict[str, str]) -> None:
        super().__init__("bluesky-bot", *args, log_dir=log_dir, env=env)
        self.argv = [PYTHON, str(Path(__file__).resolve()), "bot", *args]


def stored_cursor(db: Path) -> str | None:
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return None
    try:
        row = connection.execute("SELECT value FROM cursors WHERE name = ?", (CURSOR,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


@dataclass
class Post:
    """One timed mention: wall-clock times (time.time()) and seconds since just before createRecord."""

    tag: str
    uri: str
    wall: float
    """time.time() just before the createRecord call."""
    seconds: float
    """Until a card with the post's text was among FakeSlack's messages."""
    posted: float
    """How long the createRecord call took."""
    stored: float | None = None
    """The item's received_at in the bot's database."""
    at_slack: float | None = None
    """When FakeSlack received the card's chat.postMessage."""


def wall_time(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def stored_items(db: Path) -> dict[str, float | None]:
    """at-uri → the item's received_at, from the bot's SQLite file. (The notification's indexedAt is no help:
    the AppView gives the earlier of indexedAt and the post's createdAt, which the client sets.)"""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT platform_id, received_at FROM items WHERE platform = 'bluesky'")
        return {str(uri): wall_time(received) for uri, received in rows}
    finally:
        connection.close()


# ---- posting and watching -------------------------------------------------------------------------------------

def mention_record(text: str, brand_did: str) -> Json:
    """An app.bsky.feed.post mentioning the brand (facet over "@acme.test", UTF-8 byte offsets)."""
    return {"$type": "app.bsky.feed.post", "text": text, "langs": ["en"],
            "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "facets": [mention_facet(text, f"@{BRAND}", brand_did)]}


def create(net: Network, customer: Session, record: Json) -> str:
    created = net.xrpc_post("com.atproto.repo.createRecord",
                            {"repo": customer.did, "collection": "app.bsky.feed.post", "record": record}, customer)
    return str(created["uri"])


def unique_text(i: int, rng: random.Random, prefix: str = "e2e") -> tuple[str, str]:
    tag = f"{prefix}-{i:03d}-{secrets.token_hex(3)}"
    return tag, f"@{BRAND} {rng.choice(TEXTS)} (ref {tag})"


def card_with(slack: FakeSlack, tag: str, after: int = 0) -> Json | None:
    """The card showing `tag`, among the channel's messages after the first `after` (posted before)."""
    for message in slack.messages(CASES_CHANNEL)[after:]:
        if tag in json.dumps(message.get("blocks") or [], ensure_ascii=False):
            return message
    return None


def floor(net: Network, brand: Session, customer: Session, count: int, rng: random.Random) -> list[float]:
    """createRecord → the mention in the brand's listNotifications, asked every 10 ms; before the bot runs."""
    seconds: list[float] = []
    for i in range(count):
        _, text = unique_text(i, rng, "floor")
        record = mention_record(text, brand.did)
        started = time.perf_counter()
        uri = create(net, customer, record)
        while True:
            page = net.xrpc_get("app.bsky.notification.listNotifications", brand, limit=10, priority="false")
            if any(n.get("uri") == uri for n in page["notifications"]):
                break
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"the AppView never showed {uri} in {BRAND}'s notifications")
            time.sleep(LOOK_EVERY)
        seconds.append(time.perf_counter() - started)
        time.sleep(rng.uniform(0.2, 0.5))
    return seconds


async def measure(args: argparse.Namespace, net: Network, brand: Session, customer: Session, slack: FakeSlack,
                  tmp: Path, rng: random.Random) -> dict[str, Any]:
    db = tmp / "bot.db"
    env = {"BLUESKY_APP_PASSWORD": BRAND_PASSWORD}
    child = BotChild("--database-url", f"sqlite:///{db}", "--slack-url", slack.url, "--pds", net.pds_url,
                     "--poll-every", args.poll_every, "--slack-pace", str(args.slack_pace), log_dir=tmp, env=env)
    found: dict[str, Any] = {}
    async with child:
        started = time.perf_counter()
        await child.start()
        found["ready"] = time.perf_counter() - started
        while stored_cursor(db) is None:  # the bot has logged in and polled once: posts from now on are new
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"the bot never stored a Bluesky cursor; log:\n{child.log()}")
            await asyncio.sleep(0.05)
        found["polled"] = time.perf_counter() - started

        async def one(i: int) -> Post | None:
            tag, text = unique_text(i, rng)
            record = mention_record(text, brand.did)
            before = len(slack.messages(CASES_CHANNEL))
            wall, started = time.time(), time.perf_counter()
            uri = await asyncio.to_thread(create, net, customer, record)
            posted = time.perf_counter() - started
            while card_with(slack, tag, before) is None:
                if time.perf_counter() - started > args.timeout:
                    print(f"  no card for {tag} after {args.timeout:.0f} s", flush=True)
                    return None
                await asyncio.sleep(LOOK_EVERY)
            return Post(tag=tag, uri=uri, wall=wall, seconds=time.perf_counter() - started, posted=posted)

        warm = await one(0)
        found["warmup"] = warm.seconds if warm else float("nan")
        await asyncio.sleep(rng.uniform(1.5, 2.5))
        results: list[Post] = []
        late_starts = 0
        for i in range(1, args.posts + 1):
            began = time.perf_counter()
            result = await one(i)
            if result is not None:
                results.append(result)
            gap = rng.uniform(1.5, 2.5)
            left = gap - (time.perf_counter() - began)
            if left > 0:
                await asyncio.sleep(left)
            else:
                late_starts += 1
            recent = [r.seconds for r in results[-10:]]
            if i % 10 == 0 and recent:
                print(f"  {i} posts: last ten median {median(recent):.2f} s, max {max(recent):.2f} s", flush=True)
        found["late_starts"] = late_starts
        found["results"] = results
        await asyncio.sleep(3)  # anything posted twice would show by now
    # When Slack itself received each card (FakeSlack's call log, so without the 10 ms look interval), and when
    # the bot stored each post (read from the bot's database once it has stopped).
    for call in slack.calls("chat.postMessage"):
        blocks = json.dumps(call["params"].get("blocks") or [], ensure_ascii=False)
        for post in results:
            if post.tag in blocks and call["ok"] and post.at_slack is None:
                post.at_slack = call["time"]
    stored = stored_items(db)
    for post in results:
        post.stored = stored.get(post.uri)
    cards = slack.messages(CASES_CHANNEL)
    found["duplicates"] = sum(1 for post in results
                              if sum(post.tag in json.dumps(m.get("blocks") or [], ensure_ascii=False)
                                     for m in cards) > 1)
    found["cards"] = len(cards)
    return found


def summary(name: str, values: list[float]) -> list[str]:
    if not values:
        return [name, "0", "-", "-", "-", "-"]
    return [name, str(len(values)), f"{median(values):.3f}", f"{percentile(values, 0.95):.3f}", f"{max(values):.3f}",
            f"{min(values):.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    bot = sub.add_parser("bot", help="(internal) the bot process")
    bot.add_argument("--database-url", required=True)
    bot.add_argument("--slack-url", required=True)
    bot.add_argument("--pds", required=True)
    bot.add_argument("--poll-every", default="1s")
    bot.add_argument("--slack-pace", type=float, default=1.0)
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--floor-posts", type=int, default=10)
    parser.add_argument("--poll-every", default="1s", help="the Bluesky source's poll_every")
    parser.add_argument("--slack-pace", type=float, default=1.0,
                        help="seconds between Slack posts per channel (production: 1.0)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one card")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.mode == "bot":
        run_bot(args)
        return

    rng = random.Random(args.seed)
    print(f"bluesky end to end: {args.posts} mentions, 1.5-2.5 s apart, source poll_every {args.poll_every}, "
          f"slack pace {args.slack_pace} s, looking every {LOOK_EVERY * 1000:.0f} ms; {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="socialops-bench-") as directory:
        tmp = Path(directory)
        started = time.perf_counter()
        with local_bluesky(tmp) as net:
            network_start = time.perf_counter() - started
            parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in net.timings.items())
            print(f"network started in {network_start:.1f} s ({parts})", flush=True)
            accounts_at = time.perf_counter()
            brand = net.create_account(BRAND, BRAND_PASSWORD)
            customer = net.create_account(CUSTOMER, "customer-password")
            net.get_profile(customer.did, brand)  # the AppView knows both accounts
            print(f"accounts {BRAND} and {CUSTOMER} created in {time.perf_counter() - accounts_at:.1f} s", flush=True)

            floor_seconds = floor(net, brand, customer, args.floor_posts, rng)
            print(f"floor: createRecord → in {BRAND}'s listNotifications: median {median(floor_seconds):.3f} s, "
                  f"max {max(floor_seconds):.3f} s ({len(floor_seconds)} posts)", flush=True)

            with FakeSlack(token=SLACK_TOKEN) as slack:
                found = asyncio.run(measure(args, net, brand, customer, slack, tmp, rng))
            memory = net.memory_mb()
    results: list[Post] = found["results"]
    latencies = [post.seconds for post in results]
    print(f"bot: READY after {found['ready']:.1f} s, first poll stored after {found['polled']:.1f} s; "
          f"warm-up card after {found['warmup']:.2f} s (not counted)")
    print(f"cards in {CASES_CHANNEL}: {found['cards']} (1 warm-up + {len(results)} of {args.posts} posts found), "
          f"posted twice: {found['duplicates']}; posts started late (previous card after the gap): "
          f"{found['late_starts']}")
    print(f"network memory at the end: node {memory['node']:.0f} MB + postgres {memory['postgres']:.0f} MB")
    print()

    def stage(name: str, since: str, until: str) -> list[str]:
        spans = [getattr(post, until) - getattr(post, since) for post in results
                 if getattr(post, until) is not None and getattr(post, since) is not None]
        return summary(name, spans)

    print(table(["seconds", "n", "median", "p95", "max", "min"], [
        summary("floor: createRecord → in listNotifications", floor_seconds),
        ["real, in stages (wall clock):", "", "", "", "", ""],
        summary("  createRecord call", [post.posted for post in results]),
        stage("  post → stored by the bot", "wall", "stored"),
        stage("  stored → chat.postMessage at Slack", "stored", "at_slack"),
        stage("  post → chat.postMessage at Slack", "wall", "at_slack"),
        summary("post → card seen in FakeSlack (real)", latencies),
    ]))
    if latencies:
        p95 = percentile(latencies, 0.95)
        verdict = "met" if p95 < TARGET_P95 and len(latencies) == args.posts else "NOT met"
        print(f"target: p95 < {TARGET_P95:.0f} s with a {args.poll_every} poll interval: {verdict} "
              f"(p95 {p95:.3f} s)")


if __name__ == "__main__":
    main()
