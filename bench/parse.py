"""Parsing throughput per platform: items/s from raw pages (bytes off the wire) to Items, JSON decode included.

Pages are built from the recorded payloads in tests/fixtures/<platform>/: the recorded items are replicated
with varied ids, authors, times and texts (emoji, ZWJ sequences, combining marks, Persian, links, HTML
entities), at the page size the bot asks for. Each platform's pages are serialised once; the clock then
covers `json.loads` + the parser's public function for every page, exactly as the source or webhook calls
it. Per platform and run: the floor (`json.loads` only, the unavoidable part) and the parser; several runs,
medians printed. Pure CPU in this one process: there is no server to keep apart from.

Run: .venv/bin/python bench/parse.py [--runs 7] [--items 40000]
"""

from __future__ import annotations

import argparse
import copy
import gc
import html
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.bluesky import parse as bluesky  # noqa: E402
from adapters.generic import parse as generic  # noqa: E402
from adapters.google_reviews import parse as google  # noqa: E402
from adapters.mastodon import parse as mastodon  # noqa: E402
from adapters.meta import parse as meta  # noqa: E402
from adapters.x import parse as x  # noqa: E402
from bench.common import machine, median, table  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
TARGET = 20_000
"""items/s: parsing must never be the bottleneck (the ingest target is 2,000 events/s)."""

Json = dict[str, Any]

# Texts customers write: the recorded ones (in the X fixture) plus emoji, ZWJ sequences, combining marks,
# right-to-left Persian (with its zero-width non-joiner), characters that X and Mastodon escape, and links.
TEXTS = [
    "My order never arrived and nobody answers the phone",
    "Where is my refund? It has been two weeks 😡 Order #88123",
    "سفارش من هنوز نرسیده 📦 لطفاً کمک کنید",
    "سلام، کد پیگیری‌ام کار نمی‌کند. شماره سفارش ۴۵۶۷۸",
    "Love the new app 👩🏽‍💻 but the login keeps failing on Android",
    "café\u0301 order — wrong size again 👨‍❤️‍👨 <3 & thanks for nothing",
    "Great service today, thanks! 🙏✨ https://example.com/orders/88123?ref=support&lang=fa",
    "پشتیبانی عالی بود 🌹 ممنون از تیم شما",
    "Your support line hangs up on me every time. Ticket 4471 👎👎",
    "The parcel says delivered but it's not here 🤷\u200d♀️ (photo attached)",
]

BRAND_X = "2244994945"
BRAND_BSKY = "did:plc:acmebrand00000000000000"
BRAND_ACCT = "acme"
PAGE_ID = "137542570280222"
IG_ID = "17841405726653026"
LOCATION = "locations/4321"


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def stamp(moment: datetime, *, millis: bool = True) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}Z" if millis else "Z")


@dataclass
class Platform:
    name: str
    unit: str
    """What one page is (shown in the output)."""
    pages: list[bytes]
    items_per_page: int
    parse: Callable[[bytes], int]
    """Decode and parse one page; returns the number of Items."""


# ---- X: API v2 mentions timeline pages (max_results=100, expansions=author_id) ------------------------------------

