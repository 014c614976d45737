"""X payloads → Items. Pure: no I/O, the clock only as a default.

Two wire formats arrive here:
- API v2 (polled): posts in `data` with their authors in `includes.users` (only with `expansions=author_id`),
  DM events likewise with `expansions=sender_id`;
- Account Activity (webhook): v1.1-style post objects (`id_str`, `user{}`, `extended_tweet`) and
  `message_create` DM events with a `users` map.
Both give the same `platform_id` for the same post or DM, so a message seen twice is one item.

X escapes `&`, `<` and `>` in post and DM text as HTML entities and shortens links to t.co: the text is
given back as the customer typed it (entities decoded once, links expanded from `entities.urls`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.core.model import Author, Item, Kind

PLATFORM = "x"
VIA_POST = "x"
VIA_DM = "x_dm"
TWITTER_EPOCH_MS = 1288834974657
_ENTITY = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}

Json = dict[str, Any]


# ------------------------------------------------------------------------------------------ ids and time

def id_key(value: str) -> int:
    """X ids are 64-bit integers sent as strings: compare them as numbers (garbage sorts first)."""
    return int(value) if value.isdigit() else -1


def snowflake_at(seconds: float) -> int:
    """The smallest X id that X could give something created at `seconds` (Unix time)."""
    return max(1, int(seconds * 1000) - TWITTER_EPOCH_MS) << 22


def snowflake_time(value: str) -> float | None:
    """When the X id `value` was made (Unix seconds), or None for what is not an X id."""
    if not value.isdigit():
        return None
    return ((int(value) >> 22) + TWITTER_EPOCH_MS) / 1000


def _iso(text: object, default: datetime | None = None) -> datetime:
    if isinstance(text, str) and text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return default or datetime.now(UTC)


def _v1_time(text: object) -> datetime:
    """v1.1 `created_at`: "Wed Oct 10 20:19:24 +0000 2018"."""
    if isinstance(text, str):
        try:
            return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")
        except ValueError:
            pass
    return datetime.now(UTC)


def _millis(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


# ------------------------------------------------------------------------------------------ text

def unescape(text: str) -> str:
    """Undo X's escaping of `&`, `<`, `>` (exactly those, once: a typed "&amp;" stays "&amp;")."""
    return _ENTITY.sub(lambda m: _UNESCAPED[m.group(1)], text)


def expand_links(text: str, urls: object) -> str:
    """Replace each t.co link with the address the customer wrote (`expanded_url`)."""
    if not isinstance(urls, list):
        return text
    for entity in urls:
        if not isinstance(entity, dict):
            continue
        short, full = entity.get("url"), entity.get("expanded_url")
        if isinstance(short, str) and isinstance(full, str) and short and full:
            text = text.replace(short, full)
    return text


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------------ API v2

def users_by_id(body: Mapping[str, Any]) -> dict[str, Json]:
    """`includes.users` of a v2 answer, by id."""
    users = _dict(body.get("includes")).get("users")
    return {str(u["id"]): u for u in users or [] if isinstance(u, dict) and u.get("id")}


def post_url(username: str, post_id: str) -> str:
    return f"https://x.com/{username or 'i'}/status/{post_id}"


def _v2_text(tweet: Json) -> tuple[str, Json]:
    """Long posts carry their full text in `note_tweet` (`text` is cut at 280)."""
    note = _dict(tweet.get("note_tweet"))
    if isinstance(note.get("text"), str):
        return note["text"], _dict(note.get("entities"))
    return _str(tweet.get("text")), _dict(tweet.get("entities"))


def _mentions_brand(entities: Json, brand_id: str) -> bool:
    return any(isinstance(m, dict) and str(m.get("id")) == brand_id for m in entities.get("mentions") or [])


def brand_username(tweets: Iterable[object], brand_id: str) -> str | None:
    """The brand's @username as posts mentioning it spell it (for links to our own posts)."""
    for tweet in tweets:
        for mention in _dict(_dict(tweet).get("entities")).get("mentions") or []:
            if isinstance(mention, dict) and str(mention.get("id")) == brand_id and mention.get("username"):
                return str(mention["username"])
    return None


