"""Storm grouping cost per item: `StormDetector.observe` on typical posts, with and without a storm under way.

Texts are typical customer posts of 100–280 characters, generated from a seeded `random.Random`: ~45% of the
words from the 150 most common words of the sample feed (English, German, Finnish, Persian, Spanish, French),
~50% from the rest of its vocabulary and 3,000 made-up words, ~5% from 50,000 rare made-up words (names, typos),
with @mentions, emoji, order numbers and now and then a link to the customer's own order
page (unique, so chatter never shares a feature by construction: anything it is grouped into is a mistake). Items
arrive `--rate` per second of simulated time, so the detector holds `rate × window` items (15 minutes: 18,000 at
20/s), as it would on a busy day. Scenarios:

- unrelated: chatter only;
- near-duplicates: a 10,000-item storm of one complaint in varied copies (retweet prefixes, other @mentions,
  case, punctuation, emoji, an added or dropped word, another order number, a short remark appended), mixed 1:1
  with chatter;
- link: a 10,000-item storm of different texts around one link written in several ways (scheme or not, `www.`,
  upper case host, trailing slash, query, fragment), mixed 1:1 with chatter.

The clock covers `observe` for every item of a scenario on a fresh detector (threshold 10, window 15 minutes);
garbage collection stays on, as in the bot. Several runs, medians printed, with what the grouping decided: storm
items grouped into incidents, chatter items grouped (should be 0), incidents opened.
Pure CPU in this one process.

Run: .venv/bin/python bench/storm_grouping.py [--runs 5] [--items 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, median, table  # noqa: E402
from bot.core.storms import StormDetector, signatures  # noqa: E402
from bot.sandbox.feed import CONTENT, FOLLOWUPS  # noqa: E402

TARGET = 20_000
"""items/s: grouping must never be the bottleneck (the ingest target is 2,000 events/s)."""
THRESHOLD = 10
WINDOW = timedelta(minutes=15)
START = datetime(2026, 12, 1, 9, tzinfo=UTC)

EMOJI = ["😡", "🙏", "👎", "📦", "🤷\u200d♀️", "👩🏽\u200d💻", "✨", "😤", "💸", "🔥"]
STORM_BASE = ("@Acme the app has been down for two hours again and I cannot check my order status or reach "
              "support, this is the third time this week")
STORM_REMARKS = ["fix it!", "please", "unacceptable", "any update?", "same here", "seriously", "ridiculous",
                 "again??", "come on", ""]
LINK_FORMS = ["https://status.acme.com/incident/42", "https://status.acme.com/incident/42/",
              "http://STATUS.acme.com/incident/42?utm_source=x", "www.status.acme.com/incident/42",
              "https://www.status.acme.com/incident/42#latest", "status: https://status.acme.com/incident/42."]


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    text: str
    platform: str
    storm: bool


class Chatter:
    """Unrelated customer posts."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        texts = [line.text for lines in CONTENT.values() for line in lines]
        texts += [text for lines in FOLLOWUPS.values() for text in lines]
        counts = Counter(w.casefold() for t in texts for w in re.findall(r"[^\W\d_]+", t))
        ranked = [w for w, _ in counts.most_common()]
        letters = "abcdefghijklmnopqrstuvwxyzäöüßéèçñ"
        made = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(53_000)]
        self.common = ranked[:150]
        """Function words and the like: about 45% of what people write."""
        self.middle = ranked[150:] + made[:3_000]
        """Everyday vocabulary: about 50%."""
        self.rare = made[3_000:]
        """Names, typos, product words: about 5%."""
        self.count = 0

    def word(self) -> str:
        roll = self.rng.random()
        pool = self.common if roll < 0.45 else self.middle if roll < 0.95 else self.rare
        return self.rng.choice(pool)

    def text(self) -> str:
        rng = self.rng
        self.count += 1
        link = f"https://acme.com/orders/{self.count}" if rng.random() < 0.1 else ""
        parts: list[str] = ["@acme"] if rng.random() < 0.6 else []
        limit = rng.randint(100, 280) - len(link)
        while True:
            roll = rng.random()
            if roll < 0.03:
                word = rng.choice(EMOJI)
            elif roll < 0.05:
                word = f"#{rng.randint(10_000, 99_999)}"
            else:
                word = self.word() + (rng.choice(".,!?") if roll > 0.95 else "")
            if sum(len(p) + 1 for p in parts) + len(word) > limit:
                break
            parts.append(word)
        return " ".join([*parts, link] if link else parts)


