"""Bluesky notifications and search hits → Items. Pure: no I/O.

A post is identified by its at-uri (`at://<author did>/app.bsky.feed.post/<rkey>`) and pinned to one version
by its CID; replies point at the thread's root and at their parent with strong refs {uri, cid}.

- kind: `comment` for a reply in the brand's thread (reason `reply`, or a post whose parent is the brand's
  post); `mention` for mentions, quotes and keyword hits.
- conversation: the thread's root at-uri (the post's own uri when it starts a thread) and the author's DID:
  every customer answering one brand post is a case of their own.
- parent_id: the at-uri the post answers, so an answer to our reply joins our reply's case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.model import Author, Item, Kind

PLATFORM = "bluesky"
VIA = "bluesky"
POST = "app.bsky.feed.post"
REASONS = ("mention", "reply", "quote")
INVALID_HANDLE = "handle.invalid"


def parse_time(text: object) -> datetime | None:
    """An AT Protocol datetime ("2024-01-01T00:00:00.000Z", any offset) → aware UTC datetime."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """The datetime format Bluesky writes: UTC, milliseconds, "Z"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_uri(uri: object) -> tuple[str, str, str] | None:
    """at://<authority>/<collection>/<rkey> → (authority, collection, rkey)."""
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[len("at://"):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def author_of(uri: object) -> str | None:
    """The DID (or handle) that wrote the record at `uri`."""
    parts = split_uri(uri)
    return parts[0] if parts else None


def post_url(actor: str, uri: object) -> str | None:
    """The public bsky.app link of a post (actor: its author's handle, or DID)."""
    parts = split_uri(uri)
    if parts is None or parts[1] != POST or not actor:
        return None
    return f"https://bsky.app/profile/{actor}/post/{parts[2]}"


def strong_ref(value: object) -> dict[str, str] | None:
    """A com.atproto.repo.strongRef {uri, cid}, or None."""
    if not isinstance(value, dict):
        return None
    uri, cid = value.get("uri"), value.get("cid")
    if isinstance(uri, str) and uri and isinstance(cid, str) and cid:
        return {"uri": uri, "cid": cid}
    return None


def _attachments(embed: object) -> str:
    """A short note for a post that has no text but an embed, so the card is not empty."""
    if not isinstance(embed, dict):
        return ""
    kind = str(embed.get("$type") or "")
    if kind == "app.bsky.embed.recordWithMedia":
        return _attachments(embed.get("media"))
    if kind == "app.bsky.embed.images":
        count = len(embed.get("images") or [])
        return f"[{count} image{'s' if count != 1 else ''}]"
    if kind == "app.bsky.embed.video":
        return "[video]"
    if kind == "app.bsky.embed.external":
        external = embed.get("external")
        return f"[link: {external.get('uri')}]" if isinstance(external, dict) and external.get("uri") else "[link]"
    if kind == "app.bsky.embed.record":
        return "[quoted post]"
    return ""


def _item(*, uri: object, cid: object, author: object, record: object, kind: Kind | None, brand_did: str,
          raw: dict[str, Any], fallback_time: object) -> Item | None:
    if not isinstance(uri, str) or not isinstance(cid, str) or not uri or not cid:
        return None
    if not isinstance(author, dict) or not isinstance(record, dict):
        return None
    if record.get("$type", POST) != POST:
        return None
    did = str(author.get("did") or author_of(uri) or "")
    if not did or did == brand_did:
        return None  # an echo: the brand's own post
    handle = str(author.get("handle") or "")
    text = record.get("text")
    text = text if isinstance(text, str) else ""
    if not text.strip():
        text = _attachments(record.get("embed")) or text
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else None
    root = strong_ref(reply.get("root")) if reply else None
    parent = strong_ref(reply.get("parent")) if reply else None
    if kind is None:
        kind = Kind.COMMENT if parent and author_of(parent["uri"]) == brand_did else Kind.MENTION
    created = parse_time(record.get("createdAt")) or parse_time(fallback_time) or datetime.now(UTC)
    shown_handle = handle if handle and handle != INVALID_HANDLE else ""
    return Item(
        platform=PLATFORM, platform_id=uri, kind=kind,
        author=Author(id=did, name=str(author.get("displayName") or ""),
                      handle=f"@{shown_handle}" if shown_handle else "", followers=None),
        text=text, conversation=f"{(root or {'uri': uri})['uri']}|{did}", created_at=created,
        url=post_url(shown_handle or did, uri),
        reply_to={"via": VIA, "uri": uri, "cid": cid, "root": root or {"uri": uri, "cid": cid},
                  "handle": shown_handle, "did": did},
        raw=raw, parent_id=parent["uri"] if parent else None,
    )


def parse_notification(notification: dict[str, Any], *, brand_did: str) -> Item | None:
    """A mention, reply or quote notification (app.bsky.notification.listNotifications) → an Item; likes,
    reposts, follows and the brand's own posts → None. Never raises."""
    if not isinstance(notification, dict):
        return None
    reason = notification.get("reason")
    if reason not in REASONS:
        return None
    kind = Kind.COMMENT if reason == "reply" else None
    return _item(uri=notification.get("uri"), cid=notification.get("cid"), author=notification.get("author"),
                 record=notification.get("record"), kind=kind, brand_did=brand_did, raw=notification,
                 fallback_time=notification.get("indexedAt"))


def parse_post_view(post: dict[str, Any], *, brand_did: str) -> Item | None:
    """A keyword search hit (app.bsky.feed.defs#postView) → a `mention` Item (a `comment` when it answers
    the brand's post); the brand's own posts → None. Never raises."""
    if not isinstance(post, dict):
        return None
    return _item(uri=post.get("uri"), cid=post.get("cid"), author=post.get("author"), record=post.get("record"),
                 kind=None, brand_did=brand_did, raw=post, fallback_time=post.get("indexedAt"))