def parse_tweet(tweet: object, users: Mapping[str, Json], *, brand_id: str, mentioned: bool = False) -> Item | None:
    """A v2 post → an Item (kind mention), or None for the brand's own posts, reposts and odd input.

    `mentioned`: it came from the brand's mentions timeline (the author summoned the brand)."""
    if not isinstance(tweet, dict) or not tweet.get("id"):
        return None
    post_id, author_id = str(tweet["id"]), str(tweet.get("author_id") or "")
    if not author_id or author_id == brand_id:
        return None
    references = [r for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)]
    if any(r.get("type") == "retweeted" for r in references):
        return None
    raw_text, entities = _v2_text(tweet)
    text = expand_links(unescape(raw_text), entities.get("urls"))
    user = _dict(users.get(author_id))
    username = _str(user.get("username"))
    author = Author(id=author_id, name=_str(user.get("name")), handle=f"@{username}" if username else "",
                    followers=_int(_dict(user.get("public_metrics")).get("followers_count")))
    parent = next((str(r["id"]) for r in references if r.get("type") == "replied_to" and r.get("id")), None)
    summoned = (mentioned or _mentions_brand(entities, brand_id)
                or str(tweet.get("in_reply_to_user_id") or "") == brand_id)
    conversation = str(tweet.get("conversation_id") or post_id)
    return Item(
        platform=PLATFORM, platform_id=post_id, kind=Kind.MENTION, author=author, text=text,
        conversation=f"{conversation}:{author_id}", created_at=_iso(tweet.get("created_at")),
        url=post_url(username, post_id),
        reply_to={"via": VIA_POST, "tweet_id": post_id, "author_id": author_id, "username": username,
                  "summoned": summoned},
        raw={"tweet": tweet, "author": user}, parent_id=parent,
    )


def parse_posts(body: Mapping[str, Any], *, brand_id: str, mentioned: bool = False) -> list[Item]:
    """A v2 page of posts (mentions timeline or recent search) → Items, oldest first."""
    users = users_by_id(body)
    data = body.get("data")
    items = [i for t in data if (i := parse_tweet(t, users, brand_id=brand_id, mentioned=mentioned))] \
        if isinstance(data, list) else []
    return sorted(items, key=lambda i: id_key(i.platform_id))


def parse_dm_event(event: object, users: Mapping[str, Json], *, brand_id: str) -> Item | None:
    """A v2 DM event → an Item (kind dm) for a message someone else sent the brand in a one-to-one
    conversation; None for the brand's own messages, joins/leaves, group conversations and odd input."""
    if not isinstance(event, dict) or event.get("event_type") != "MessageCreate" or not event.get("id"):
        return None
    sender = str(event.get("sender_id") or "")
    conversation_id = _str(event.get("dm_conversation_id"))
    if not sender or sender == brand_id:
        return None
    if conversation_id and conversation_id.split("-") != sorted([sender, brand_id], key=id_key):
        return None  # a group conversation (or one the brand is not in): one-to-one only
    user = _dict(users.get(sender))
    username = _str(user.get("username"))
    return _dm_item(
        event_id=str(event["id"]), sender=sender, name=_str(user.get("name")), username=username,
        followers=_int(_dict(user.get("public_metrics")).get("followers_count")),
        text=expand_links(unescape(_str(event.get("text"))), event.get("urls")),
        created_at=_iso(event.get("created_at")), conversation_id=conversation_id,
        raw={"event": event, "sender": user},
    )


def _dm_item(*, event_id: str, sender: str, name: str, username: str, followers: int | None, text: str,
             created_at: datetime, conversation_id: str, raw: Json) -> Item:
    return Item(
        platform=PLATFORM, platform_id=event_id, kind=Kind.DM,
        author=Author(id=sender, name=name, handle=f"@{username}" if username else "", followers=followers),
        text=text, conversation=f"dm:{sender}", created_at=created_at, url=None,
        reply_to={"via": VIA_DM, "participant_id": sender, "dm_conversation_id": conversation_id},
        raw=raw,
    )