def storm_copy(rng: random.Random) -> str:
    words = STORM_BASE.split()
    for _ in range(rng.randint(0, 2)):
        i = rng.randrange(1, len(words))
        change = rng.random()
        if change < 0.3:
            words[i] = words[i].upper()
        elif change < 0.5:
            del words[i]
        elif change < 0.7:
            words.insert(i, rng.choice(["really", "just", "now", "totally", "AGAIN"]))
        else:
            words[i] = words[i] + rng.choice(["!", "!!", ",", "..."])
    text = " ".join(words)
    roll = rng.random()
    if roll < 0.3:
        text = f"RT @customer{rng.randint(1, 9999)}: {text}"
    elif roll < 0.5:
        text = text.replace("@Acme", f"@AcmeSupport @friend{rng.randint(1, 999)}")
    remark = rng.choice(STORM_REMARKS)
    text += rng.choice(["", "!", "!!!", ".", " ?"]) + (f" {remark}" if remark else "")
    if rng.random() < 0.3:
        text += " " + rng.choice(EMOJI)
    if rng.random() < 0.2:
        text += f" order {rng.randint(10_000, 99_999)}"
    return text


def link_post(rng: random.Random, chatter: Chatter) -> str:
    text = chatter.text()
    cut = text[:rng.randint(60, 200)].rsplit(" ", 1)[0]
    return f"{cut} {rng.choice(LINK_FORMS)}" + (" " + rng.choice(EMOJI) if rng.random() < 0.2 else "")


def scenario(name: str, items: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    chatter = Chatter(rng)
    platforms = ["x", "bluesky", "mastodon", "instagram", "facebook"]
    built: list[Item] = []
    for n in range(items):
        platform = platforms[n % 5]
        if name == "unrelated" or n % 2:
            built.append(Item(f"c{n}", chatter.text(), platform, storm=False))
        elif name == "near-duplicates":
            built.append(Item(f"s{n}", storm_copy(rng), platform, storm=True))
        else:
            built.append(Item(f"s{n}", link_post(rng, chatter), platform, storm=True))
    return built


@dataclass
class Outcome:
    seconds: float
    storm_grouped: int
    chatter_grouped: int
    opened: int


def run(items: list[Item], rate: float) -> Outcome:
    detector = StormDetector(THRESHOLD, WINDOW)
    times = [START + timedelta(seconds=n / rate) for n in range(len(items))]
    grouped: set[str] = set()
    opened = 0
    gc.collect()
    started = time.perf_counter()
    for item, at in zip(items, times, strict=True):
        decision = detector.observe(item.item_id, item.text, item.platform, at)
        if decision.kind == "joined":
            grouped.add(item.item_id)
        elif decision.kind == "opened":
            opened += 1
            grouped.update(decision.members)
    seconds = time.perf_counter() - started
    storm_ids = {item.item_id for item in items if item.storm}
    return Outcome(seconds, len(grouped & storm_ids), len(grouped - storm_ids), opened)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=20_000, help="items per scenario (storms: half of them)")
    parser.add_argument("--rate", type=float, default=20.0, help="items per second of simulated time")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"storm grouping: {args.items:,} items per scenario at {args.rate:g}/s (threshold {THRESHOLD}, window "
          f"{WINDOW}), {args.runs} runs; {machine()}")

    rows: list[list[object]] = []
    for name in ("unrelated", "near-duplicates", "link"):
        items = scenario(name, args.items, args.seed)
        chars = sum(len(item.text) for item in items) / len(items)
        started = time.perf_counter()
        for item in items:
            signatures(item.text)
        features_us = (time.perf_counter() - started) / len(items) * 1e6
        outcomes = [run(items, args.rate) for _ in range(args.runs)]
        rates = [len(items) / o.seconds for o in outcomes]
        rate = median(rates)
        last = outcomes[-1]
        storm = sum(item.storm for item in items)
        print(f"  {name}: {chars:.0f} chars/item; runs {', '.join(f'{r:,.0f}' for r in rates)} items/s", flush=True)
        rows.append([name, f"{chars:.0f}", f"{features_us:.1f}", f"{rate:,.0f}", f"{1e6 / rate:.1f}",
                     f"{last.storm_grouped:,} / {storm:,}", f"{last.chatter_grouped:,} / {len(items) - storm:,}",
                     last.opened, "yes" if rate >= TARGET else "NO"])
    print()
    print(table(["scenario", "chars/item", "signatures() µs/item", "observe, items/s", "µs/item",
                 "storm items grouped", "chatter grouped", "incidents", f">= {TARGET:,}/s"], rows))
    print(f"medians of {args.runs} runs; target: >= {TARGET:,} items/s")


if __name__ == "__main__":
    main()
