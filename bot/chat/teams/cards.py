"""Adaptive Cards for the Teams desk, rendered from the same neutral case view as Slack's Block Kit.

Customer text only ever goes into `TextRun`s of a `RichTextBlock`, which Teams shows as literal text (no
markdown, no links, no mentions), so nothing a customer writes can format, link or ping. Buttons are
Universal Actions (`Action.Execute`) whose verbs are the action ids of bot/chat/names.py, as in Slack. A Teams
message may carry about 100 KB: text is cut long before that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.chat.names import CLAIM, ESCALATE, RELEASE, REOPEN, REPLY, RESOLVE, RETRY, kind_name, platform_name
from bot.core.view import CaseView

Card = dict[str, Any]

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
TEXT_LIMIT = 3000
"""Characters of the customer's message shown on the card (the card links to the whole message)."""
MAX_CARD_BYTES = 100_000
"""Teams refuses messages over about 100 KB."""

STATUS_NAMES = {"open": "🔵 Open", "claimed": "🟡 Claimed", "resolved": "✅ Resolved"}
_BUTTONS = {
    "claim": ("Claim", CLAIM, "positive"), "release": ("Release", RELEASE, None),
    "reply": ("Reply", REPLY, None), "escalate": ("Escalate", ESCALATE, "destructive"),
    "resolve": ("Resolve", RESOLVE, None), "reopen": ("Reopen", REOPEN, None),
}
_CONTROL = {chr(c) for c in range(32)} - {"\n", "\t"}


def literal(text: str, limit: int = TEXT_LIMIT) -> str:
    """Untrusted text for a TextRun: control characters dropped, cut to `limit` with an ellipsis."""
    text = "".join(ch for ch in text if ch not in _CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def rich(*runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **extra}


def _date(moment: datetime) -> str:
    """Teams formats {{DATE()}} and {{TIME()}} in the reader's own locale and time zone."""
    stamp = moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment.tzinfo is None \
        else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def _action(title: str, verb: str, case_id: int, style: str | None = None, **data: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Execute", "title": title, "verb": verb,
                              "data": {"case": case_id, **data}}
    if style:
        action["style"] = style
    return action


def case_card(view: CaseView) -> Card:
    platform = platform_name(view.platform)
    title = f"{platform} {kind_name(view.kind)} · case #{view.id}"
    if view.rating is not None:
        stars = max(0, min(5, view.rating))
        title += f" · {'★' * stars}{'☆' * (5 - stars)}"
    badges = []
    if view.escalated:
        badges.append("🚨 Escalated")
    if view.reopened and view.status != "resolved":
        badges.append("↩️ Reopened")
    who = [run(literal(view.customer_name or "Someone", 200), weight="Bolder")]
    details = []
    if view.customer_handle:
        details.append(literal(view.customer_handle, 200))
    if view.customer_followers is not None:
        details.append(f"{view.customer_followers:,} followers")
    if details:
        who.append(run(f" ({' · '.join(details)})", isSubtle=True))
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title + ("  " + "  ".join(badges) if badges else ""), "weight": "Bolder",
         "size": "Medium", "wrap": True},
        rich(*who),
        {"type": "Container", "style": "emphasis", "items": [rich(run(literal(view.text)))]},
        {"type": "FactSet", "facts": [
            {"title": "Status", "value": STATUS_NAMES.get(view.status, view.status)},
            {"title": "Owner", "value": literal(view.owner_name or view.owner or "nobody", 200)},
            {"title": "Opened", "value": _date(view.opened_at)},
            {"title": "Messages", "value": str(view.messages)},
        ]},
    ]
    notes: list[list[dict[str, Any]]] = []
    if view.escalated and view.escalation_reason:
        notes.append([run(f"🚨 Escalated by {literal(view.escalated_by or 'someone', 200)}: "),
                      run(literal(view.escalation_reason, 500))])
    reply = view.last_reply
    if reply is not None:
        what = "Check-in" if reply.kind == "checkin" else "Reply"
        by = f" by {literal(reply.author_name, 200)}" if reply.author_name else ""
        if reply.status == "queued":
            notes.append([run(f"⏳ {what}{by} sending…")])
        elif reply.status == "sent":
            notes.append([run(f"✅ {what}{by} sent")])
        else:
            notes.append([run(f"❌ {what}{by} failed: "), run(literal(reply.error or "unknown error", 500))])
    if view.status == "resolved" and view.resolution_note:
        notes.append([run("📝 "), run(literal(view.resolution_note, 500))])
    for note in notes:
        body.append(rich(*note, spacing="Small"))
    actions = [_action(title, verb, view.id, style) for name, (title, verb, style) in _BUTTONS.items()
               if name in view.actions]
    if "retry" in view.actions and view.last_reply is not None:
        actions.append(_action("Retry", RETRY, view.id, "positive", reply=view.last_reply.id))
    if view.url and view.url.startswith("https://"):
        actions.append({"type": "Action.OpenUrl", "title": f"View on {platform}", "url": view.url})
    return {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body, "actions": actions,
            "msteams": {"width": "Full"}}


__all__ = ["MAX_CARD_BYTES", "case_card", "literal"]