def parse_dm_events(body: Mapping[str, Any], *, brand_id: str) -> list[Item]:
    """A v2 page of DM events → Items from customers, oldest first."""
    users = users_by_id(body)
    data = body.get("data")
    items = [i for e in data if (i := parse_dm_event(e, users, brand_id=brand_id))] if isinstance(data, list) else []
    return sorted(items, key=lambda i: id_key(i.platform_id))


# ------------------------------------------------------------------------------------------ Account Activity

def parse_activity_tweet(tweet: object, *, brand_id: str) -> Item | None:
    """A v1.1 post object from `tweet_create_events` → an Item, or None for the brand's own posts,
    reposts and odd input."""
    if not isinstance(tweet, dict) or not tweet.get("id_str"):
        return None
    user = _dict(tweet.get("user"))
    author_id = _str(user.get("id_str"))
    if not author_id or author_id == brand_id or "retweeted_status" in tweet:
        return None
    post_id = str(tweet["id_str"])
    extended = _dict(tweet.get("extended_tweet"))
    if tweet.get("truncated") and isinstance(extended.get("full_text"), str):
        raw_text, entities = extended["full_text"], _dict(extended.get("entities"))
    else:
        raw_text = _str(tweet.get("full_text") or tweet.get("text"))
        entities = _dict(tweet.get("entities"))
    text = expand_links(unescape(raw_text), entities.get("urls"))
    username = _str(user.get("screen_name"))
    parent = _str(tweet.get("in_reply_to_status_id_str")) or None
    mentioned = any(isinstance(m, dict) and _str(m.get("id_str")) == brand_id
                    for m in entities.get("user_mentions") or [])
    quoted = _str(_dict(_dict(tweet.get("quoted_status")).get("user")).get("id_str")) == brand_id
    summoned = mentioned or quoted or _str(tweet.get("in_reply_to_user_id_str")) == brand_id
    return Item(
        platform=PLATFORM, platform_id=post_id, kind=Kind.MENTION,
        author=Author(id=author_id, name=_str(user.get("name")), handle=f"@{username}" if username else "",
                      followers=_int(user.get("followers_count"))),
        text=text, conversation=f"{parent or post_id}:{author_id}", created_at=_v1_time(tweet.get("created_at")),
        url=post_url(username, post_id),
        reply_to={"via": VIA_POST, "tweet_id": post_id, "author_id": author_id, "username": username,
                  "summoned": summoned},
        raw={"tweet": tweet}, parent_id=parent,
    )


def parse_activity_dm(event: object, users: Mapping[str, Any], *, brand_id: str) -> Item | None:
    """A `message_create` event from `direct_message_events` → an Item, None for what the brand sent."""
    if not isinstance(event, dict) or event.get("type") != "message_create" or not event.get("id"):
        return None
    create = _dict(event.get("message_create"))
    sender = _str(create.get("sender_id"))
    if not sender or sender == brand_id:
        return None
    recipient = _str(_dict(create.get("target")).get("recipient_id"))
    data = _dict(create.get("message_data"))
    user = _dict(users.get(sender))
    low, high = sorted([sender, recipient or brand_id], key=id_key)
    return _dm_item(
        event_id=str(event["id"]), sender=sender, name=_str(user.get("name")),
        username=_str(user.get("screen_name")), followers=_int(user.get("followers_count")),
        text=expand_links(unescape(_str(data.get("text"))), _dict(data.get("entities")).get("urls")),
        created_at=_millis(event.get("created_timestamp")), conversation_id=f"{low}-{high}",
        raw={"event": event, "sender": user},
    )


def parse_activity(body: Mapping[str, Any], *, brand_id: str) -> list[Item]:
    """An Account Activity delivery → Items (oldest first). Deliveries for another subscribed account,
    mentions by users the brand blocked, and everything the brand did itself give nothing."""
    if str(body.get("for_user_id") or "") != brand_id:
        return []
    items: list[Item] = []
    if str(body.get("user_has_blocked", "false")).lower() != "true":
        items += [i for t in body.get("tweet_create_events") or [] if (i := parse_activity_tweet(t, brand_id=brand_id))]
    users = _dict(body.get("users"))
    items += [i for e in body.get("direct_message_events") or []
              if (i := parse_activity_dm(e, users, brand_id=brand_id))]
    return sorted(items, key=lambda i: id_key(i.platform_id))