def x_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    recorded = fixture("x/mentions_timeline_default_fields_recorded.json")["response_body"]["data"]
    expanded = fixture("x/mentions_timeline_expanded_doc.json")
    shape, user_shape = expanded["data"][0], expanded["includes"]["users"][0]
    texts = [str(t["text"]) for t in recorded] + TEXTS
    base_id = 1578516295611748353
    pages: list[bytes] = []
    for page in range(count):
        data: list[Json] = []
        users: dict[str, Json] = {}
        for i in range(size):
            n = page * size + i
            post_id = str(base_id + n * 4_194_304)
            author = str(1_000_000 + rng.randrange(size // 2))
            username = f"customer_{author}"
            text = f"@acme {rng.choice(texts)} #{n}"
            tweet: Json = {**copy.deepcopy(shape), "id": post_id, "author_id": author,
                           "edit_history_tweet_ids": [post_id],
                           "created_at": stamp(datetime(2026, 12, 1, 10, tzinfo=UTC) + timedelta(seconds=n)),
                           "conversation_id": post_id,
                           "entities": {"mentions": [{"start": 0, "end": 5, "username": "acme", "id": BRAND_X}]}}
            if n % 3 == 0:  # a shortened link, expanded back by the parser
                short = f"https://t.co/{n:010d}"
                tweet["text"] = f"{text} {short}"
                tweet["entities"]["urls"] = [{"start": len(text) + 1, "end": len(text) + 1 + len(short), "url": short,
                                              "expanded_url": f"https://example.com/orders/{n}",
                                              "display_url": f"example.com/orders/{n}"}]
            else:
                tweet["text"] = html.escape(text, quote=False)  # X sends &amp; &lt; &gt;
            if n % 5 == 0:  # a reply in a conversation the customer started earlier
                parent = str(base_id + (n - 1) * 4_194_304)
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
                tweet["conversation_id"] = parent
                tweet["in_reply_to_user_id"] = BRAND_X
            data.append(tweet)
            users[author] = {**user_shape, "id": author, "username": username, "name": f"Customer {author} 🌱",
                             "public_metrics": {"followers_count": rng.randrange(50_000), "following_count": 10,
                                                "tweet_count": 100, "listed_count": 0}}
        body = {"data": data, "includes": {"users": list(users.values())},
                "meta": {**expanded["meta"], "result_count": size, "newest_id": data[-1]["id"],
                         "oldest_id": data[0]["id"]}}
        pages.append(json.dumps(body).encode())
    return pages


def x_parse(raw: bytes) -> int:
    return len(x.parse_posts(json.loads(raw), brand_id=BRAND_X, mentioned=True))


# ---- Meta: webhook deliveries (Page: Messenger messages + feed comments; Instagram: comments + messages) --------

def meta_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    message = fixture("meta/messenger_message_text_fixture.json")["entry"][0]["messaging"][0]
    feed = fixture("meta/page_feed_comment.json")["entry"][0]["changes"][0]
    ig_comment = fixture("meta/instagram_comment_doc.json")[0]["entry"][0]["changes"][0]
    pages: list[bytes] = []
    for page in range(count):
        instagram = page % 3 == 2  # two Page deliveries for one Instagram delivery
        entries: list[Json] = []
        per_entry = 10  # Meta batches several entries (one per account and moment) in one POST
        for e in range(size // per_entry):
            millis = 1_764_583_200_000 + (page * size + e * per_entry) * 1000
            entry: Json = {"id": IG_ID if instagram else PAGE_ID, "time": millis // 1000 if instagram else millis,
                           "messaging": [], "changes": []}
            for i in range(per_entry):
                n = page * size + e * per_entry + i
                sender = str(7_000_000_000_000_000 + rng.randrange(size))
                text = f"{rng.choice(TEXTS)} #{n}"
                if i % 2 == 0:
                    event = copy.deepcopy(message)
                    event["sender"] = {"id": sender}
                    event["recipient"] = {"id": entry["id"]}
                    event["timestamp"] = millis + i
                    event["message"].update(mid=f"m_{n:08d}AbCdEfGhIjKlMnOpQrStUvWxYz{page}", seq=n, text=text)
                    if n % 10 == 0:
                        event["message"]["attachments"] = [{"type": "image", "payload": {
                            "url": f"https://scontent.xx.fbcdn.net/v/t1.15752-9/{n}_n.jpg?_nc_cat=1&oh=00_AfB"}}]
                    entry["messaging"].append(event)
                elif instagram:
                    change = copy.deepcopy(ig_comment)
                    change["value"].update(id=str(17_900_000_000_000_000 + n), text=text,
                                           **{"from": {"id": sender, "username": f"customer.{sender[-6:]}"}},
                                           media={"id": str(18_000_000_000_000_000 + n % 7),
                                                  "media_product_type": "FEED"})
                    entry["changes"].append(change)
                else:
                    change = copy.deepcopy(feed)
                    post = f"{PAGE_ID}_{139560936744456 + n % 7}"
                    change["value"].update(**{"from": {"id": sender, "name": f"Customer {sender[-4:]} 🌱"}},
                                           comment_id=f"{post.split('_')[1]}_{139620233405726 + n}", post_id=post,
                                           parent_id=post, created_time=millis // 1000, message=text)
                    entry["changes"].append(change)
            entries.append(entry)
        body = {"object": "instagram" if instagram else "page", "entry": entries}
        pages.append(json.dumps(body).encode())
    return pages


def meta_parse(raw: bytes) -> int:
    batch = meta.parse_payload(meta.load(raw), page_id=PAGE_ID, instagram_id=IG_ID,
                               now=datetime(2026, 12, 1, tzinfo=UTC))
    return len(batch.items)


# ---- Bluesky: app.bsky.notification.listNotifications pages (limit=50, as the bot asks) ---------------------------

def bluesky_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    recorded = fixture("bluesky/listNotifications_mention_reply_snapshot.json")["notifications"]
    mention_facet = fixture("bluesky/post_record_mention_facet.json")["facets"][0]
    mention_shape, reply_shape = recorded[0], recorded[1]
    brand_post = f"at://{BRAND_BSKY}/app.bsky.feed.post/3lbrandpost22"
    pages: list[bytes] = []
    for page in range(count):
        notifications: list[Json] = []
        for i in range(size):
            n = page * size + i
            did = f"did:plc:cust{rng.randrange(10**8):08d}abcdefghijkl"
            uri = f"at://{did}/app.bsky.feed.post/3l{n:011d}"
            moment = stamp(datetime(2026, 12, 1, 10, tzinfo=UTC) - timedelta(milliseconds=137 * n))
            reply = n % 3 == 1
            note = copy.deepcopy(reply_shape if reply else mention_shape)
            record = note["record"]
            text = rng.choice(TEXTS)
            note.update(uri=uri, cid=f"bafyreih{n:052d}", indexedAt=moment, isRead=False)
            note["author"].update(did=did, handle=f"customer{n % 997}.bsky.social",
                                  displayName=f"Customer {n % 997} ✨", createdAt="2024-03-01T00:00:00.000Z",
                                  avatar=f"https://cdn.bsky.app/img/avatar/plain/{did}/bafkrei{n:052d}@jpeg")
            record["createdAt"] = moment
            if reply:
                note["reasonSubject"] = brand_post
                record["text"] = text
                record["reply"] = {"root": {"uri": brand_post, "cid": "bafyreibrand"},
                                   "parent": {"uri": brand_post, "cid": "bafyreibrand"}}
            else:
                record["text"] = f"@acme.test {text}"
                facet = copy.deepcopy(mention_facet)
                facet["index"] = {"byteStart": 0, "byteEnd": len(b"@acme.test")}
                facet["features"][0]["did"] = BRAND_BSKY
                record["facets"] = [facet]
                if n % 2:
                    record.pop("embed", None)
                else:
                    record["embed"]["record"] = {"uri": brand_post, "cid": "bafyreibrand"}
            record["langs"] = ["fa" if "س" in text else "en"]
            notifications.append(note)
        pages.append(json.dumps({"notifications": notifications, "cursor": f"{page:016d}"}).encode())
    return pages


def bluesky_parse(raw: bytes) -> int:
    page = json.loads(raw)
    return len([i for n in page["notifications"] if (i := bluesky.parse_notification(n, brand_did=BRAND_BSKY))])


# ---- Google reviews: ListReviewsResponse pages (pageSize=50, the API's maximum) ------------------------------------

def google_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    shape = fixture("google_reviews/reviews_list_response_shape.json")["response"]
    review_shape = shape["reviews"][0]
    stars = ["ONE", "TWO", "THREE", "FOUR", "FIVE"]
    pages: list[bytes] = []
    for page in range(count):
        reviews: list[Json] = []
        for i in range(size):
            n = page * size + i
            review = copy.deepcopy(review_shape)
            review_id = f"AbFvOqn{n:010d}Xy_Zq-{rng.randrange(10**6):06d}"
            created = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=7 * n)
            edited = n % 7 == 3
            updated = created + (timedelta(days=2) if edited else timedelta(milliseconds=45))
            review.update(name=f"accounts/1234/{LOCATION}/reviews/{review_id}", reviewId=review_id,
                          starRating=stars[n % 5], createTime=stamp(created, millis=False),
                          updateTime=stamp(updated).replace("Z", f"{n % 1000:03d}456Z"))
            review["reviewer"] = {"profilePhotoUrl": f"https://lh3.googleusercontent.com/a-/ALV-{n:012d}=s120-c",
                                  "displayName": f"Customer {n % 991} 🌻", "isAnonymous": n % 11 == 0}
            if n % 9 == 4:
                review.pop("comment")  # a rating without text
            else:
                review["comment"] = rng.choice(TEXTS) + ("\n\n(Translated by Google)" if n % 4 == 0 else "")
            if n % 2:
                review["reviewReply"] = {"comment": "Thank you! 🙏 ممنون",
                                         "updateTime": stamp(created + timedelta(hours=3))}
            else:
                review.pop("reviewReply")
            reviews.append(review)
        body = {"reviews": reviews, "averageRating": 3.7, "totalReviewCount": size * count,
                "nextPageToken": f"token-{page + 1}"}
        pages.append(json.dumps(body).encode())
    return pages


def google_parse(raw: bytes) -> int:
    return len(google.parse_reviews(json.loads(raw), location=LOCATION))


# ---- Mastodon: /api/v1/notifications?types[]=mention pages (limit=40, as the bot asks) -----------------------------

def mastodon_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    recorded = fixture("mastodon/notifications_mention_recorded.json")["response_body"][0]
    pages: list[bytes] = []
    for page in range(count):
        notifications: list[Json] = []
        for i in range(size):
            n = page * size + i
            note = copy.deepcopy(recorded)
            account_id = str(117020565693913441 + rng.randrange(size))
            status_id = str(117020576916218297 + n * 65536)
            acct = f"customer{account_id[-4:]}@mastodon.social" if n % 2 else f"customer{account_id[-4:]}"
            text = html.escape(rng.choice(TEXTS), quote=False)
            lines = text.split(". ", 1)
            body = "</p><p>".join(lines) if n % 4 == 0 else "<br />".join(lines)
            mention = ('<span class="h-card" translate="no"><a href="https://social.example/@acme" '
                       'class="u-url mention">@<span>acme</span></a></span>')
            link = ('<a href="https://example.com/orders/88123" target="_blank" rel="nofollow noopener">'
                    '<span class="invisible">https://</span><span class="">example.com/orders/88123</span>'
                    '<span class="invisible"></span></a>') if n % 3 == 0 else ""
            note.update(id=str(1000 + n), group_key=f"ungrouped-{1000 + n}",
                        created_at=stamp(datetime(2026, 12, 1, 10, tzinfo=UTC) + timedelta(seconds=n)))
            note["account"].update(id=account_id, username=acct.split("@")[0], acct=acct,
                                   display_name=f"Customer {account_id[-4:]} :blobcat: 🌱",
                                   followers_count=rng.randrange(5000))
            status = note["status"]
            status.update(id=status_id, content=f"<p>{mention} {body} {link}</p>",
                          visibility="direct" if n % 6 == 0 else "public",
                          spoiler_text="shipping" if n % 10 == 0 else "",
                          in_reply_to_id=str(117020576916218297 + (n - 1) * 65536) if n % 5 == 0 else None,
                          uri=f"https://social.example/users/{acct}/statuses/{status_id}",
                          url=f"https://social.example/@{acct}/{status_id}",
                          language="fa" if "س" in text else "en")
            status["account"] = copy.deepcopy(note["account"])
            status["mentions"] = [{"id": "1", "username": BRAND_ACCT, "url": "https://social.example/@acme",
                                   "acct": BRAND_ACCT}]
            notifications.append(note)
        pages.append(json.dumps(notifications).encode())
    return pages


def mastodon_parse(raw: bytes) -> int:
    page = json.loads(raw)
    return len([i for n in page if (i := mastodon.parse_notification(n, brand_acct=BRAND_ACCT))])


# ---- generic webhook: one event per POST (bench/common.py's event shape) -------------------------------------------

def generic_pages(count: int, size: int, rng: random.Random) -> list[bytes]:
    platforms = ["x", "facebook", "instagram", "trustpilot", "tiktok"]
    kinds = ["mention", "comment", "dm", "review"]
    bodies: list[bytes] = []
    for n in range(count * size):
        kind = kinds[n % 4]
        author = rng.randrange(1, 100_000)
        event: Json = {"id": f"evt-{n:08d}", "kind": kind, "text": rng.choice(TEXTS), "platform": platforms[n % 5],
                       "conversation": f"conv-{n // 3}",
                       "author": {"id": f"cust-{author}", "name": f"Customer {author} 🌱", "handle": f"@cust{author}",
                                  "followers": rng.randrange(50_000)},
                       "url": f"https://{platforms[n % 5]}.example/status/{n}", "created_at": "2026-12-01T10:00:00Z"}
        if kind == "review":
            event["rating"] = 1 + n % 5
        bodies.append(json.dumps(event).encode())
    return bodies


def generic_parse(raw: bytes) -> int:
    generic.parse_event(raw)
    return 1


# ---- timing --------------------------------------------------------------------------------------------------------

def decode_only(raw: bytes) -> int:
    json.loads(raw)
    return 0


def timed(pages: list[bytes], work: Callable[[bytes], int], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for page in pages:
            work(page)
    return time.perf_counter() - started


def platforms(distinct: int, seed: int) -> list[Platform]:
    rng = random.Random(seed)
    specs: list[tuple[str, str, Callable[[int, int, random.Random], list[bytes]], int, Callable[[bytes], int]]] = [
        ("x", "mentions timeline page", x_pages, 100, x_parse),
        ("meta", "webhook delivery", meta_pages, 100, meta_parse),
        ("bluesky", "listNotifications page", bluesky_pages, 50, bluesky_parse),
        ("google reviews", "reviews.list page", google_pages, 50, google_parse),
        ("mastodon", "notifications page", mastodon_pages, 40, mastodon_parse),
        ("generic", "webhook POST", generic_pages, 1, generic_parse),
    ]
    built: list[Platform] = []
    for name, unit, build, size, parse in specs:
        count = distinct if size > 1 else distinct * 100
        pages = build(count, size, rng)
        built.append(Platform(name=name, unit=unit, pages=pages, items_per_page=size, parse=parse))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--items", type=int, default=40_000, help="items parsed per platform and run (about)")
    parser.add_argument("--pages", type=int, default=20, help="distinct pages per platform (generic: x100 bodies)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"parsing throughput: ~{args.items:,} items per platform and run, {args.runs} runs, "
          f"JSON decode included; {machine()}")

    rows: list[list[object]] = []
    for platform in platforms(args.pages, args.seed):
        per_pass = sum(platform.parse(page) for page in platform.pages)  # also the warm-up
        expected = len(platform.pages) * platform.items_per_page
        if per_pass != expected:
            print(f"  {platform.name}: {per_pass} items parsed from {expected} in the pages")
        repeat = max(1, round(args.items / per_pass))
        size_kib = sum(map(len, platform.pages)) / len(platform.pages) / 1024
        floor_rates: list[float] = []
        rates: list[float] = []
        for run in range(args.runs):
            gc.collect()
            # Alternate which goes first, so neither always runs on a warmer (or noisier) machine.
            steps = [(decode_only, floor_rates), (platform.parse, rates)]
            for work, into in steps if run % 2 else reversed(steps):
                into.append(per_pass * repeat / timed(platform.pages, work, repeat))
        rate = median(rates)
        print(f"  {platform.name}: {platform.items_per_page} item(s) per {platform.unit} ({size_kib:,.1f} KiB); "
              f"runs {', '.join(f'{r:,.0f}' for r in rates)} items/s", flush=True)
        rows.append([platform.name, platform.items_per_page, f"{size_kib:,.1f}", f"{median(floor_rates):,.0f}",
                     f"{rate:,.0f}", f"{rate / median(floor_rates):.2f}", f"{1e6 / rate:.1f}",
                     "yes" if rate >= TARGET else "NO"])
    print()
    print(table(["platform", "items/page", "KiB/page", "json.loads only, items/s", "parse, items/s",
                 "parse / decode", "µs/item", f">= {TARGET:,}/s"], rows))
    print(f"medians of {args.runs} runs; target: >= {TARGET:,} items/s per platform (parsing is never the bottleneck)")


if __name__ == "__main__":
    main()
